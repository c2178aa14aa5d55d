"""HU window scaling and its inverse."""

from __future__ import annotations

import numpy as np
import pytest

from spinefx.errors import InputError
from spinefx.preprocessing import hu_to_unit, unit_to_hu


def test_hu_to_unit_known_values():
    out = hu_to_unit(np.array([-3000, -1000, 0, 500, 1000, 3000]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0, 0, 0.5, 0.75, 1, 1])


def test_custom_window_and_inverse_round_trip_inside_window():
    hu = np.linspace(-200, 400, 37)
    unit = hu_to_unit(hu, clip_hu=(-200, 400))
    np.testing.assert_allclose(unit_to_hu(unit, clip_hu=(-200, 400)), hu, atol=1e-3)


def test_inverse_saturates_outside_window():
    np.testing.assert_allclose(unit_to_hu(hu_to_unit(np.array([-5000.0, 5000.0]))), [-1000, 1000])


def test_bad_window_rejected():
    with pytest.raises(InputError, match="HU window"):
        hu_to_unit(np.zeros(3), clip_hu=(100, -100))

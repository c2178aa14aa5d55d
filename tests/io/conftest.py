"""Tiny synthetic images for the io tests (known geometry, CT-like intensities)."""

from __future__ import annotations

import numpy as np
import pytest

from spinefx.image import Image

#: A PIR affine (1 x 1 x 2 mm), like VerSe files: axis 0 -> posterior, 1 -> inferior, 2 -> right.
PIR_AFFINE = np.array(
    [[0.0, 0.0, 2.0, -30.0], [-1.0, 0.0, 0.0, 40.0], [0.0, -1.0, 0.0, 50.0], [0, 0, 0, 1.0]]
)


def ct_like(shape=(12, 14, 10), seed=0) -> np.ndarray:
    """Air around a soft-tissue block with a bone core, int16 HU."""
    rng = np.random.default_rng(seed)
    data = np.full(shape, -1000, dtype=np.int16)
    data[2:-2, 2:-2, 2:-2] = 40
    data[4:-4, 4:-4, 3:-3] = 700
    return (data + rng.integers(-5, 6, size=shape)).astype(np.int16)


@pytest.fixture
def ct_image() -> Image:
    return Image(ct_like(), PIR_AFFINE.copy(), {})

"""Exact streaming thresholds equal numpy.quantile on all values (the stated definition)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spinefx.errors import InputError
from spinefx.interpretation.quantiles import exact_upper_quantiles, target_ranks


def _values(seed: int = 0, n: int = 12_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = np.maximum(rng.normal(size=(n, 8)), 0).astype(np.float32)  # ReLU-like, many ties at 0
    data[:, 1] = 0.0  # dead unit
    data[:, 2] = np.round(data[:, 2], 1)  # heavy ties
    data[:, 3] = rng.standard_cauchy(n).astype(np.float32)  # heavy tails
    data[:, 4] = rng.uniform(5, 5 + 1e-4, n).astype(np.float32)  # narrow range: float resolution
    data[:, 5] = -np.abs(data[:, 5])
    return data


def _chunks(data: np.ndarray, size: int):
    t = torch.from_numpy(data)
    return lambda: (t[i : i + size] for i in range(0, len(t), size))


@pytest.mark.parametrize("q", [0.005, 0.5, 1e-5])
@pytest.mark.parametrize("bins,buffer", [(2048, 4096), (8, 16)])
def test_thresholds_equal_numpy_quantile(q, bins, buffer):
    data = _values()
    result = exact_upper_quantiles(
        _chunks(data, 1234), quantile=q, bins=bins, buffer_per_unit=buffer
    )
    expected = np.quantile(data.astype(np.float64), 1 - q, axis=0)
    np.testing.assert_allclose(result.thresholds, expected, rtol=1e-6, atol=1e-6)
    assert result.n_values == len(data)


def test_target_ranks_on_two_tied_values_larger_than_the_buffer():
    # r0 falls on 600 zeros, r1 on 600 ones: each bracket must shrink to its own value
    data = np.repeat(np.array([[0.0], [1.0]], np.float32), 600, axis=0)
    result = exact_upper_quantiles(_chunks(data, 100), quantile=0.5, bins=4, buffer_per_unit=16)
    assert result.thresholds[0] == pytest.approx(np.quantile(data, 0.5)) == 0.5


def test_small_buffer_needs_more_passes_but_stays_exact():
    data = _values(1)
    coarse = exact_upper_quantiles(_chunks(data, 999), quantile=0.3, bins=4, buffer_per_unit=8)
    fine = exact_upper_quantiles(_chunks(data, 999), quantile=0.3)
    assert coarse.n_passes > fine.n_passes >= 2
    np.testing.assert_array_equal(coarse.thresholds, fine.thresholds)


def test_fraction_above_threshold_is_q_within_one_value():
    data = np.random.default_rng(2).normal(size=(20_000, 3)).astype(np.float32)
    q = 0.005
    t = exact_upper_quantiles(_chunks(data, 4096), quantile=q).thresholds
    above = (data > t.astype(np.float32)).mean(axis=0)
    assert np.all(np.abs(above - q) <= 1.0 / len(data))


def test_target_ranks_match_numpy_linear_definition():
    x = np.arange(10.0)
    r0, r1, frac = target_ranks(10, 0.25)
    assert x[r0] + frac * (x[r1] - x[r0]) == pytest.approx(np.quantile(x, 0.75))


def test_nondeterministic_source_is_detected():
    rng = np.random.default_rng(0)

    def chunks():
        yield torch.from_numpy(rng.normal(size=(5000, 2)).astype(np.float32))

    with pytest.raises(RuntimeError, match="deterministic"):
        exact_upper_quantiles(chunks, quantile=0.01, bins=4, buffer_per_unit=10)


def test_bad_quantile_is_an_input_error():
    with pytest.raises(InputError, match="quantile"):
        exact_upper_quantiles(_chunks(_values(), 100), quantile=1.5)

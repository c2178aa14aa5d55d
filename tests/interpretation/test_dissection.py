"""Dissection of a hand-built CNN with known answers (see dissection_toy.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dissection_toy import Toy, toy_loader, toy_samples
from torch import nn

from spinefx.errors import InputError
from spinefx.interpretation.activations import LayerRecorder, iter_activations, resolve_layer
from spinefx.interpretation.dissection import (
    TopActivating,
    dissect,
    rank_units,
    unit_correlations,
)


@pytest.fixture(scope="module")
def toy_dissection():
    return dissect(Toy(), "features.pool", toy_loader(), quantile=0.005, top_k=3)


def test_thresholds_are_the_hand_computed_quantiles(toy_dissection):
    # unit 0: 8 x 64 values = 508 zeros then 1, 2, 3, 4; h = 511 * 0.995 = 508.445
    # -> T0 = 1 + 0.445 * (2 - 1); unit 1 the same (fires on the negative samples); unit 2 dead.
    np.testing.assert_allclose(toy_dissection.thresholds, [1.445, 1.445, 0.0], atol=1e-9)
    assert toy_dissection.activation_shape == (4, 4, 4)
    assert toy_dissection.input_shape == (8, 8, 8)


def test_enabled_units_and_correlations(toy_dissection):
    enabled = toy_dissection.enabled()
    # unit 0 enabled in bright samples 2, 3, 4 (> 1.445): samples 1, 2, 3
    np.testing.assert_array_equal(enabled[:, 0], [0, 1, 1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(enabled[:, 1], [0, 0, 0, 0, 0, 1, 1, 1])
    assert not enabled[:, 2].any()
    np.testing.assert_array_equal(toy_dissection.predictions, [1, 1, 1, 1, 0, 0, 0, 0])
    corr = toy_dissection.correlations()
    np.testing.assert_allclose(corr["tp"], [0.75, 0.0, 0.0])
    np.testing.assert_allclose(corr["tn"], [0.0, 0.75, 0.0])
    assert np.isnan(corr["fp"]).all()  # no false positives
    np.testing.assert_array_equal(rank_units(corr["tp"]), [1, 2, 3])  # tie 1-2: lower unit
    np.testing.assert_array_equal(rank_units(corr["tn"]), [2, 1, 3])


def test_positive_sets_differ_when_the_model_errs():
    enabled = np.array([[1, 0], [1, 1], [0, 1], [0, 0]], bool)
    labels = np.array([1, 1, 0, 0])
    preds = np.array([1, 0, 1, 0])  # sample 0 TP, 1 FN, 2 FP, 3 TN
    corr = unit_correlations(enabled, labels, preds)
    np.testing.assert_allclose(corr["tp"], [1, 0])
    np.testing.assert_allclose(corr["gt"], [1, 0.5])
    np.testing.assert_allclose(corr["pred"], [0.5, 0.5])
    np.testing.assert_allclose(corr["fp"], [0, 1])


def test_top_samples_are_the_brightest_positives(toy_dissection):
    top = toy_dissection.top_positive
    np.testing.assert_array_equal(top.indices[0], [3, 2, 1])
    np.testing.assert_allclose(top.scores[0], [4, 3, 2])
    # each kept map is that unit's own map of that sample
    assert top.maps[0, 0].max() == 4 and top.maps[0, 0][2, 1, 3] == 4
    # the negatives never enter the positive list of unit 1 (its maps are zero on positives)
    assert set(top.indices[1].tolist()) <= {0, 1, 2, 3}
    np.testing.assert_array_equal(toy_dissection.top_all.indices[1], [7, 6, 5])


def test_top_k_matches_a_full_sort_and_breaks_ties_by_index():
    rng = np.random.default_rng(0)
    scores = np.round(rng.uniform(size=(50, 4)), 1).astype(np.float32)  # many ties
    tracker = TopActivating(4, 5, (2,))
    for start in range(0, 50, 7):
        s = torch.from_numpy(scores[start : start + 7])
        maps = s[:, :, None].repeat(1, 1, 2)
        tracker.update(s, maps, torch.arange(start, start + len(s)))
    for k in range(4):
        expected = sorted(range(50), key=lambda i: (-scores[i, k], i))[:5]
        np.testing.assert_array_equal(tracker.indices[k], expected)
        np.testing.assert_allclose(tracker.maps[k, :, 0], scores[expected, k])


def test_recorder_handles_tuple_outputs_and_removes_its_hook():
    class Pair(nn.Module):
        def forward(self, x):
            return x * 2, x

    model = nn.Sequential()
    model.add_module("pair", Pair())
    with LayerRecorder(model, "pair") as rec:
        model(torch.ones(1, 1, 2, 2, 2))
        assert torch.equal(rec.output, torch.full((1, 1, 2, 2, 2), 2.0))
    assert not model.pair._forward_hooks


def test_unknown_layer_names_the_available_layers():
    with pytest.raises(InputError, match="features.pool"):
        resolve_layer(Toy(), "features.nope")


def test_iteration_is_streaming_and_in_eval_mode():
    model = nn.Sequential(nn.Conv3d(1, 2, 1), nn.Dropout(0.9), nn.Flatten(), nn.LazyLinear(1))
    model(torch.zeros(1, 1, 8, 8, 8))
    batches = list(iter_activations(model, "1", toy_loader(batch_size=3)))
    assert [b.first_index for b in batches] == [0, 3, 6]
    again = list(iter_activations(model, "1", toy_loader(batch_size=3)))
    assert torch.equal(batches[0].activations, again[0].activations)  # dropout off
    assert len(toy_samples()) == sum(len(b.labels) for b in batches)

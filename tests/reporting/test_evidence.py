"""Relevance and Grad-CAM from recorded activations equal the dissection stage's own functions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spinefx.interpretation.relevance import grad_cam, relevance_for_input
from spinefx.models import DISSECTED_LAYER, PatchClassifierConfig, build_model
from spinefx.reporting import backends
from spinefx.reporting.analysis import ModelRun
from spinefx.reporting.backends import forward_with_evidence
from spinefx.reporting.evidence import atlas_thresholds, gradcam_map, top_units, unit_relevance


def test_unit_relevance_hand_computed():
    acts = np.zeros((2, 2, 2, 2))
    acts[0, 0, 0, 0], acts[0, 1, 1, 1], acts[1, 0, 0, 0] = 3.0, 0.5, 1.0
    r = unit_relevance(acts, np.array([1.0, 0.0]))
    assert r.tolist() == [3.0, 1.0]  # 0.5 is below T_0 = 1; 1.0 above T_1 = 0


def test_atlas_thresholds_are_ordered_by_unit():
    atlas = {"units": [{"unit": 1, "threshold": 0.2}, {"unit": 0, "threshold": 0.1}]}
    assert atlas_thresholds(atlas).tolist() == [0.1, 0.2]
    with pytest.raises(ValueError):
        atlas_thresholds({"units": [{"unit": 3, "threshold": 0.0}]})


def test_batched_record_matches_relevance_for_input_and_grad_cam(monkeypatch):
    torch.manual_seed(0)
    config = PatchClassifierConfig(
        widths=(4, 8, 8, 16),
        patch_size_vox=32,
        head_conv_widths=(8,),
        head_mlp_widths=(8,),
        dropout=0.0,
    )
    model = build_model(config).eval()
    run = ModelRun(
        run_dir=None,
        model=model,
        patch_size_vox=32,
        spacing_mm=1.0,
        decision_threshold=0.5,
        layer=DISSECTED_LAYER,
    )
    x = torch.rand(3, 1, 32, 32, 32, generator=torch.Generator().manual_seed(1)).numpy()
    probs, acts, weights = forward_with_evidence(run, x, with_gradients=True)
    with monkeypatch.context() as m:  # the generic path: full backward through the encoder
        m.setattr(backends, "_split_at_layer", lambda model, layer: None)
        probs_full, acts_full, weights_full = forward_with_evidence(run, x, with_gradients=True)
    assert np.allclose(probs_full, probs, atol=1e-6) and np.allclose(acts_full, acts, atol=1e-6)
    assert np.allclose(weights_full, weights, rtol=1e-4, atol=1e-9)
    plain, _, _ = forward_with_evidence(run, x, with_gradients=False)
    assert np.allclose(probs, plain, atol=1e-6)
    thresholds = np.quantile(acts.transpose(1, 0, 2, 3, 4).reshape(16, -1), 0.9, axis=1)
    for i in range(3):
        ours = top_units(acts[i], thresholds, top_k=4, input_shape=(32, 32, 32))
        ref = relevance_for_input(model, DISSECTED_LAYER, x[i], thresholds, top_n=4)[:4]
        assert [u.unit for u in ours] == [u.unit for u in ref]
        assert np.allclose([u.relevance for u in ours], [u.relevance for u in ref], rtol=1e-5)
        assert np.allclose(ours[0].activation, ref[0].activation, atol=1e-5)
        cam = gradcam_map(acts[i], weights[i], input_shape=(32, 32, 32))
        assert np.allclose(cam, grad_cam(model, DISSECTED_LAYER, x[i]), rtol=1e-4, atol=1e-6)


def test_a_unit_enabled_at_one_layer_voxel_keeps_a_region_after_upsampling():
    acts = np.zeros((1, 4, 4, 4), np.float32)
    acts[0, 1, 1, 1] = 1.0  # one layer voxel above T = 0.9; trilinear smoothing lowers the peak
    (unit,) = top_units(acts, np.array([0.9]), top_k=1, input_shape=(16, 16, 16))
    assert unit.activation.max() < 0.9  # the smoothed map alone would show no region
    assert unit.region().any()
    centre = np.argwhere(unit.region()).mean(axis=0)
    assert np.allclose(centre, [5.5, 5.5, 5.5], atol=0.6)  # layer voxel 1 covers input 4..7

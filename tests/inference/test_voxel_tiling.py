"""Tiled whole-volume inference: exact stitching, ROI skipping, original geometry."""

from __future__ import annotations

import numpy as np
import torch

from spinefx.image import Image
from spinefx.inference.voxel_tiling import predict_volume, predict_voxel_maps
from spinefx.models.voxel_classifier import VoxelClassifierConfig, build_voxel_classifier


def _model():
    torch.manual_seed(0)
    model = build_voxel_classifier(VoxelClassifierConfig(target_params=20_000, fc_widths=(16, 16)))
    return model.eval()


def test_tiling_is_exact_whatever_the_tile_size():
    """Valid convolutions: a voxel's probability does not depend on how the volume is tiled."""
    model = _model()
    vol = np.random.default_rng(0).normal(size=(20, 23, 17)).astype(np.float32)
    small = predict_volume(model, vol, output_tile_vox=6, show_progress=False)
    big = predict_volume(model, vol, output_tile_vox=24, show_progress=False)
    assert small.shape == (3, 20, 23, 17)
    np.testing.assert_allclose(small, big, atol=2e-5)
    np.testing.assert_allclose(small.sum(0), 1.0, atol=1e-5)


def test_air_tiles_are_skipped_as_background():
    model = _model()
    vol = np.full((24, 24, 24), -2.0, np.float32)
    vol[:6, :6, :6] = 1.0
    probs = predict_volume(model, vol, output_tile_vox=6, roi_min_value=0.0, show_progress=False)
    assert (probs[0, 18:, 18:, 18:] == 1.0).all()
    full = predict_volume(model, vol, output_tile_vox=6, show_progress=False)
    np.testing.assert_allclose(probs[:, :6, :6, :6], full[:, :6, :6, :6], atol=1e-6)


def test_maps_come_back_on_the_original_grid():
    model = _model()
    affine = np.diag([-1.5, 1.0, 2.0, 1.0])  # L-first, anisotropic
    affine[:3, 3] = [30.0, -5.0, 10.0]
    data = np.random.default_rng(1).normal(0, 300, (16, 20, 10)).astype(np.float32)
    maps = predict_voxel_maps(model, Image(data, affine), show_progress=False)
    assert set(maps) == {"background", "normal", "fractured"}
    for img in maps.values():
        assert img.shape == (16, 20, 10)
        np.testing.assert_allclose(img.affine, affine)


def test_maps_go_back_to_the_scan_grid_only_where_they_were_screened():
    """The box resampling equals resampling the whole maps everywhere but the scan grid's
    outer border voxel, on an oblique, anisotropic scan grid inside the network's grid (as the
    network view always covers its scan)."""
    from spinefx.image import Image
    from spinefx.inference.voxel_tiling import to_original_geometry
    from spinefx.preprocessing.resample import resample_like

    rng = np.random.default_rng(3)
    net = np.eye(4)
    net[:3, 3] = [-30.0, -30.0, -40.0]
    shape = (60, 60, 80)
    probs = np.zeros((3, *shape), np.float32)
    probs[0] = 1.0
    block = rng.random((3, 14, 12, 20)).astype(np.float32)
    block /= block.sum(axis=0, keepdims=True)
    probs[:, 20:34, 25:37, 30:50] = block  # the screened part
    maps = {n: Image(probs[i], net) for i, n in enumerate(("background", "normal", "fractured"))}
    c, s_ = np.cos(0.3), np.sin(0.3)
    affine = np.array([[0.8 * c, -0.8 * s_, 0, -20], [0.8 * s_, 0.8 * c, 0, -20], [0, 0, 2.5, -30],
                       [0, 0, 0, 1]])  # fmt: skip
    scan = Image(np.zeros((40, 40, 24), np.float32), affine)
    fast = to_original_geometry(maps, scan)
    for name, img in maps.items():
        slow = np.clip(resample_like(img, scan, fill_value=0.0).data, 0, 1)
        inner = (slice(1, -1),) * 3
        np.testing.assert_array_equal(fast[name].data[inner], slow[inner])
        assert fast[name].shape == scan.shape
        np.testing.assert_allclose(fast[name].affine, scan.affine)

"""Screening only the spine: the region found first, and maps identical to the whole volume inside it."""

from __future__ import annotations

import numpy as np
import torch

from spinefx.image import Image
from spinefx.inference.spine_roi import spine_region
from spinefx.inference.voxel_tiling import predict_volume
from spinefx.models.voxel_classifier import VoxelClassifierConfig, build_voxel_classifier


def _hu_body(shape=(120, 100, 140)) -> Image:
    """Soft-tissue body with a bone column (the spine) posterior-central and one far bone block."""
    data = np.full(shape, -1000.0, np.float32)
    x, y, _ = np.indices(shape)
    data[((x - 60) / 55) ** 2 + ((y - 50) / 45) ** 2 <= 1] = 40.0
    data[52:68, 62:80, :] = 500.0  # vertebral column, y posterior... along z
    data[5:12, 45:55, 60:70] = 700.0  # a lateral bone (a rib end) far from the spine
    affine = np.eye(4)
    affine[:3, 3] = [-60.0, -50.0, -70.0]
    return Image(data, affine)


def test_the_tube_around_centroids_holds_the_spine_and_not_the_far_body():
    hu = _hu_body()
    centroids = {
        20: hu.voxel_to_world(np.array([60, 71, 40])),
        21: hu.voxel_to_world(np.array([60, 71, 80])),
    }
    roi = spine_region(hu, centroids)
    assert roi.shape == hu.shape and roi.dtype == bool
    assert roi[60, 71, 40:81].all()  # between the centroids
    assert roi[60, 71, 80 + 36] and not roi[60, 71, 80 + 56]  # the capsule's cap: 45 mm
    assert roi[60, 71 - 38, 60] and not roi[60, 71 - 56, 60]  # radius 45 mm
    assert not roi[8, 50, 65]  # the far bone is outside
    assert 0.05 < roi.mean() < 0.5


def test_without_centroids_the_region_is_near_bone():
    hu = _hu_body()
    roi = spine_region(hu)
    assert roi[60, 71, :].all() and roi[8, 50, 65]
    assert not roi[60, 10, 70]  # anterior soft tissue 50 mm from bone
    nothing = spine_region(hu.with_data(np.full(hu.shape, 40.0, np.float32)))
    assert not nothing.any()


def test_maps_inside_the_region_equal_the_whole_volume_result():
    torch.manual_seed(0)
    model = build_voxel_classifier(VoxelClassifierConfig(target_params=20_000, fc_widths=(16, 16)))
    model.eval()
    vol = np.random.default_rng(0).normal(size=(36, 30, 42)).astype(np.float32)
    roi = np.zeros(vol.shape, bool)
    roi[14:20, 12:16, 5:30] = True
    part = predict_volume(model, vol, output_tile_vox=6, roi_mask=roi, show_progress=False)
    full = predict_volume(model, vol, output_tile_vox=6, show_progress=False)
    np.testing.assert_array_equal(part[:, roi], full[:, roi])
    run = part[0] != 1.0
    assert run.any() and (run | ~roi).any()
    np.testing.assert_array_equal(part[:, run], full[:, run])  # every tile that ran is exact
    far = np.zeros(vol.shape, bool)
    far[:4, :4, -4:] = True
    assert (part[0, far] == 1.0).all() and (part[1:, far] == 0.0).all()  # skipped: background

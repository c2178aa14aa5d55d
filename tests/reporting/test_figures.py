"""Slice rendering: display orientation, outlines, and overlays landing on the right voxel."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from spinefx.errors import InputError
from spinefx.image import Image
from spinefx.reporting.figures import (
    best_slice,
    canonical_view,
    overlay_rgb,
    render_patch_slice,
    render_scan_overview,
    take_slice,
)


def _png_array(data: bytes) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"))


def test_sagittal_slice_shows_cranial_up_and_anterior_left():
    vol = np.zeros((3, 4, 5))
    vol[1, 3, 4] = 1.0  # most anterior (y) and most cranial (z) voxel of slice x=1
    sl = take_slice(vol, plane="sagittal", index=1)
    assert sl.shape == (5, 4)
    assert sl[0, 0] == 1.0  # top-left


def test_axial_slice_shows_anterior_up_and_patient_right_on_the_left():
    vol = np.zeros((3, 4, 5))
    vol[2, 3, 0] = 1.0  # most right (+x) and most anterior (+y) at z=0
    sl = take_slice(vol, plane="axial", index=0)
    assert sl.shape == (4, 3)
    assert sl[0, 0] == 1.0


def test_unknown_plane_is_an_input_error():
    with pytest.raises(InputError, match="plane"):
        take_slice(np.zeros((2, 2, 2)), plane="oblique", index=0)


def test_outline_is_drawn_exactly_on_the_inner_boundary_of_the_thresholded_region():
    gray = np.zeros((8, 8), np.uint8)
    heat = np.zeros((8, 8))
    heat[2:6, 2:6] = 1.0
    rgb = overlay_rgb(gray, heat, threshold=0.5)
    yellow = np.all(rgb == (255, 221, 0), axis=-1)
    expected = np.zeros((8, 8), bool)
    expected[2:6, 2:6] = True
    expected[3:5, 3:5] = False
    assert np.array_equal(yellow, expected)


def test_plain_slice_is_the_windowed_gray_image():
    gray = np.arange(16, dtype=np.uint8).reshape(4, 4)
    rgb = overlay_rgb(gray)
    assert np.array_equal(rgb[..., 0], gray) and np.array_equal(rgb[..., 2], gray)


def test_patch_slice_png_has_requested_height_and_rejects_misfit_maps():
    patch = Image(np.zeros((8, 8, 16), np.float32), np.diag([2.0, 2.0, 1.0, 1.0]))
    png = _png_array(render_patch_slice(patch, plane="sagittal", height_px=64))
    assert png.shape == (64, 64, 3)  # 8 voxels of 2 mm wide vs 16 of 1 mm high: square
    with pytest.raises(InputError, match="does not match"):
        render_patch_slice(patch, heat=np.zeros((4, 4, 4)))


def test_best_slice_follows_the_thresholded_activation_mass():
    heat = np.zeros((6, 6, 6))
    heat[4, 1, 1] = 5.0
    heat[1, :, :] = 0.4  # much mass, all below the threshold
    assert best_slice(heat, plane="sagittal", threshold=1.0) == 4
    assert best_slice(np.zeros((6, 6, 6)), plane="axial") == 3


def test_canonical_view_keeps_every_voxel_at_its_world_position():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(4, 5, 6)).astype(np.float32)
    affine = np.array([[0, 0, -2.0, 10], [-1.5, 0, 0, 3], [0, 1.0, 0, -7], [0, 0, 0, 1]])
    scan = Image(data, affine)
    ras = canonical_view(scan)
    assert ras.orientation == "RAS"
    for ijk in [(0, 0, 0), (3, 4, 5), (1, 2, 3)]:
        world = scan.voxel_to_world(np.array(ijk, float))
        back = np.round(ras.world_to_voxel(world)).astype(int)
        assert ras.data[tuple(back)] == data[ijk]


def test_overview_is_the_same_picture_whatever_the_storage_orientation():
    rng = np.random.default_rng(1)
    data = rng.uniform(-1000, 1500, size=(20, 22, 30)).astype(np.float32)
    ras = Image(data, np.diag([1.0, 1.2, 1.5, 1.0]))
    # the same voxels stored LPS-flipped and axis-permuted: (z, y, x) order, x and y reversed
    flipped = np.ascontiguousarray(data[::-1, ::-1, :].transpose(2, 1, 0))
    perm = np.zeros((4, 4))
    perm[0, 2], perm[1, 1], perm[2, 0], perm[3, 3] = -1.0, -1.2, 1.5, 1
    perm[:3, 3] = [19 * 1.0, 21 * 1.2, 0]
    other = Image(flipped, perm)
    assert np.allclose(other.voxel_to_world([[0, 0, 0]]), ras.voxel_to_world([[19, 21, 0]]))
    centroids = {20: ras.voxel_to_world(np.array([10.0, 12.0, 15.0]))}
    a = render_scan_overview(ras, centroids, fractured={20: True})
    b = render_scan_overview(other, centroids, fractured={20: True})
    assert a == b
    red = np.all(_png_array(a) == (230, 60, 50), axis=-1)
    assert red.any()

"""Slice rendering: display orientation, outlines, and overlays landing on the right voxel."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from spinefx.display import LETTER_RGB, PLANE_AXIS
from spinefx.errors import InputError
from spinefx.image import Image
from spinefx.reporting.figures import (
    OVERVIEW_MAX_PX,
    best_slice,
    overlay_rgb,
    render_patch_slice,
    render_scan_overview,
)


def _png_array(data: bytes) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"))


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


#: a patch-like grid whose voxel (0, 0, 0) is at world (-50, 20, 310) mm, 2 mm voxels
PATCH_AFFINE = np.array([[2.0, 0, 0, -50.0], [0, 2, 0, 20.0], [0, 0, 2, 310.0], [0, 0, 0, 1]])


def _bright_columns(png: np.ndarray, *, margin: int = 24) -> np.ndarray:
    """Columns of the bright grey (CT marker) pixels away from the letters at the edges."""
    inner = png[margin:-margin, margin:-margin].astype(int)
    grey = (inner[..., 0] == inner[..., 1]) & (inner[..., 1] == inner[..., 2])
    _, cols = np.nonzero(grey & (inner[..., 0] > 200))
    return cols + margin


def _letter_pixels(png: np.ndarray) -> np.ndarray:
    """Pixels of the light-blue letters (anti-aliased: blue well above red)."""
    rgb = png.astype(int)
    assert LETTER_RGB[2] - LETTER_RGB[0] > 100
    return (rgb[..., 2] - rgb[..., 0] > 60) & (rgb[..., 2] > 120)


@pytest.mark.parametrize(
    ("plane", "marker"),
    [
        ("sagittal", (8, 13, 8)),  # anterior (high y) on the left
        ("axial", (13, 8, 8)),  # the patient's right (high x) on the left
        ("coronal", (13, 8, 8)),
    ],
)
def test_patch_slice_png_is_radiological_with_letters_at_every_edge(plane, marker):
    data = np.full((16, 16, 16), -500.0, np.float32)
    x, y, z = marker
    data[x - 1 : x + 2, y - 1 : y + 2, z - 1 : z + 2] = 1500.0
    patch = Image(data, PATCH_AFFINE)
    index = marker[PLANE_AXIS[plane]]
    png = _png_array(render_patch_slice(patch, plane=plane, index=index, height_px=192))
    cols = _bright_columns(png)
    assert cols.size and cols.max() < png.shape[1] / 2
    blue = _letter_pixels(png)
    h, w = blue.shape
    edges = {
        "left": blue[h // 3 : 2 * h // 3, : w // 8],
        "right": blue[h // 3 : 2 * h // 3, -w // 8 :],
        "top": blue[: h // 8, w // 3 : 2 * w // 3],
        "bottom": blue[-h // 8 :, w // 3 : 2 * w // 3],
    }
    assert all(region.any() for region in edges.values()), "a letter is missing"


def test_overview_png_shows_an_anterior_marker_on_the_left_and_fits_its_box():
    data = np.full((30, 120, 40), -800.0, np.float32)  # thin slab: 120 mm y, 40 mm z
    data[13:18, 100:110, 15:25] = 1500.0  # anterior
    scan = Image(data, np.array([[1.0, 0, 0, -15], [0, 1, 0, -60], [0, 0, 1, 500], [0, 0, 0, 1]]))
    png = _png_array(render_scan_overview(scan, {}))
    assert png.shape[1] <= OVERVIEW_MAX_PX[0] and png.shape[0] <= OVERVIEW_MAX_PX[1]
    assert png.shape[1] / png.shape[0] == pytest.approx(120 / 40, rel=0.02)  # mm aspect kept
    cols = _bright_columns(png, margin=20)
    assert cols.size and cols.max() < png.shape[1] / 3
    tall = Image(np.zeros((10, 60, 900), np.float32), np.eye(4))
    png = _png_array(render_scan_overview(tall, {}))
    assert png.shape[0] == OVERVIEW_MAX_PX[1] and png.shape[1] == pytest.approx(36, abs=1)

"""``detect``'s mid-sagittal PNG: radiological (anterior left), letters, world-mm coordinates."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest

from spinefx.image import Image
from spinefx.inference.figures import midsagittal_figure
from spinefx.records import VertebraResult

matplotlib.use("Agg")

#: 1 mm RAS grid whose first voxel sits at world (-60, -140, 400) mm: mm from the grid edge
#: and world coordinates differ on every axis
AFFINE = np.array([[1.0, 0, 0, -60.0], [0, 1, 0, -140.0], [0, 0, 1, 400.0], [0, 0, 0, 1]])


def _result():
    """A 40 x 80 x 60 view: soft tissue, a bright anterior marker and p(fracture) there too."""
    hu = np.full((40, 80, 60), 40.0, np.float32)
    hu[18:23, 66:74, 28:34] = 1500.0  # anterior (high y) on the mid-sagittal plane x = 20
    frac = np.zeros_like(hu)
    frac[18:23, 66:74, 40:46] = 0.9
    view = Image(hu, AFFINE)
    centroid = tuple(view.voxel_to_world(np.array([20.0, 40.0, 30.0])))
    vertebrae = [VertebraResult(20, 0.9, True, centroid, method="voxel")]
    return SimpleNamespace(
        network_view=view,
        fracture_map_1mm=view.with_data(frac),
        vertebrae=vertebrae,
        patient_fractured=True,
        patient_state="FRACTURE",
    )


def test_detect_figure_shows_anterior_on_the_left_with_world_coordinates():
    result = _result()
    fig = midsagittal_figure(result)
    ax = fig.axes[0]
    ct_image, prob_image = ax.get_images()
    pixels = np.asarray(ct_image.get_array())
    rows, cols = np.nonzero(pixels > 1000)
    assert cols.max() < pixels.shape[1] / 2  # the anterior marker is in the left half
    left, right, bottom, top = ct_image.get_extent()
    assert left > right and top > bottom  # anterior (high y) left, superior top
    # the marker's columns are labelled with its world y, rows with its world z
    width = (left - right) / pixels.shape[1]
    height = (top - bottom) / pixels.shape[0]
    world_y = left - (cols + 0.5) * width
    world_z = top - (rows + 0.5) * height
    assert world_y.min() == pytest.approx(-140.0 + 66) and world_y.max() == pytest.approx(-67.0)
    assert world_z.min() == pytest.approx(400.0 + 28) and world_z.max() == pytest.approx(433.0)
    assert prob_image.get_extent() == ct_image.get_extent()
    assert "x = -40.0 mm" in ax.get_title()  # world x of voxel column 20, not 20 mm
    letters = {t.get_text() for t in ax.texts}
    assert {"A", "P", "S", "I"} <= letters
    assert "y (world RAS+, mm)" in ax.get_xlabel() and "z (world RAS+, mm)" in ax.get_ylabel()
    ticks = [float(t) for t in ax.get_xticks() if right <= t <= left]
    assert ticks and min(ticks) < -100  # tick values are world y, negative here


def test_detect_figure_png_puts_the_anterior_marker_left_of_centre(tmp_path):
    fig = midsagittal_figure(_result())
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    ax = fig.axes[0]
    x0, y0, x1, y1 = ax.get_window_extent().extents  # display pixels, origin bottom left
    height = rgba.shape[0]
    inside = rgba[int(height - y1) : int(height - y0), int(x0) : int(x1), :3].astype(int)
    grey = (inside[..., 0] == inside[..., 1]) & (inside[..., 1] == inside[..., 2])
    bright = grey & (inside[..., 0] > 240)
    _, cols = np.nonzero(bright)
    assert cols.size and cols.mean() < inside.shape[1] / 2

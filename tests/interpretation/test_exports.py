"""Dissection collages and strips: sagittal tiles in the display convention, world-mm titles."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from spinefx.conventions import HU_CLIP
from spinefx.interpretation import exports

#: the sample's input grid: 2 mm voxels, voxel (0, 0, 0) at world (-16, 40, 200) mm
AFFINE = np.array([[2.0, 0, 0, -16.0], [0, 2, 0, 40.0], [0, 0, 2, 200.0], [0, 0, 0, 1]])
SHAPE = (16, 16, 16)


def _dissection_and_dataset():
    """One unit whose activation sits on a bright anterior block of one sample, at x index 5."""
    low, high = HU_CLIP
    hu = np.full(SHAPE, -200.0, np.float32)
    hu[5, 11:15, 6:10] = 1200.0  # anterior (high y) on the sagittal slice x = 5
    x = ((hu - low) / (high - low))[None]
    maps = np.zeros((1, 1, *SHAPE), np.float32)  # activation grid = input grid here
    maps[0, 0, 5, 11:15, 6:10] = 5.0
    dissection = SimpleNamespace(
        top_positive=SimpleNamespace(indices=np.array([[0]]), maps=maps),
        thresholds=np.array([1.0]),
        input_shape=SHAPE,
        activation_shape=SHAPE,
        metas=[{"case_id": "c1", "level": "L1"}],
    )
    dataset = [(x, 1, {"affine": AFFINE})]
    return dissection, dataset


@pytest.fixture()
def captured(monkeypatch):
    figures = []
    monkeypatch.setattr(exports, "_save_figure", lambda fig, path: figures.append(fig) or path)
    return figures


def test_collage_tile_shows_anterior_on_the_left_with_world_x(captured, tmp_path):
    dissection, dataset = _dissection_and_dataset()
    exports.export_collage(dissection, dataset, 0, tmp_path / "collage.png", n=1)
    ax = captured[0].axes[0]
    image = ax.get_images()[0]
    pixels = np.asarray(image.get_array())
    _, cols = np.nonzero(pixels > 1000)
    assert cols.size and cols.max() < pixels.shape[1] / 2  # the anterior block: left half
    left, right, bottom, top = image.get_extent()
    assert (left, right) == pytest.approx((40 + 31.0, 40 - 1.0))  # world y, anterior left
    assert (bottom, top) == pytest.approx((200 - 1.0, 200 + 31.0))
    assert ax.get_title() == "c1 L1 x = -6.0 mm"  # world x of index 5, not "x=5"
    assert {t.get_text() for t in ax.texts} == {"A", "P", "S", "I"}
    assert ax.collections, "the unit's thresholded region is outlined"


def test_strip_tiles_carry_world_positions(captured, tmp_path):
    dissection, dataset = _dissection_and_dataset()
    dissection.activation_shape = (4, 4, 4)  # four activation slices -> four tiles
    exports.export_top_samples(dissection, dataset, 0, tmp_path, n=1)
    titles = [ax.get_title() for ax in captured[0].axes]
    # activation slice i of 4 over 16 voxels -> input x index round(4 i + 1.5); world -16 + 2 x
    assert titles == ["c1 L1 x = -12.0 mm", "x = -4.0 mm", "x = 4.0 mm", "x = 12.0 mm"]

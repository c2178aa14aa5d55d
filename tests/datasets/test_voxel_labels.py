"""Ellipsoid label images from sparse centroids: known answers and geometry invariance."""

from __future__ import annotations

import numpy as np

from spinefx.datasets.voxel_labels import (
    FRACTURED,
    IGNORE_LABEL,
    NORMAL,
    ellipsoid_label_image,
    labels_from_records,
    vertebra_class,
)
from spinefx.image import Image
from spinefx.records import VertebraRecord


def _grid(shape=(40, 40, 100), affine=None) -> Image:
    return Image(np.zeros(shape, np.float32), np.eye(4) if affine is None else affine)


def _value(img: Image, xyz) -> int:
    i, j, k = np.round(img.world_to_voxel(np.asarray(xyz, float))).astype(int)
    return int(img.data[i, j, k])


def test_ellipsoids_are_centred_with_background_between_vertebrae():
    centroids = {20: np.array([20.0, 20.0, 70.0]), 21: np.array([20.0, 20.0, 40.0])}
    labels = ellipsoid_label_image(_grid(), centroids, {20: NORMAL, 21: FRACTURED})
    assert _value(labels, [20, 20, 70]) == NORMAL
    assert _value(labels, [20, 20, 40]) == FRACTURED
    assert _value(labels, [20, 20, 55]) == 0  # the disc between them
    # pitch 30 mm: axial semi-axis 0.3*30 = 9 mm (normal), 9*0.7 = 6.3 mm (fractured)
    assert _value(labels, [20, 20, 70 + 8.6]) == NORMAL
    assert _value(labels, [20, 20, 70 + 9.6]) == 0
    assert _value(labels, [20, 20, 40 + 6]) == FRACTURED
    assert _value(labels, [20, 20, 40 + 7]) == 0
    # radial semi-axis 0.45*30 = 13.5 mm, not flattened
    assert _value(labels, [20 + 13, 20, 40]) == FRACTURED
    assert _value(labels, [20 + 14.5, 20, 40]) == 0


def test_flattening_follows_the_local_spine_axis():
    """A spine running along world x: the fractured ellipsoid is short along x, not z."""
    centroids = {
        20: np.array([20.0, 20.0, 50.0]),
        21: np.array([50.0, 20.0, 50.0]),
        22: np.array([80.0, 20.0, 50.0]),
    }
    grid = _grid((100, 40, 100))
    labels = ellipsoid_label_image(grid, centroids, {20: NORMAL, 21: FRACTURED, 22: NORMAL})
    assert _value(labels, [50 + 7, 20, 50]) == 0
    assert _value(labels, [50, 20, 50 + 13]) == FRACTURED


def test_ignored_vertebrae_and_record_classes():
    recs = [
        VertebraRecord("c", 20, (20.0, 20.0, 70.0), 0),
        VertebraRecord("c", 21, (20.0, 20.0, 40.0), 2, foreign_material=True),
        VertebraRecord("c", 22, (20.0, 20.0, 10.0), None),
    ]
    assert [vertebra_class(r) for r in recs] == [NORMAL, IGNORE_LABEL, IGNORE_LABEL]
    labels = labels_from_records(_grid(), recs)
    assert _value(labels, [20, 20, 40]) == IGNORE_LABEL
    assert _value(labels, [20, 20, 10]) == IGNORE_LABEL


def test_labels_are_the_same_in_world_space_on_a_flipped_grid():
    centroids = {20: np.array([20.0, 20.0, 70.0]), 21: np.array([20.0, 20.0, 40.0])}
    classes = {20: NORMAL, 21: FRACTURED}
    ras = ellipsoid_label_image(_grid(), centroids, classes)
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:3, 3] = [39.0, 39.0, 0.0]  # LPS-ordered grid over the same world box
    lps = ellipsoid_label_image(_grid(affine=flip), centroids, classes)
    np.testing.assert_array_equal(lps.data[::-1, ::-1, :], ras.data)

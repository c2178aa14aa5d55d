"""Patient/vertebra aggregation, ROC convex hull and localisation on hand-made maps."""

from __future__ import annotations

import numpy as np
import pytest

from spinefx.evaluation.patient_roc import (
    best_operating_point,
    convex_hull_auc,
    roc_convex_hull,
)
from spinefx.image import Image
from spinefx.inference.aggregation import fracture_regions, largest_components, vertebra_scores
from spinefx.inference.localisation import (
    assign_levels,
    localisation_errors,
    localise_vertebrae,
)


def test_largest_component_per_probability_threshold():
    p = np.zeros((20, 20, 20), np.float32)
    p[2:5, 2:5, 2:5] = 0.9  # 27 voxels
    p[10:12, 10:12, 10:20] = 0.6  # 40 voxels
    p[0, 19, 19] = 0.99  # 1 voxel
    np.testing.assert_array_equal(
        largest_components(p, probability_thresholds=[0.5, 0.7, 0.95, 0.999]), [40, 27, 1, 0]
    )


def test_fracture_regions_name_the_vertebrae_whose_body_centre_they_hold():
    affine = np.diag([2.0, 2.0, 2.0, 1.0])  # 2 mm voxels, origin at voxel 0
    p = np.zeros((20, 20, 40), np.float32)
    p[4:9, 4:9, 2:16] = 0.8  # 350 voxels running over the centres of L4 and L5
    p[4:7, 4:7, 30:33] = 0.6  # 27 voxels at L2
    p[15, 15, 20] = 0.9  # 1 voxel, near L3 but not at its centre
    centroids = {  # VerSe ids; world mm = 2 x voxel
        19: np.array([500.0, 0.0, 0.0]),  # T12 outside the grid: in no region
        20: np.array([2.0, 2.0, 78.0]),  # L1, voxel (1, 1, 39): in the grid, in no region
        21: np.array([10.0, 10.0, 62.0]),  # L2, voxel (5, 5, 31): in the 27
        22: np.array([12.0, 12.0, 40.0]),  # L3, voxel (6, 6, 20): empty
        23: np.array([12.0, 12.0, 24.0]),  # L4, voxel (6, 6, 12): in the 350
        24: np.array([12.0, 12.0, 6.0]),  # L5, voxel (6, 6, 3): in the 350
    }
    regions = fracture_regions(Image(p, affine), centroids, probability_threshold=0.5)
    assert [r.voxels for r in regions] == [350, 27, 1]
    assert regions[0].vertebrae == (23, 24) and regions[0].bridges_vertebrae
    assert regions[1].vertebrae == (21,) and not regions[1].bridges_vertebrae
    assert regions[2].vertebrae == ()
    np.testing.assert_allclose(regions[1].centre_mm, [10.0, 10.0, 62.0])
    np.testing.assert_allclose(regions[2].centre_mm, [30.0, 30.0, 40.0])
    # t_n leaves out the small ones; t_p above every voxel leaves none
    kept = fracture_regions(Image(p, affine), centroids, probability_threshold=0.5, min_voxels=27)
    assert [r.voxels for r in kept] == [350, 27]
    assert fracture_regions(Image(p, affine), centroids, probability_threshold=0.95) == []


def test_convex_hull_auc_hand_computed():
    # 4 patients (2 fractured); largest component at two t_p values
    y = np.array([1, 1, 0, 0])
    largest = np.array([[100, 50], [30, 0], [40, 5], [0, 0]])
    # grid t_n = (1, 35): classifiers (t_p0,1): tpr 1, fpr .5 ; (t_p0,35): tpr .5, fpr .5
    # (t_p1,1): tpr .5 fpr .5 ; (t_p1,35): tpr .5 fpr 0 -> hull (0,0),(0,.5),(.5,1),(1,1)
    hull = roc_convex_hull(np.array([[0.5, 1.0], [0.5, 0.5], [0.0, 0.5]]))
    np.testing.assert_allclose(hull, [[0, 0], [0, 0.5], [0.5, 1], [1, 1]])
    auc = convex_hull_auc(y, largest, noise_thresholds_vox=(1, 35))
    assert auc == pytest.approx(0.5 * 0.75 + 0.5 * 1.0)
    op = best_operating_point(
        y, largest, probability_thresholds=(0.3, 0.6), noise_thresholds_vox=(1, 35)
    )
    assert (op.tpr - op.fpr) == pytest.approx(0.5)
    assert np.isnan(convex_hull_auc(np.array([1, 1]), largest[:2], noise_thresholds_vox=(1,)))


def test_vertebra_score_is_a_gaussian_weighted_cube_mean():
    data = np.zeros((30, 30, 30), np.float32)
    data[:, :, 15:] = 1.0  # upper half fractured
    img = Image(data, np.eye(4))
    s = vertebra_scores(
        img,
        {
            20: np.array([10.0, 10.0, 5.0]),
            21: np.array([10.0, 10.0, 25.0]),
            22: np.array([10.0, 10.0, 14.5]),
        },
        cube_size_vox=10,
    )
    assert s[20] == 0.0 and s[21] == 1.0
    assert s[22] == pytest.approx(0.5, abs=0.01)  # symmetric weights around the edge
    far = vertebra_scores(img, {20: np.array([500.0, 0, 0])})
    assert np.isnan(far[20])
    rng = np.random.default_rng(0)
    noisy = vertebra_scores(img, {21: np.array([10.0, 10.0, 25.0])}, perturb_sigma_mm=3.0, rng=rng)
    assert noisy[21] == pytest.approx(1.0)  # far from the edge, 3 mm noise changes nothing


def _blobs(z_centres, shape=(30, 30, 160)):
    x, y, z = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    p = np.zeros(shape, np.float32)
    for zc in z_centres:
        p[((x - 15) ** 2 + (y - 15) ** 2) / 81 + (z - zc) ** 2 / 36 < 1] = 0.9
    return Image(p, np.eye(4))


def test_localisation_orders_components_and_anchors_l5_caudally():
    zc = [20, 50, 80, 110, 140]
    found = localise_vertebrae(_blobs(zc), anchor="caudal")
    assert list(found) == [20, 21, 22, 23, 24]  # L1..L5, cranial first
    np.testing.assert_allclose(found[24], [15, 15, 20], atol=0.01)
    np.testing.assert_allclose(found[20], [15, 15, 140], atol=0.01)
    truth = {lab: found[lab] + [0, 0, 3.0] for lab in found}
    err = localisation_errors(found, truth)
    assert err["mean_error_mm"] == pytest.approx(3.0)
    assert err["identification_rate"] == 1.0
    shifted = localisation_errors(found, {lab + 1: p for lab, p in truth.items() if lab < 24})
    assert shifted["identification_rate"] == 0.0  # off by one level: never identified


def test_cranial_anchor_counts_down():
    pts = np.array([[0, 0, 30.0], [0, 0, 0.0]])
    assert list(assign_levels(pts, anchor_label=8, anchor="cranial")) == [8, 9]

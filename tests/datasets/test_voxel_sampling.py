"""Segment extraction (contiguous and strided), class-weighted centres, augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from spinefx.datasets.voxel_sampling import (
    apply_augmentation,
    border_intensity,
    draw_augmentation,
    extract_segment,
    sample_centres,
    segment_pair,
)
from spinefx.models.voxel_classifier import VoxelClassifierConfig, segment_geometry


def test_extract_segment_pads_outside_and_strides():
    vol = np.arange(10 * 10 * 10, dtype=np.float32).reshape(10, 10, 10)
    seg = extract_segment(vol, (-2, 0, 0), size_vox=(4, 2, 2), pad_value=-1.0)
    assert (seg[:2] == -1).all()
    np.testing.assert_array_equal(seg[2:], vol[0:2, 0:2, 0:2])
    low = extract_segment(vol, (-3, 1, 1), size_vox=(5, 3, 3), step_vox=3, pad_value=-7.0)
    np.testing.assert_array_equal(low[1:5], vol[0:10:3, 1:8:3, 1:8:3])
    assert (low[0] == -7).all()


def test_border_intensity_is_mean_of_faces():
    vol = np.zeros((5, 5, 5), np.float32)
    vol[1:-1, 1:-1, 1:-1] = 100.0
    assert border_intensity(vol) == 0.0


def test_highres_and_lowres_segments_share_their_centre_voxel():
    """The middle sample of both segments is the same voxel of the volume."""
    geo = segment_geometry(VoxelClassifierConfig(), output_vox=9)
    vol = np.random.default_rng(0).normal(size=(80, 80, 80)).astype(np.float32)
    centre = np.array([40, 41, 39])
    hi, lo = segment_pair(vol, centre - 4, geo, pad_value=0.0)
    assert hi[12, 12, 12] == vol[tuple(centre)] == lo[9, 9, 9]


def test_sample_centres_follow_class_proportions_and_skip_ignore():
    labels = np.zeros((30, 30, 30), np.uint8)
    labels[5:10, 5:10, 5:10] = 1
    labels[20:22, 20:22, 20:22] = 2
    labels[0:3] = 255
    rng = np.random.default_rng(0)
    centres = sample_centres(labels, n=3000, rng=rng)
    cls = labels[tuple(centres.T)]
    assert 255 not in cls
    assert all(abs(np.mean(cls == c) - 1 / 3) < 0.04 for c in (0, 1, 2))
    labels[labels == 2] = 0  # a scan without fractures: shares go to present classes
    cls = labels[tuple(sample_centres(labels, n=1000, rng=rng).T)]
    assert abs(np.mean(cls == 1) - 0.5) < 0.06


def test_augmentation_flips_images_and_labels_together():
    rng = np.random.default_rng(1)
    img = rng.normal(size=(6, 6, 6)).astype(np.float32)
    lab = (img > 0).astype(np.int64)
    params = draw_augmentation(
        rng, flip_probability=1.0, shift_std=0.0, scale_std=0.0, noise_std=0.0
    )
    out_img, out_lab = apply_augmentation([img, lab], params, intensity_mask=[True, False])
    np.testing.assert_array_equal(out_lab, (out_img > 0).astype(np.int64))
    np.testing.assert_allclose(out_img, img[::-1, ::-1, ::-1])


def test_fixed_ct_normalisation_does_not_depend_on_the_field_of_view():
    """The same bone gets the same input value in a tight crop and in a wide field of view."""
    from spinefx.conventions import CT_NORMALISATION
    from spinefx.datasets.voxel_sampling import prepare_voxel_input
    from spinefx.image import Image

    wide = np.full((40, 40, 20), -1000.0, np.float32)
    wide[15:25, 15:25, :] = 300.0  # bone in a lot of air
    crop = Image(wide[14:26, 14:26, :].copy(), np.eye(4))
    wide = Image(wide, np.eye(4))
    for_wide = prepare_voxel_input(wide, spacing_mm=1.0, normalisation="ct")
    for_crop = prepare_voxel_input(crop, spacing_mm=1.0, normalisation="ct")
    assert for_wide.image.data[20, 20, 10] == pytest.approx(for_crop.image.data[6, 6, 10])
    assert for_wide.image.data[20, 20, 10] == pytest.approx(300.0 / CT_NORMALISATION["std_hu"])
    # the paper's per-scan z-score gives the same bone two different values
    z_wide = prepare_voxel_input(wide, spacing_mm=1.0).image.data[20, 20, 10]
    z_crop = prepare_voxel_input(crop, spacing_mm=1.0).image.data[6, 6, 10]
    assert abs(z_wide - z_crop) > 0.5
    # the typed inverse gives HU back inside the clip window; forward and back round-trip
    assert for_crop.hu_image().data[6, 6, 10] == pytest.approx(300.0)
    assert for_crop.to_network(for_crop.to_hu(1.25)) == pytest.approx(1.25)
    assert "hu_mean" not in for_crop.image.meta  # meta stays provenance only
    with pytest.raises(ValueError, match="normalisation"):
        prepare_voxel_input(crop, spacing_mm=1.0, normalisation="minmax")

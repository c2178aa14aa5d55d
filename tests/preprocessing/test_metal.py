"""Metal detection near vertebrae (instrumented vertebrae are reported as not assessable)."""

from __future__ import annotations

import dataclasses

import numpy as np

from spinefx.image import Image
from spinefx.preprocessing.metal import has_metal, metal_mask, metal_volume_mm3


def _ct_with_rod():
    data = np.full((60, 60, 80), 40.0, np.float32)
    data[20:40, 20:40, 10:70] = 300.0  # a "body"
    data[44:47, 29:32, 30:50] = 3000.0  # a screw 15 mm right of the centre, z 30-49
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [-30.0, -30.0, 0.0]
    return Image(data, affine)


def test_metal_volume_counts_the_rod_in_the_cylinder_only():
    ct = _ct_with_rod()
    centre = ct.voxel_to_world(np.array([30.0, 30.0, 40.0]))
    assert metal_volume_mm3(ct, centre) == 3 * 3 * 20  # radius 30, +-10 mm covers it all
    assert has_metal(ct, centre)
    far = ct.voxel_to_world(np.array([30.0, 30.0, 15.0]))  # 15 mm below the rod's end
    assert metal_volume_mm3(ct, far) == 0 and not has_metal(ct, far)
    outside = centre + np.array([0.0, 0.0, 500.0])
    assert metal_volume_mm3(ct, outside) == 0


def test_metal_mask_dilates_in_mm_and_maps_onto_another_grid():
    ct = _ct_with_rod()
    mask = metal_mask(ct, margin_mm=5.0)
    assert mask[45, 30, 40] and mask[45 + 5, 30, 40] and not mask[45 + 7, 30, 40]
    coarse = Image(np.zeros((30, 30, 40), np.float32), ct.affine @ np.diag([2, 2, 2, 1]))
    on_coarse = metal_mask(ct, like=coarse, margin_mm=5.0)
    assert on_coarse.shape == (30, 30, 40)
    assert on_coarse[22, 15, 20] and not on_coarse[10, 15, 20]
    clean = ct.with_data(np.minimum(ct.data, 1000.0))
    assert not metal_mask(clean, like=coarse).any()


def test_metal_mask_equals_the_distance_transform_of_the_whole_grid():
    # the mask is computed in a box around the metal; on anisotropic voxels, with metal at
    # the grid's corners and in its middle, it equals the whole grid's distance transform
    from scipy import ndimage

    data = np.full((60, 50, 40), -1000.0, np.float32)
    data[10, 20, 5] = data[59, 0, 39] = data[0, 49, 0] = data[30:33, 25, 20] = 4000.0
    ct = Image(data, np.diag([0.7, 1.3, 3.0, 1.0]))
    for margin in (2.0, 10.0, 40.0):
        whole = ndimage.distance_transform_edt(data <= 2500.0, sampling=ct.spacing_mm)
        np.testing.assert_array_equal(
            metal_mask(ct, margin_mm=margin, threshold_hu=2500.0), whole <= margin
        )


def test_synthetic_screwed_vertebrae_are_found_and_the_others_are_not():
    from spinefx.synthesis import case_rng, generate_case, preset

    config = preset("small")
    config = dataclasses.replace(
        config, acquisition=dataclasses.replace(config.acquisition, screw_probability=1.0)
    )
    case = generate_case(config, case_rng(3, 0))
    screwed = {v.vertebra_label for v in case.vertebrae if v.foreign_material}
    assert screwed
    found = {lab for lab, c in case.centroids_mm.items() if has_metal(case.ct, c)}
    assert found == screwed


def test_metal_mask_on_another_grid_equals_resampling_the_whole_metal_map():
    # the mask resamples only the metal's box onto the covering box of ``like``
    from scipy import ndimage

    from spinefx.preprocessing.resample import resample_like

    ct = _ct_with_rod()
    angle = 0.2
    rot = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([1.5, 1.5, 2.0])
    affine[:3, 3] = [-28.0, -31.0, 1.0]
    like = Image(np.zeros((40, 40, 40), np.float32), affine)
    hot = resample_like(ct.with_data((ct.data > 2500.0).astype(np.float32)), like)
    hot = np.asarray(hot.data) > 1e-3
    expected = ndimage.distance_transform_edt(~hot, sampling=like.spacing_mm) <= 5.0
    np.testing.assert_array_equal(metal_mask(ct, like=like, margin_mm=5.0), expected)

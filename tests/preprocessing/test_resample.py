"""Resampling preserves world geometry and round-trips; the RAS<->LPS bridge is exact."""

from __future__ import annotations

import numpy as np
import pytest

from spinefx.errors import InputError
from spinefx.image import Image
from spinefx.preprocessing import (
    image_to_sitk,
    reorient,
    resample_like,
    resample_to_spacing,
    sitk_to_image,
)


def _affine(spacing, origin=(10.0, -20.0, 35.0), angle=0.0) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def _smooth_image(shape, affine) -> Image:
    """A smooth function of world position (so every grid samples the same field)."""
    image = Image(np.zeros(shape, np.float32), affine)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    xyz = image.voxel_to_world(ijk)
    field = np.sin(xyz[..., 0] / 9.0) + np.cos(xyz[..., 1] / 7.0) + xyz[..., 2] / 50.0
    return image.with_data(field.astype(np.float32))


def _marker_image(shape, affine, index, sigma_mm=1.5) -> Image:
    """A bright landmark: a small Gaussian blob (sigma 1.5 mm) centred on voxel ``index``."""
    image = Image(np.zeros(shape, np.float32), affine)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    d2 = ((image.voxel_to_world(ijk) - image.voxel_to_world(np.array(index))) ** 2).sum(-1)
    return image.with_data((1000.0 * np.exp(-d2 / (2 * sigma_mm**2))).astype(np.float32))


def _weighted_centre(image: Image) -> np.ndarray:
    w = np.where(image.data > 1.0, image.data, 0.0)
    ijk = np.argwhere(w > 0)
    centre_vox = (ijk * w[tuple(ijk.T)][:, None]).sum(0) / w.sum()
    return image.voxel_to_world(centre_vox)


def test_sitk_bridge_round_trip_and_lps_geometry():
    import SimpleITK as sitk

    image = _smooth_image((4, 5, 6), _affine((0.7, 0.8, 2.5), angle=0.4))
    sitk_image = image_to_sitk(image)
    # SimpleITK's physical point of a voxel is the LPS version of our RAS world point.
    ras = image.voxel_to_world(np.array([1, 2, 3]))
    lps = sitk_image.TransformIndexToPhysicalPoint((1, 2, 3))
    np.testing.assert_allclose(lps, ras * [-1, -1, 1], atol=1e-9)
    assert sitk_image[1, 2, 3] == pytest.approx(float(image.data[1, 2, 3]))
    back = sitk_to_image(sitk_image)
    np.testing.assert_array_equal(back.data, image.data)
    np.testing.assert_allclose(back.affine, image.affine, atol=1e-12)
    assert sitk.GetArrayViewFromImage(sitk_image).shape == (6, 5, 4)


def test_resample_to_spacing_covers_same_extent():
    image = _smooth_image((20, 30, 10), _affine((0.7, 0.7, 2.5)))
    out = resample_to_spacing(image, 1.0)
    np.testing.assert_allclose(out.spacing_mm, 1.0)
    assert out.shape == (14, 21, 25)
    # grid centres coincide
    np.testing.assert_allclose(
        out.voxel_to_world((np.array(out.shape) - 1) / 2),
        image.voxel_to_world((np.array(image.shape) - 1) / 2),
        atol=1e-9,
    )


def test_upsample_then_back_is_near_identical_for_smooth_image():
    image = _smooth_image((24, 20, 16), _affine((1.0, 1.0, 1.0), angle=0.3))
    fine = resample_to_spacing(image, 0.5)
    assert fine.shape == (48, 40, 32)
    back = resample_like(fine, image)
    np.testing.assert_allclose(back.affine, image.affine, atol=1e-9)
    inner = (slice(1, -1),) * 3
    assert np.abs(back.data[inner] - image.data[inner]).max() < 0.02


def test_resample_anisotropic_samples_the_same_world_field():
    image = _smooth_image((30, 30, 12), _affine((0.7, 0.7, 2.5)))
    out = resample_to_spacing(image, (1.0, 1.0, 1.0), interpolation="bspline")
    expected = _smooth_image(out.shape, out.affine)
    inner = (slice(2, -2), slice(2, -2), slice(3, -3))
    assert np.abs(out.data[inner] - expected.data[inner]).max() < 0.03


def test_nearest_keeps_labels_and_dtype():
    rng = np.random.default_rng(1)
    labels = rng.choice(np.array([0, 20, 21, 22], np.uint16), size=(10, 12, 9))
    image = Image(labels, _affine((1.0, 1.0, 2.0)))
    fine = resample_to_spacing(image, 0.5, interpolation="nearest")
    assert fine.data.dtype == np.uint16
    assert set(np.unique(fine.data)) <= {0, 20, 21, 22}
    back = resample_like(fine, image, interpolation="nearest")
    np.testing.assert_array_equal(back.data, labels)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.7, 0.7, 2.5)])
def test_point_landmark_keeps_world_position(spacing):
    affine = _affine(spacing, angle=0.25)
    image = _marker_image((30, 30, 14), affine, (13, 17, 6))
    before = image.voxel_to_world(np.array([13, 17, 6]))
    for new_spacing in (0.5, 1.0, (0.9, 1.3, 0.6)):
        out = resample_to_spacing(image, new_spacing)
        assert np.linalg.norm(_weighted_centre(out) - before) < 0.1


def test_resample_like_a_reoriented_reference_equals_reorient():
    image = _smooth_image((8, 9, 10), _affine((1.0, 1.5, 2.0)))
    reference = reorient(image, "PIR")
    out = resample_like(image, reference, interpolation="nearest")
    np.testing.assert_array_equal(out.data, reference.data)


def test_fill_value_outside_and_bad_options():
    image = _smooth_image((6, 6, 6), _affine((1.0, 1.0, 1.0)))
    shifted = Image(np.zeros((6, 6, 6)), _affine((1.0, 1.0, 1.0), origin=(100.0, 0.0, 0.0)))
    out = resample_like(image, shifted, fill_value=-1000.0)
    assert np.all(out.data == -1000.0)
    with pytest.raises(InputError, match="interpolation"):
        resample_to_spacing(image, 1.0, interpolation="cubic")
    with pytest.raises(InputError, match="spacing"):
        resample_to_spacing(image, 0.0)


@pytest.mark.parametrize("interpolation", ["linear", "nearest"])
@pytest.mark.parametrize("seed", range(6))
def test_a_grid_on_the_voxel_centres_is_copied_exactly_as_simpleitk_resamples_it(
    interpolation, seed
):
    """Output grids whose voxel centres are the input's (axes permuted and flipped, shifted
    by whole voxels, partly outside) take the copy path; it equals SimpleITK's resampling."""
    from spinefx.preprocessing.resample import (
        _aligned_copy,
        image_to_sitk,
        resample_to_grid,
        resampled_dtype,
        sample_grid,
    )

    rng = np.random.default_rng(seed)
    spacing = np.array([0.8, 1.0, 2.5])
    src_affine = np.diag([*spacing, 1.0])
    src_affine[:3, 3] = rng.uniform(-50, 50, 3)
    src = Image(rng.normal(0, 100, (9, 7, 5)).astype(np.float32), src_affine)
    perm = rng.permutation(3)
    signs = rng.choice([-1, 1], 3)
    rot = np.zeros((3, 3))
    rot[perm, np.arange(3)] = signs  # output axis a along input axis perm[a]
    shift = rng.integers(-4, 8, 3)
    out_affine = src_affine @ np.block([[rot, shift[:, None]], [np.zeros((1, 3)), np.ones((1, 1))]])
    shape = tuple(int(v) for v in rng.integers(3, 11, 3))
    dtype = resampled_dtype(src.data.dtype, interpolation)
    fast = resample_to_grid(src, shape=shape, affine=out_affine, interpolation=interpolation,
                            fill_value=-7.0)  # fmt: skip
    assert _aligned_copy(src, shape, out_affine, -7.0, dtype) is not None
    slow = sample_grid(image_to_sitk(src), shape=shape, affine=out_affine,
                       interpolation=interpolation, fill_value=-7.0, output_dtype=dtype)  # fmt: skip
    np.testing.assert_allclose(fast.data, slow, atol=1e-3)
    assert fast.data.dtype == slow.dtype


def test_a_grid_off_the_voxel_centres_is_not_copied():
    from spinefx.preprocessing.resample import _aligned_copy

    src = Image(np.zeros((5, 5, 5), np.float32), np.eye(4))
    half = np.eye(4)
    half[0, 3] = 0.5
    assert _aligned_copy(src, (5, 5, 5), half, 0.0, np.float32) is None
    finer = np.diag([0.5, 1.0, 1.0, 1.0])
    assert _aligned_copy(src, (5, 5, 5), finer, 0.0, np.float32) is None


def test_crop_to_keeps_every_voxel_at_its_world_position():
    from spinefx.preprocessing.resample import crop_to

    rng = np.random.default_rng(0)
    affine = np.array([[0, -0.7, 0, 12.0], [0.9, 0, 0, -3.0], [0, 0, -2.0, 40.0], [0, 0, 0, 1]])
    img = Image(rng.normal(size=(12, 10, 8)).astype(np.float32), affine)
    where = np.zeros(img.shape, bool)
    where[3:5, 6, 2:4] = True
    crop = crop_to(img, where, margin_vox=(1, 2, 10))
    assert crop.shape == (4, 5, 8)  # grown by the margin, clipped to the grid
    ijk = np.argwhere(np.ones(crop.shape, bool))
    src = np.rint(img.world_to_voxel(crop.voxel_to_world(ijk))).astype(int)
    np.testing.assert_array_equal(crop.data[tuple(ijk.T)], img.data[tuple(src.T)])
    assert crop_to(img, np.zeros(img.shape, bool)) is img
    with pytest.raises(ValueError):
        crop_to(img, np.zeros((2, 2, 2), bool))


def test_an_empty_output_grid_is_an_input_error_on_the_copy_path_too():
    """An aligned grid would take the copy path; an empty shape is refused before it."""
    from spinefx.preprocessing.resample import resample_to_grid

    src = Image(np.zeros((3, 3, 3), np.float32), np.eye(4))
    with pytest.raises(InputError, match="invalid output shape"):
        resample_to_grid(src, shape=(0, 3, 3), affine=np.eye(4))


@pytest.mark.parametrize("angle", [0.0, 0.3])
def test_resampling_only_the_covering_box_gives_the_whole_resampling_there(angle):
    from spinefx.preprocessing.resample import covering_box, resample_into

    source = _smooth_image((40, 36, 30), _affine((1.0, 1.2, 2.0), angle=angle))
    block = np.zeros(source.shape, np.float32)
    block[12:20, 8:15, 10:16] = source.data[12:20, 8:15, 10:16]  # zero outside a block
    source = source.with_data(block)
    target = Image(np.zeros((50, 44, 46), np.float32), _affine((0.9, 0.9, 1.1), (6.0, -24.0, 30.0)))
    whole = np.asarray(resample_like(source, target).data)
    box = covering_box(source, (11, 7, 9), (20, 15, 16), target)
    part = np.asarray(resample_into(source, target, box).data)
    np.testing.assert_allclose(part, whole[box], atol=1e-6)  # float rounding of the origin
    outside = np.ones(target.shape, bool)
    outside[box] = False
    assert not whole[outside].any()  # the box holds everything the block maps to

"""Spine-aligned patches: they land where they came from, and map back onto the scan."""

from __future__ import annotations

import numpy as np
import pytest

from spinefx.image import Image
from spinefx.preprocessing import (
    VertebraFrame,
    extract_patch,
    extract_vertebra_patches,
    frame_from_tangent,
    patch_map_to_scan,
    reorient,
)


def _pir_scan(shape=(60, 70, 50), spacing=(1.0, 1.0, 1.0)) -> Image:
    """An empty PIR scan (as the VerSe/ctfu files) in HU, origin somewhere in space."""
    affine = np.array(
        [
            [0, 0, spacing[2], -25.0],
            [-spacing[0], 0, 0, 40.0],
            [0, -spacing[1], 0, 30.0],
            [0, 0, 0, 1],
        ]
    )
    return Image(np.full(shape, -1000.0, np.float32), affine)


def _with_blob(scan: Image, centre_mm: np.ndarray, sigma_mm=1.5, peak=2000.0) -> Image:
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in scan.shape], indexing="ij"), -1)
    d2 = ((scan.voxel_to_world(ijk) - centre_mm) ** 2).sum(-1)
    return scan.with_data(scan.data + (peak * np.exp(-d2 / (2 * sigma_mm**2))).astype(np.float32))


def _smooth_scan(scan: Image) -> Image:
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in scan.shape], indexing="ij"), -1)
    xyz = scan.voxel_to_world(ijk)
    field = 300 * np.sin(xyz[..., 0] / 8) + 200 * np.cos(xyz[..., 1] / 6) + 5 * xyz[..., 2]
    return scan.with_data(field.astype(np.float32))


def _scan_voxels_in_patch(scan: Image, patch: Image) -> np.ndarray:
    """Continuous patch index of every scan voxel centre, shape ``(X, Y, Z, 3)``."""
    m = np.linalg.inv(patch.affine) @ scan.affine
    ijk = np.indices(scan.shape, dtype=np.float64)
    return np.einsum("ab,bxyz->xyza", m[:3, :3], ijk) + m[:3, 3]


def _bright_centre_world(image: Image, threshold: float) -> np.ndarray:
    w = np.where(image.data > threshold, image.data - threshold, 0.0)
    ijk = np.argwhere(w > 0)
    return image.voxel_to_world((ijk * w[tuple(ijk.T)][:, None]).sum(0) / w.sum())


def _tilted_frame(origin_mm, label=22) -> VertebraFrame:
    return frame_from_tangent(np.asarray(origin_mm), np.array([0.4, -0.5, 1.0]), label=label)


@pytest.mark.parametrize("spacing_mm", [1.0, 0.8])
def test_marker_found_in_tilted_patch_maps_back_to_its_world_position(spacing_mm):
    scan = _pir_scan()
    centre = scan.voxel_to_world((np.array(scan.shape) - 1) / 2)
    marker = centre + np.array([4.3, -6.1, 7.7])
    scan = _with_blob(scan, marker)
    frame = _tilted_frame(centre)
    patch = extract_patch(scan, frame, size_vox=32, spacing_mm=spacing_mm)
    assert patch.shape == (32, 32, 32) and patch.data.dtype == np.float32
    np.testing.assert_allclose(patch.spacing_mm, spacing_mm)
    found = _bright_centre_world(patch, threshold=-900.0)
    assert np.linalg.norm(found - marker) < 0.1  # sub-voxel (voxel = 1 mm)
    # the marker's frame coordinates are its offset from the centroid along the frame axes
    local = frame.to_local(marker)
    patch_vox = patch.world_to_voxel(marker)
    np.testing.assert_allclose(patch_vox, 15.5 + local / spacing_mm, atol=1e-9)


def test_patch_centre_is_the_centroid_and_axes_are_the_frame():
    scan = _pir_scan()
    frame = _tilted_frame([1.0, 2.0, 3.0])
    patch = extract_patch(scan, frame, size_vox=16, spacing_mm=1.5)
    np.testing.assert_allclose(patch.voxel_to_world([7.5, 7.5, 7.5]), frame.origin_mm)
    np.testing.assert_allclose(patch.affine[:3, :3], frame.axes * 1.5)
    assert patch.meta["level"] == "L3" and patch.meta["vertebra_label"] == 22


def test_identity_frame_on_ras_scan_is_a_plain_crop():
    scan = reorient(_smooth_scan(_pir_scan()), "RAS")
    ijk_centre = np.array([20.0, 25.0, 30.0])
    frame = VertebraFrame(20, scan.voxel_to_world(ijk_centre), np.eye(3))
    patch = extract_patch(scan, frame, size_vox=9)
    np.testing.assert_allclose(patch.data, scan.data[16:25, 21:30, 26:35], atol=1e-3)
    assert patch.meta["out_of_view_fraction"] == 0.0


def test_patch_map_to_scan_reproduces_scan_inside_patch_and_zero_outside():
    scan = _smooth_scan(_pir_scan())
    centre = scan.voxel_to_world((np.array(scan.shape) - 1) / 2)
    patch = extract_patch(scan, _tilted_frame(centre), size_vox=24)
    back = patch_map_to_scan(patch, scan)
    assert back.shape == scan.shape
    np.testing.assert_allclose(back.affine, scan.affine)
    # scan voxels well inside the patch (>= 2 voxels from its faces) come back unchanged
    pv = _scan_voxels_in_patch(scan, patch)
    inside = np.all((pv >= 2) & (pv <= 21), axis=-1)
    outside = np.any((pv < -1) | (pv > 24), axis=-1)
    assert inside.sum() > 5000
    err = np.abs(back.data[inside] - scan.data[inside])
    assert err.max() < 0.02 * np.ptp(scan.data)
    assert np.all(back.data[outside] == 0.0)


def test_out_of_view_is_air_and_counted():
    scan = reorient(_smooth_scan(_pir_scan()), "RAS")
    # centre half a voxel outside the first x face: half the patch columns are outside
    frame = VertebraFrame(20, scan.voxel_to_world([-0.5, 25.0, 25.0]), np.eye(3))
    patch = extract_patch(scan, frame, size_vox=10)
    assert patch.meta["out_of_view_fraction"] == pytest.approx(0.5)
    np.testing.assert_array_equal(patch.data[:5], -1000.0)
    far = VertebraFrame(20, np.array([1e4, 0, 0]), np.eye(3))
    patch = extract_patch(scan, far, size_vox=4)
    assert patch.meta["out_of_view_fraction"] == 1.0 and np.all(patch.data == -1000.0)


def test_extract_vertebra_patches_excludes_cervical_by_default():
    scan = _pir_scan(shape=(40, 120, 40))
    centre = scan.voxel_to_world((np.array(scan.shape) - 1) / 2)
    centroids = {lab: centre + [0, 0, 25.0 * (6 - lab)] for lab in (5, 6, 7, 8)}
    patches = extract_vertebra_patches(scan, centroids, size_vox=8, case_id="c1")
    assert list(patches) == [8]
    assert patches[8].meta["case_id"] == "c1"
    patches = extract_vertebra_patches(scan, centroids, size_vox=8, include_cervical=True)
    assert list(patches) == [5, 6, 7, 8]
    for lab, patch in patches.items():
        np.testing.assert_allclose(patch.voxel_to_world([3.5] * 3), centroids[lab])


def test_out_of_view_fraction_equals_voxel_by_voxel_count():
    from spinefx.preprocessing import out_of_view_fraction, patch_affine

    rng = np.random.default_rng(3)
    for _ in range(60):
        q = np.linalg.qr(rng.normal(size=(3, 3)))[0]
        scan_affine = np.eye(4)
        scan_affine[:3, :3] = q * rng.uniform(0.5, 2.0, 3)
        scan = Image(np.zeros(tuple(rng.integers(3, 20, 3))), scan_affine)
        frame = frame_from_tangent(rng.normal(size=3) * 8, rng.normal(size=3), label=20)
        affine = patch_affine(frame, size_vox=8, spacing_mm=float(rng.uniform(0.5, 2.0)))
        shape = tuple(int(n) for n in rng.integers(2, 14, 3))
        ijk = np.indices(shape).reshape(3, -1).T
        v = scan.world_to_voxel(Image(np.zeros(shape), affine).voxel_to_world(ijk))
        inside = np.all((v >= -0.5) & (v <= np.array(scan.shape) - 0.5), axis=1)
        assert out_of_view_fraction(scan, affine, shape) == pytest.approx(1 - inside.mean())


def test_patch_map_to_scan_for_patches_at_or_beyond_the_scan_edge():
    scan = _smooth_scan(_pir_scan())
    corner = scan.voxel_to_world(np.array([2.0, 3.0, 1.0]))
    patch = extract_patch(scan, _tilted_frame(corner), size_vox=16)
    assert 0.3 < patch.meta["out_of_view_fraction"] < 1.0
    ones = patch.with_data(np.ones(patch.shape, np.float32))
    back = patch_map_to_scan(ones, scan)
    pv = _scan_voxels_in_patch(scan, patch)
    inside = np.all((pv >= 0) & (pv <= 15), axis=-1)
    np.testing.assert_allclose(back.data[inside], 1.0, atol=1e-5)
    assert np.all(back.data[np.any((pv < -1) | (pv > 16), axis=-1)] == 0.0)
    far = extract_patch(scan, _tilted_frame([1e4, 0.0, 0.0]), size_vox=8)
    assert not patch_map_to_scan(far, scan).data.any()

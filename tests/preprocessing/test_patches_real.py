"""Patches on the real CT samples: each patch centre lies inside its own vertebra's label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from spinefx.image import Image
from spinefx.preprocessing import extract_vertebra_patches, patch_map_to_scan

io = pytest.importorskip("spinefx.io")


def _load(name: str):
    """The io stage's loaders (``spinefx.io`` API)."""
    if not hasattr(io, name):
        pytest.skip(f"spinefx.io.{name} is not available yet")
    return getattr(io, name)


CTFU = "ctfu/{raw}/sub-ctfu00001/{ses}/sub-ctfu00001_{ses}{split}_ce-no_{suffix}"
CTFU_CASES = [("ses-20080508", ""), ("ses-20140908", "_split-1")]


def _scan_voxels_in_patch(scan: Image, patch: Image) -> np.ndarray:
    """Continuous patch index of every scan voxel centre, shape ``(X, Y, Z, 3)``."""
    m = np.linalg.inv(patch.affine) @ scan.affine
    ijk = np.indices(scan.shape, dtype=np.float32)
    return np.einsum("ab,bxyz->xyza", m[:3, :3].astype(np.float32), ijk) + m[:3, 3].astype(
        np.float32
    )


def _label_at(mask: Image, world_mm: np.ndarray) -> int:
    ijk = np.round(mask.world_to_voxel(world_mm)).astype(int)
    return int(mask.data[tuple(ijk)])


@pytest.mark.parametrize("ses, split", CTFU_CASES)
def test_ctfu_patch_centres_lie_in_their_own_vertebra(real_data: Path, ses, split):
    def path(raw, suffix):
        return real_data / CTFU.format(raw=raw, ses=ses, split=split, suffix=suffix)

    scan = _load("load_scan")(path("rawdata", "ct.nii.gz"))
    mask = _load("load_mask")(path("derivatives", "seg-vert_msk.nii.gz"))
    centroids = _load("load_centroids")(path("derivatives", "seg-subreg_ctd.json"), scan)
    assert scan.orientation == "PIR"
    patches = extract_vertebra_patches(scan, centroids, size_vox=96, spacing_mm=1.0)
    assert set(patches) == {lab for lab in centroids if lab > 7}
    for label, patch in patches.items():
        assert patch.shape == (96, 96, 96)
        centre = patch.voxel_to_world(np.full(3, 47.5))
        assert _label_at(mask, centre) == label
        # the frame's z axis points cranially and y anteriorly in world space (the cervical
        # lordosis of the second scan tilts T1's frame by ~50 degrees)
        assert patch.affine[2, 2] > 0.5 and patch.affine[1, 1] > 0.5
        assert 0.0 <= patch.meta["out_of_view_fraction"] < 1.0
        # the vertebral body is bone: the patch centre is denser than water and than the
        # patch as a whole (fat, muscle, air around it)
        core = patch.data[44:52, 44:52, 44:52].mean()
        assert core > 20.0 and core > np.median(patch.data)


def test_ctfu_patch_maps_back_onto_scan(real_data: Path):
    ses, split = CTFU_CASES[0]
    scan = _load("load_scan")(
        real_data / CTFU.format(raw="rawdata", ses=ses, split=split, suffix="ct.nii.gz")
    )
    ctd = real_data / CTFU.format(
        raw="derivatives", ses=ses, split=split, suffix="seg-subreg_ctd.json"
    )
    centroids = _load("load_centroids")(ctd, scan)
    # smooth away voxel noise so that the two interpolations (scan->patch->scan) are exact
    # up to a few HU; a misplacement by one voxel would cost far more.
    scan = scan.with_data(ndimage.gaussian_filter(scan.data.astype(np.float32), 1.5))
    patch = extract_vertebra_patches(scan, centroids, size_vox=48)[22]
    back = patch_map_to_scan(patch, scan)
    pv = _scan_voxels_in_patch(scan, patch)
    inside = np.all((pv >= 2) & (pv <= 45), axis=-1)
    error = np.abs(back.data[inside] - scan.data[inside])
    shifted = np.abs(back.data[inside] - np.roll(scan.data, 1, axis=0)[inside])
    assert np.median(error) < 10.0
    assert np.median(error) < 0.25 * np.median(shifted), (np.median(error), np.median(shifted))


def test_tptbox_body_centroid_from_masks_lies_in_its_vertebra(real_data: Path):
    folder = real_data / "tptbox"
    scan = _load("load_scan")(folder / "sub-ct_label-22_ct.nii.gz")
    mask = _load("load_mask")(folder / "sub-ct_seg-vert_label-22_msk.nii.gz")
    subreg = _load("load_mask")(folder / "sub-ct_seg-subreg_label-22_msk.nii.gz", known_labels=None)
    centroids = _load("centroids_from_mask")(mask, subregion_mask=subreg)
    assert 22 in centroids
    np.testing.assert_allclose(scan.spacing_mm, 1.5)
    patches = extract_vertebra_patches(scan, centroids, size_vox=96, spacing_mm=1.0)
    centre = patches[22].voxel_to_world(np.full(3, 47.5))
    assert _label_at(mask, centre) == 22
    # a 96 mm cube around L3 is larger than this cut-out: part of it is out of view, as air
    assert patches[22].meta["out_of_view_fraction"] > 0.1
    assert patches[22].data[0, 0, 0] == -1000.0


def test_totalseg_ras_3mm_patch_centres_lie_in_their_own_vertebra(real_data: Path):
    folder = real_data / "totalseg"
    scan = _load("load_scan")(folder / "example_ct.nii.gz")
    mask = _load("load_mask")(
        folder / "spine_report" / "totalseg_vertebrae_pp_refined.nii.gz", known_labels=None
    )
    assert scan.orientation == "RAS"
    # TotalSegmentator ids 19-24 here are T12-L5, the same numbers as VerSe's
    centroids = _load("centroids_from_mask")(mask)
    patches = extract_vertebra_patches(scan, centroids, size_vox=96, spacing_mm=1.0)
    assert set(patches) == set(range(19, 25))
    for label, patch in patches.items():
        assert _label_at(mask, patch.voxel_to_world(np.full(3, 47.5))) == label


@pytest.mark.parametrize("axcodes", ["RAS", "LPI", "SAL"])
def test_patches_do_not_depend_on_scan_orientation(real_data: Path, axcodes):
    from spinefx.preprocessing import reorient

    ses, split = CTFU_CASES[0]
    scan = _load("load_scan")(
        real_data / CTFU.format(raw="rawdata", ses=ses, split=split, suffix="ct.nii.gz")
    )
    ctd = real_data / CTFU.format(
        raw="derivatives", ses=ses, split=split, suffix="seg-subreg_ctd.json"
    )
    centroids = _load("load_centroids")(ctd, scan)
    native = extract_vertebra_patches(scan, centroids, size_vox=32)
    other = extract_vertebra_patches(reorient(scan, axcodes), centroids, size_vox=32)
    for label in native:
        np.testing.assert_allclose(other[label].affine, native[label].affine)
        np.testing.assert_allclose(other[label].data, native[label].data, atol=1e-2)


def test_marker_in_real_ct_found_in_tilted_patch_at_its_world_position(real_data: Path):
    """A bright marker put into the real CT is found in the (~50 degree tilted) T1 patch, and
    its patch voxel maps through the patch affine to where it was put (sub-voxel)."""
    ses, split = CTFU_CASES[1]
    scan = _load("load_scan")(
        real_data / CTFU.format(raw="rawdata", ses=ses, split=split, suffix="ct.nii.gz")
    )
    ctd = real_data / CTFU.format(
        raw="derivatives", ses=ses, split=split, suffix="seg-subreg_ctd.json"
    )
    centroids = _load("load_centroids")(ctd, scan)
    marker = centroids[8] + np.array([6.3, -9.7, 11.2])  # inside T1's patch, off-centre
    data = np.array(scan.data, np.float32)
    centre = np.round(scan.world_to_voxel(marker)).astype(int)
    box = tuple(slice(c - 6, c + 7) for c in centre)  # the blob is < 1e-3 beyond 6 voxels
    ijk = np.stack(np.meshgrid(*[np.arange(b.start, b.stop) for b in box], indexing="ij"), -1)
    d2 = ((scan.voxel_to_world(ijk) - marker) ** 2).sum(-1)
    data[box] += 20000.0 * np.exp(-d2 / (2 * 1.5**2))
    patch = extract_vertebra_patches(scan.with_data(data), centroids, size_vox=64)[8]
    assert patch.affine[2, 2] < 0.8  # genuinely tilted frame
    weights = np.where(patch.data > 5000.0, patch.data - 5000.0, 0.0)
    idx = np.argwhere(weights > 0)
    found = patch.voxel_to_world((idx * weights[tuple(idx.T)][:, None]).sum(0) / weights.sum())
    assert np.linalg.norm(found - marker) < 0.3

"""The scan viewer's volumes: the scan, its labels and probabilities as NIfTI on the scan grid.

Served by ``GET /api/scans/{id}/volumes/{ct,labels,probability}.nii.gz``; what a NIfTI reader
gets back must lie on the uploaded scan's grid and affine, voxel for voxel.
"""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from spinefx.app import volumes
from spinefx.image import Image

LABELS = (19, 20, 21, 22, 23)  # the phantom's vertebrae (tests/app/conftest.py), T12-L4


def _read(content: bytes) -> nib.Nifti1Image:
    assert content[:2] == b"\x1f\x8b", "not gzip"
    return nib.Nifti1Image.from_bytes(gzip.decompress(content))


def _upload(client, scan_path, *, ctd_path=None, mask_path=None):
    files = {"scan": (scan_path.name, scan_path.read_bytes())}
    if ctd_path is not None:
        files["centroids"] = (ctd_path.name, ctd_path.read_bytes())
    if mask_path is not None:
        files["mask"] = (mask_path.name, mask_path.read_bytes())
    r = client.post("/api/scans", files=files, data={"mask_numbering": "verse"})
    assert r.status_code == 200, r.text
    return r.json()


def test_the_served_scan_has_the_uploads_affine_and_hu(client, phantom_files):
    from spinefx.io import load_scan

    scan_path, ctd_path = phantom_files
    s = _upload(client, scan_path, ctd_path=ctd_path)
    assert s["viewer"]["volumes"]["ct"] == f"/api/scans/{s['scan_id']}/volumes/ct.nii.gz"
    r = client.get(s["viewer"]["volumes"]["ct"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/gzip"
    served = _read(r.content)
    scan = load_scan(scan_path)
    assert served.shape == scan.shape
    np.testing.assert_allclose(served.affine, scan.affine, atol=1e-5)
    assert served.header.get_sform(coded=True)[1] == 1  # scanner (RAS+ world)
    assert served.get_data_dtype() == np.int16
    hu = np.asarray(served.dataobj)
    assert np.abs(hu - scan.data).max() <= 0.5  # rounded HU, nothing else changed
    again = client.get(s["viewer"]["volumes"]["ct"]).content
    assert again == r.content  # encoded once, the same bytes every time


def test_centroid_spheres_carry_each_vertebras_label_and_probability(client, phantom_files):
    from spinefx.io import load_scan

    scan_path, ctd_path = phantom_files
    s = _upload(client, scan_path, ctd_path=ctd_path)
    scan = load_scan(scan_path)
    viewer = s["viewer"]
    assert viewer["label_source"] == "spheres at the centroids"
    radius = viewer["sphere_radius_mm"]
    assert radius == pytest.approx(0.4 * 30.0)  # phantom centroids are 30 mm apart
    assert viewer["levels"] == {"19": "T12", "20": "L1", "21": "L2", "22": "L3", "23": "L4"}
    labels = _read(client.get(viewer["volumes"]["labels"]).content)
    prob = _read(client.get(viewer["volumes"]["probability"]).content)
    for img in (labels, prob):
        assert img.shape == scan.shape
        np.testing.assert_allclose(img.affine, scan.affine, atol=1e-5)
    lab = np.asarray(labels.dataobj)
    p = np.asarray(prob.get_fdata())
    assert set(np.unique(lab)) == {0, *LABELS}
    voxel_mm = float(np.prod(scan.spacing_mm))
    for v in s["vertebrae"]:
        centre = np.rint(scan.world_to_voxel(np.array(v["centroid_mm"]))).astype(int)
        assert lab[tuple(centre)] == v["label"]
        region = lab == v["label"]
        expected_mm3 = 4 / 3 * np.pi * radius**3
        assert region.sum() * voxel_mm == pytest.approx(expected_mm3, rel=0.1)
        np.testing.assert_allclose(p[region], max(v["probability"], 0.004), atol=0.5 / 250)
    assert np.all(p[lab == 0] == 0)


def test_a_mask_upload_labels_the_viewer_with_the_mask(client, phantom_mask_files):
    from spinefx.io.scan import load_mask

    scan_path, mask_path = phantom_mask_files
    mask = np.asarray(load_mask(mask_path, known_labels=None).data)
    s = _upload(client, scan_path, mask_path=mask_path)
    assert s["viewer"]["label_source"] == "vertebra mask"
    assert s["viewer"]["sphere_radius_mm"] is None
    assert sorted(s["viewer"]["levels"]) == [str(k) for k in LABELS]
    labels = _read(client.get(s["viewer"]["volumes"]["labels"]).content)
    prob = _read(client.get(s["viewer"]["volumes"]["probability"]).content)
    np.testing.assert_array_equal(np.asarray(labels.dataobj), mask)
    p = prob.get_fdata()
    for v in s["vertebrae"]:
        region = mask == v["label"]
        np.testing.assert_allclose(p[region], max(v["probability"], 0.004), atol=0.5 / 250)
    assert np.all(p[mask == 0] == 0)


def test_a_mask_on_another_grid_is_resampled_onto_the_scan(phantom_mask_files):
    from spinefx.io import load_scan
    from spinefx.io.scan import load_mask

    scan = load_scan(phantom_mask_files[0])
    mask = load_mask(phantom_mask_files[1], known_labels=None)
    data = np.asarray(mask.data)
    affine = mask.affine.copy()
    affine[:3, 3] = mask.voxel_to_world(np.array([4, 2, 10]))
    crop = Image(data[4:40, 2:44, 10:90], affine, {})
    on_scan = volumes.mask_labels_on_scan(crop, scan)
    assert on_scan.dtype == np.uint8 and on_scan.shape == scan.shape
    expected = np.zeros_like(on_scan)
    expected[4:40, 2:44, 10:90] = data[4:40, 2:44, 10:90]
    np.testing.assert_array_equal(on_scan, expected)


def test_unknown_volume_or_scan_is_404(client, phantom_files):
    s = _upload(client, phantom_files[0], ctd_path=phantom_files[1])
    assert client.get(f"/api/scans/{s['scan_id']}/volumes/secrets.nii.gz").status_code == 404
    assert client.get("/api/scans/nope/volumes/ct.nii.gz").status_code == 404


def test_the_encoder_writes_slab_by_slab_what_nibabel_writes_whole(monkeypatch):
    rng = np.random.default_rng(0)
    data = rng.normal(0, 3000, (7, 5, 11)).astype(np.float32)
    data[0, 0, 0] = 1e6  # clipped to the int16 range
    affine = np.array([[0, 0, -1.5, 20], [-0.8, 0, 0, 5], [0, 2.0, 0, -7], [0, 0, 0, 1]])
    monkeypatch.setattr(volumes, "SLAB_BYTES", 2 * 7 * 5 * 2)  # two slices per slab
    img = _read(volumes.nifti_gz(data, affine, dtype=np.int16))
    np.testing.assert_allclose(img.affine, affine)
    expected = np.clip(np.rint(data), -32768, 32767).astype(np.int16)
    np.testing.assert_array_equal(np.asarray(img.dataobj), expected)
    codes = np.arange(7 * 5 * 11, dtype=np.uint8).reshape(7, 5, 11)
    scaled = _read(volumes.nifti_gz(codes, affine, dtype=np.uint8, slope=1 / 250))
    np.testing.assert_allclose(scaled.get_fdata(), codes / 250, rtol=1e-6)


def test_spheres_skip_centroids_outside_the_grid_and_never_touch():
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    centroids = {20: np.array([20.0, 20.0, 20.0]), 21: np.array([20.0, 20.0, 45.0])}
    centroids[22] = np.array([20.0, 20.0, 500.0])  # outside
    labels, radius = volumes.centroid_spheres((20, 20, 30), affine, centroids)
    assert radius == pytest.approx(10.0)  # 0.4 x 25 mm
    assert set(np.unique(labels)) == {0, 20, 21}
    z20 = np.flatnonzero((labels == 20).any(axis=(0, 1)))
    z21 = np.flatnonzero((labels == 21).any(axis=(0, 1)))
    assert z20.max() < z21.min() - 1

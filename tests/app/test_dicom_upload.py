"""A zipped DICOM series uploads like its NIfTI twin: same vertebrae, same probabilities."""

from __future__ import annotations

import re
import zipfile

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from spinefx.io import load_scan, save_centroids


def _write_axial_series(folder, hu: np.ndarray, *, origin_lps, spacing_mm: float) -> None:
    """HU volume indexed (x: right, y: anterior, z: superior) as axial slices (LPS headers)."""
    folder.mkdir(parents=True)
    series_uid = generate_uid()
    stored = np.clip(np.round(hu + 1024), 0, 65535).astype(np.uint16)
    for k in range(hu.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{k:03d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID = "CT", series_uid
        ds.PatientName, ds.PatientID = "DOE^JANE", "ID-4711"
        # rows run along -X_lps (= +x RAS), columns along -Y_lps (= +y RAS)
        ds.ImageOrientationPatient = [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0]
        ds.ImagePositionPatient = [origin_lps[0], origin_lps[1], origin_lps[2] + k * spacing_mm]
        ds.PixelSpacing = [spacing_mm, spacing_mm]
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1.0, -1024.0
        ds.InstanceNumber = k + 1
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()  # (rows=y, cols=x)
        ds.save_as(str(folder / f"{k:03d}.dcm"), enforce_file_format=True)


def test_zipped_dicom_series_gives_the_same_table_as_the_nifti(client, phantom_files, tmp_path):
    scan_path, ctd_path = phantom_files
    nifti = load_scan(scan_path)
    origin = nifti.affine[:3, 3]
    _write_axial_series(
        tmp_path / "series",
        np.asarray(nifti.data, dtype=np.float32),
        origin_lps=(-origin[0], -origin[1], origin[2]),
        spacing_mm=float(nifti.spacing_mm[0]),
    )
    dicom = load_scan(tmp_path / "series")
    assert np.allclose(dicom.affine, nifti.affine)
    from spinefx.io import load_centroids

    ctd_dicom = save_centroids(load_centroids(ctd_path, nifti), tmp_path / "ctd.json", dicom)
    zpath = tmp_path / "series.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for f in sorted((tmp_path / "series").iterdir()):
            z.write(f, f"study/series/{f.name}")

    def table(scan_file, name):
        r = client.post(
            "/api/scans",
            files={
                "scan": (name, scan_file.read_bytes()),
                "centroids": ("c.json", ctd_dicom.read_bytes()),
            },
        )
        assert r.status_code == 200, r.text
        return r.json()

    from_zip = table(zpath, "series.zip")
    from_nifti = table(scan_path, scan_path.name)
    assert [v["level"] for v in from_zip["vertebrae"]] == [
        v["level"] for v in from_nifti["vertebrae"]
    ]
    p_zip = np.array([v["probability"] for v in from_zip["vertebrae"]])
    p_nii = np.array([v["probability"] for v in from_nifti["vertebrae"]])
    assert np.allclose(p_zip, p_nii, atol=2e-3)  # HU rounded to integers in DICOM
    sid = from_zip["scan_id"]
    html = client.post(f"/api/scans/{sid}/report.html", data={"findings": "x"}).text
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)  # base64 may spell anything
    assert "DOE" not in text and "ID-4711" not in text

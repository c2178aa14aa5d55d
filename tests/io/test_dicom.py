"""DICOM series: pydicom path vs SimpleITK, LPS->RAS, sorting, rescale, tilt and spacing checks.

About the TotalSegmentator sample: ``example_ct_dicom`` (20 slices, 0.98 x 0.98 mm, 2 mm gaps,
z = -804.5..-766.5 mm) and ``example_ct.nii.gz`` (3 mm resampled, z = 94..427 mm) do not share
a frame of reference: their world boxes do not overlap at all. HU template matching puts the
DICOM slab in the upper abdomen, near NIfTI slices k = 99..110 (kidney upper poles, liver); a
SimpleITK translation registration (correlation metric) finds an in-plane shift of only ~11 mm
but a z shift of ~1.17 m, poorly determined, at a correlation of ~0.6: the same patient, not the
same reconstruction. A voxel-wise comparison is therefore impossible; instead the tests prove the
DICOM geometry against SimpleITK (an independent reader), and the RAS+ anatomy of both against
each other: the liver lies to the patient's right (+x) and anterior of the body centre, the spine
posterior (-y), and the HU calibration (air, fat) agrees.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from scipy import ndimage

from spinefx.errors import InputError
from spinefx.io import load_dicom_series, load_scan

SAGITTAL_IOP = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # rows run anterior->posterior, columns down


def write_series(
    folder,
    volume: np.ndarray,
    *,
    iop=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    origin=(-20.0, -30.0, 100.0),
    spacing=(0.8, 0.7),
    gaps=None,
    shear=(0.0, 0.0, 0.0),
    slope=1.0,
    intercept=-1024.0,
    series_uid=None,
    prefix="im",
):
    """Write ``volume`` (rows, cols, slices) of stored values as uncompressed CT slices, shuffled."""
    folder.mkdir(parents=True, exist_ok=True)
    iop = np.asarray(iop, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    n = volume.shape[2]
    gaps = np.full(n - 1, 1.5) if gaps is None else np.asarray(gaps, dtype=float)
    offsets = np.concatenate([[0.0], np.cumsum(gaps)])
    series_uid = series_uid or generate_uid()
    rng = np.random.default_rng(0)
    for k in rng.permutation(n):
        position = np.asarray(origin) + offsets[k] * normal + k * np.asarray(shear)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(
            str(folder / f"{prefix}{k:03d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128
        )
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID = "CT", series_uid
        ds.ImageOrientationPatient = [float(v) for v in iop]
        ds.ImagePositionPatient = [float(v) for v in position]
        ds.PixelSpacing = [float(spacing[0]), float(spacing[1])]
        ds.Rows, ds.Columns = volume.shape[:2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.InstanceNumber = int(k) + 1
        ds.PixelData = np.ascontiguousarray(volume[:, :, k].astype(np.uint16)).tobytes()
        ds.save_as(str(folder / f"{prefix}{k:03d}.dcm"), enforce_file_format=True)


def stored_volume(shape=(10, 12, 6)) -> np.ndarray:
    rng = np.random.default_rng(3)
    volume = rng.integers(0, 30, size=shape).astype(np.uint16)  # air (-1024 + noise)
    volume[2:8, 3:9, 1:5] = 1024 + 700  # bone block
    return volume


def test_synthetic_series_geometry_and_values_are_exact(tmp_path):
    volume = stored_volume()
    write_series(tmp_path / "s", volume, iop=SAGITTAL_IOP, slope=1.0, intercept=-1024)
    (tmp_path / "s" / "notes.txt").write_text("not dicom")
    image = load_dicom_series(tmp_path / "s")
    # array axis 0 = column index, 1 = row index, 2 = slice; HU = stored - 1024
    np.testing.assert_array_equal(image.data, volume.transpose(1, 0, 2).astype(np.int16) - 1024)
    # LPS affine built by hand, then RAS = diag(-1, -1, 1) @ LPS
    row_dir, col_dir = np.array(SAGITTAL_IOP[:3]), np.array(SAGITTAL_IOP[3:])
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1] = row_dir * 0.7, col_dir * 0.8
    lps[:3, 2], lps[:3, 3] = np.cross(row_dir, col_dir) * 1.5, (-20.0, -30.0, 100.0)
    np.testing.assert_allclose(image.affine, np.diag([-1.0, -1, 1, 1]) @ lps, atol=1e-9)
    # rows -> posterior, columns -> inferior, normal = row x col = LPS -x = right
    assert image.orientation == "PIR"


def test_pydicom_reader_agrees_with_simpleitk_on_an_oblique_synthetic_series(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    c, s_ = np.cos(np.radians(20)), np.sin(np.radians(20))
    iop = (0.0, c, s_, 0.0, -s_, c)  # sagittal, rotated 20 degrees about x
    write_series(tmp_path / "s", stored_volume(), iop=iop, origin=(12.0, -40.0, 7.5))
    image = load_dicom_series(tmp_path / "s")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "s")))
    reference = reader.Execute()
    lps = np.eye(4)
    lps[:3, :3] = np.array(reference.GetDirection()).reshape(3, 3) * np.array(
        reference.GetSpacing()
    )
    lps[:3, 3] = reference.GetOrigin()
    np.testing.assert_allclose(image.affine, np.diag([-1.0, -1, 1, 1]) @ lps, atol=1e-4)
    np.testing.assert_array_equal(image.data, sitk.GetArrayFromImage(reference).transpose(2, 1, 0))


def test_rescale_slope_and_intercept_are_applied(tmp_path):
    volume = stored_volume()
    write_series(tmp_path / "s", volume, slope=0.5, intercept=-1000)
    image = load_dicom_series(tmp_path / "s")
    np.testing.assert_allclose(image.data, volume.transpose(1, 0, 2) * 0.5 - 1000)


def test_largest_series_is_chosen_when_a_folder_holds_two(tmp_path, caplog):
    write_series(tmp_path / "s", stored_volume((10, 12, 6)), prefix="a")
    write_series(tmp_path / "s", stored_volume((10, 12, 3)), prefix="b", origin=(0, 0, 0))
    image = load_dicom_series(tmp_path / "s")
    assert image.shape == (12, 10, 6)
    assert image.meta["dicom_files_ignored"] == 3
    assert "2 DICOM series" in caplog.text


def test_tiny_spacing_jitter_is_a_warning_and_a_missing_slice_an_error(tmp_path, caplog):
    write_series(tmp_path / "jitter", stored_volume(), gaps=[1.5, 1.52, 1.48, 1.5, 1.5])
    image = load_dicom_series(tmp_path / "jitter")
    assert image.meta["slice_spacing_deviation_mm"] == pytest.approx(0.02, abs=1e-6)
    assert "slice gaps vary" in caplog.text
    write_series(tmp_path / "gap", stored_volume(), gaps=[1.5, 1.5, 3.0, 1.5, 1.5])
    with pytest.raises(InputError) as exc:
        load_dicom_series(tmp_path / "gap")
    assert "inconsistent slice spacing" in str(exc.value) and "Fix:" in str(exc.value)
    assert str(tmp_path / "gap") in str(exc.value)


def test_small_gantry_tilt_gives_the_exact_sheared_affine_and_a_large_one_an_error(tmp_path):
    shear = np.array([0.0, 1.5 * np.tan(np.radians(0.5)), 0.0])
    write_series(tmp_path / "small", stored_volume(), shear=shear)
    image = load_dicom_series(tmp_path / "small")
    assert image.meta["gantry_tilt_deg"] == pytest.approx(0.5, abs=1e-3)
    last = image.voxel_to_world([0, 0, 5])  # slice 5 origin, exact with the shear
    expected_lps = np.array([-20.0, -30.0, 100.0]) + 5 * 1.5 * np.array([0, 0, 1.0]) + 5 * shear
    np.testing.assert_allclose(last, expected_lps * [-1, -1, 1], atol=1e-6)
    write_series(tmp_path / "big", stored_volume(), shear=[0.0, 1.5 * np.tan(np.radians(15)), 0.0])
    with pytest.raises(InputError) as exc:
        load_dicom_series(tmp_path / "big")
    assert "gantry tilt of 15.00 degrees" in str(exc.value) and "dcm2niix" in str(exc.value)


def test_non_ct_modality_is_rejected(tmp_path):
    write_series(tmp_path / "mr", stored_volume())
    for file in (tmp_path / "mr").iterdir():
        ds = pydicom.dcmread(file)
        ds.Modality = "MR"
        ds.save_as(file)
    with pytest.raises(InputError, match="Modality MR") as exc:
        load_scan(tmp_path / "mr")
    assert "Fix:" in str(exc.value)


def test_folder_without_dicom_and_single_slice_are_input_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("x")
    with pytest.raises(InputError, match="no DICOM image slices"):
        load_scan(tmp_path / "empty")
    write_series(tmp_path / "one", stored_volume((10, 12, 1)))
    with pytest.raises(InputError, match="2-D"):
        load_scan(tmp_path / "one")
    with pytest.raises(InputError, match="single DICOM slice") as exc:
        load_scan(tmp_path / "one" / "im000.dcm")
    assert str(tmp_path / "one") in str(exc.value).split("Fix:")[1]


def test_pydicom_reader_agrees_with_simpleitk_on_the_real_jpeg2000_series(real_data):
    sitk = pytest.importorskip("SimpleITK")
    folder = real_data / "totalseg" / "example_ct_dicom"
    ds = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"  # JPEG 2000 lossless
    image = load_scan(folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    reference = reader.Execute()
    # SimpleITK: LPS, direction columns per axis, array (z, y, x)
    direction = np.array(reference.GetDirection()).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.array(reference.GetSpacing())
    lps[:3, 3] = reference.GetOrigin()
    np.testing.assert_allclose(image.affine, np.diag([-1.0, -1, 1, 1]) @ lps, atol=1e-4)
    np.testing.assert_array_equal(image.data, sitk.GetArrayFromImage(reference).transpose(2, 1, 0))
    assert image.data.min() == -1024  # RescaleIntercept -1024 applied to stored 0


def _anatomy(image, k_range=None):
    """Offsets (mm, RAS) of the liver and of bone from the body centre, and HU medians."""
    data, affine = image.data.astype(float), image.affine.copy()
    if k_range is not None:
        data = data[:, :, k_range[0] : k_range[1]]
        affine[:3, 3] = image.voxel_to_world([0, 0, k_range[0]])
    spacing = image.spacing_mm[0]
    soft = ndimage.binary_opening((data > 40) & (data < 120), iterations=max(1, round(3 / spacing)))
    labels, n = ndimage.label(soft)
    liver = labels == 1 + np.argmax(ndimage.sum(soft, labels, range(1, n + 1)))

    def centre(mask):
        return (np.argwhere(mask) @ affine[:3, :3].T + affine[:3, 3]).mean(axis=0)

    body = centre(data > -300)
    medians = {
        "air": np.median(data[data < -900]),
        "fat": np.median(data[(data > -150) & (data < -50)]),
    }
    return centre(liver) - body, centre(data > 300) - body, medians


def test_totalseg_dicom_and_nifti_agree_in_ras_anatomy_and_hu(real_data):
    dicom = load_scan(real_data / "totalseg" / "example_ct_dicom")
    nifti = load_scan(real_data / "totalseg" / "example_ct.nii.gz")
    assert dicom.orientation == "LPS" and nifti.orientation == "RAS"  # stored orders differ
    for image, k_range in ((dicom, None), (nifti, (99, 111))):
        liver, bone, medians = _anatomy(image, k_range)
        assert liver[0] > 30, "liver must lie on the patient's right (+x in RAS)"
        assert liver[1] > 10, "liver anterior of the body centre"
        assert bone[1] < -30, "spine posterior (-y in RAS)"
        assert abs(medians["air"] + 1000) < 15
        assert -110 < medians["fat"] < -70


def test_slices_without_pixel_spacing_are_named_and_ignored_or_refused(tmp_path, caplog):
    import pydicom

    folder = tmp_path / "series"
    write_series(folder, stored_volume())
    files = sorted(folder.glob("*.dcm"))
    ds = pydicom.dcmread(files[0])
    del ds.PixelSpacing
    ds.save_as(files[0])
    image = load_dicom_series(folder)  # one incomplete slice: ignored with a warning
    assert image.shape[2] == len(files) - 1
    assert "lack PixelSpacing" in caplog.text
    for file in files[1:]:
        ds = pydicom.dcmread(file)
        del ds.Rows
        ds.save_as(file)
    with pytest.raises(InputError, match="lack PixelSpacing, Rows"):
        load_dicom_series(folder)


def test_an_unreadable_edge_slice_is_named_in_a_warning(tmp_path, caplog):
    folder = tmp_path / "series"
    write_series(folder, stored_volume())
    files = sorted(folder.glob("*.dcm"))
    files[-1].write_bytes(files[-1].read_bytes()[:140])  # preamble + a few bytes: broken
    image = load_dicom_series(folder)
    assert image.shape[2] == len(files) - 1
    assert "could not be read" in caplog.text and files[-1].name in caplog.text


def test_truncated_uncompressed_pixels_do_not_ask_for_decoders(tmp_path):
    import pydicom

    folder = tmp_path / "series"
    write_series(folder, stored_volume())
    file = sorted(folder.glob("*.dcm"))[2]
    ds = pydicom.dcmread(file)
    ds.PixelData = ds.PixelData[:40]
    ds.save_as(file)
    with pytest.raises(InputError, match="truncated or corrupt") as err:
        load_dicom_series(folder)
    assert "pylibjpeg" not in str(err.value) and file.name in str(err.value)

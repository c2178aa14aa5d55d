"""Results for PACS: DICOM SEG on the source frames, TID 1500 SR, NIfTI + JSON fallback."""

from __future__ import annotations

import json
import math
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from spinefx.errors import InputError
from spinefx.image import Image
from spinefx.io import load_scan
from spinefx.records import VertebraResult
from spinefx.reporting import export_results
from spinefx.reporting.dicom_export import (
    NO_FRACTURE_NOTE,
    NO_MASK_NOTE,
    NO_OPERATING_POINT_NOTE,
    NOT_DICOM_NOTE,
)

hd = pytest.importorskip("highdicom")

SAGITTAL_IOP = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # rows run anterior->posterior, columns down


def write_series(folder, volume, *, iop, origin=(-20.0, -30.0, 100.0), spacing=(0.8, 0.7)):
    """Uncompressed CT slices of ``volume`` (rows, cols, slices) stored values, shuffled order."""
    folder.mkdir(parents=True, exist_ok=True)
    iop = np.asarray(iop, float)
    normal = np.cross(iop[:3], iop[3:])
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for k in np.random.default_rng(0).permutation(volume.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"im{k:03d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.StudyInstanceUID, ds.SeriesInstanceUID = "CT", study, series
        ds.FrameOfReferenceUID, ds.PatientID, ds.PatientName = frame, "P1", "Test^Patient"
        ds.ImageOrientationPatient = [float(v) for v in iop]
        ds.ImagePositionPatient = [float(v) for v in np.asarray(origin) + 1.5 * k * normal]
        ds.PixelSpacing = [float(spacing[0]), float(spacing[1])]
        ds.Rows, ds.Columns = volume.shape[:2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1.0, -1024.0
        ds.InstanceNumber = int(k) + 1
        ds.PixelData = np.ascontiguousarray(volume[:, :, k].astype(np.uint16)).tobytes()
        ds.save_as(str(folder / f"im{k:03d}.dcm"), enforce_file_format=True)


def synthetic_case(tmp_path):
    """A sagittal 9 x 13 x 7 series with bone, and a VerSe mask (L1 above L2) on its grid."""
    rng = np.random.default_rng(1)
    volume = rng.integers(0, 30, size=(9, 13, 7)).astype(np.uint16)
    volume[2:7, 3:11, 1:6] = 1024 + 700
    write_series(tmp_path / "series", volume, iop=SAGITTAL_IOP)
    scan = load_scan(tmp_path / "series")
    labels = np.zeros(scan.shape, np.uint8)  # (columns, rows, slices)
    labels[3:8, 2:4, 1:5] = 20  # rows 2-3: higher up (columns run down the patient)
    labels[4:11, 5:7, 2:6] = 21
    labels[12, 8, 6] = 21  # one corner voxel: a transposition or flip would move it
    mask_path = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(labels, scan.affine), mask_path)
    return scan, labels, mask_path


RESULTS = [
    VertebraResult(20, 0.83, True, method="voxel"),
    VertebraResult(21, math.nan, None, method="voxel", assessable=False, note="metal (screws)"),
]


def _source_positions(folder):
    """SOP instance UID -> (ImagePositionPatient, FrameOfReferenceUID, SeriesInstanceUID)."""
    out = {}
    for f in folder.iterdir():
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        out[ds.SOPInstanceUID] = (
            np.asarray(ds.ImagePositionPatient, float),
            ds.FrameOfReferenceUID,
            ds.SeriesInstanceUID,
        )
    return out


def vertebra_segments(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Segment label -> expected region of a vertebra SEG: each vertebra, cranial to caudal."""
    from spinefx.conventions import level_name

    present = sorted(int(v) for v in np.unique(labels) if v)
    return {level_name(v): labels == v for v in present}


def check_segmentation_geometry(seg_path, folder, scan: Image, segments) -> int:
    """Assert the SEG sits on the source frames and holds ``segments``; returns frames checked.

    ``segments``: segment label -> bool region on the scan grid, in segment-number order (a
    label map stands for :func:`vertebra_segments` of it).
    """
    if not isinstance(segments, dict):
        segments = vertebra_segments(segments)
    seg = hd.seg.segread(seg_path)
    source = _source_positions(folder)
    frame_uid, series_uid = next(iter(source.values()))[1:]
    assert seg.FrameOfReferenceUID == frame_uid
    assert [s.SeriesInstanceUID for s in seg.ReferencedSeriesSequence] == [series_uid]
    referenced = {
        i.ReferencedSOPInstanceUID
        for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    assert referenced <= set(source)
    names = {int(s.SegmentNumber): str(s.SegmentLabel) for s in seg.SegmentSequence}
    assert [names[n] for n in sorted(names)] == list(segments)
    inverse = np.linalg.inv(scan.affine)
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), seg.Rows, seg.Columns)
    seen = {number: 0 for number in names}
    shared = seg.SharedFunctionalGroupsSequence[0]
    for f, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        ident = item if "SegmentIdentificationSequence" in item else shared  # one segment: shared
        number = int(ident.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        ipp = np.asarray(item.PlanePositionSequence[0].ImagePositionPatient, float)
        uid = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        np.testing.assert_allclose(ipp, source[uid][0], atol=1e-4)  # the source slice's IPP
        ijk = inverse[:3, :3] @ (ipp * (-1, -1, 1)) + inverse[:3, 3]
        k = int(round(ijk[2]))
        np.testing.assert_allclose(ijk, (0, 0, k), atol=1e-6)
        # frame (rows, columns) vs region (columns, rows, slice k): exact
        np.testing.assert_array_equal(pixels[f] > 0, segments[names[number]][:, :, k].T)
        seen[number] += int(pixels[f].sum())
    for number, name in names.items():  # every voxel of a region is in some frame
        assert seen[number] == int(segments[name].sum())
    return len(seg.PerFrameFunctionalGroupsSequence)


def measurement_groups(sr_path):
    """(tracking identifier, {concept code value: numeric value}, {name: code value}) per group."""
    sr = pydicom.dcmread(sr_path)
    container = next(
        i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "126010"
    )
    groups = []
    for group in container.ContentSequence:
        assert group.ConceptNameCodeSequence[0].CodeValue == "125007"  # Measurement Group
        items = group.ContentSequence
        ident = next(
            i.TextValue for i in items if i.ConceptNameCodeSequence[0].CodeValue == "112039"
        )
        numbers = {
            i.ConceptNameCodeSequence[0].CodeValue: float(i.MeasuredValueSequence[0].NumericValue)
            for i in items
            if i.ValueType == "NUM"
        }
        coded = {
            i.ConceptNameCodeSequence[0].CodeValue: i.ConceptCodeSequence[0].CodeValue
            for i in items
            if i.ValueType == "CODE"
        }
        groups.append((ident, numbers, coded))
    return sr, groups


def test_seg_lies_on_the_source_frames_and_sr_has_one_group_per_vertebra(tmp_path):
    scan, labels, mask_path = synthetic_case(tmp_path)
    exported = export_results(
        scan,
        RESULTS,
        tmp_path / "out",
        mask_path=mask_path,
        mask_numbering="verse",
        models={"voxel": {"weights_sha256": "abc123"}},
    )
    assert set(exported.paths) == {"seg", "fracture_seg", "sr", "json"}  # L1 flagged
    assert check_segmentation_geometry(exported.paths["seg"], tmp_path / "series", scan, labels) > 0
    sr, groups = measurement_groups(exported.paths["sr"])
    assert [g[0] for g in groups] == ["L1", "L2"]
    assert groups[0][1]["FXPROBVOXEL"] == pytest.approx(0.83)
    assert groups[0][2]["363698007"] == "66794005"  # finding site: SCT L1 vertebra
    assert "FXPROBVOXEL" not in groups[1][1]  # not scored: no number, but a reason
    assert groups[1][2]["ASSESS"] == "NOTASSESS" and groups[1][2]["REASON"] == "METAL"
    source = _source_positions(tmp_path / "series")
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
    assert {s.SeriesInstanceUID for s in evidence} >= {next(iter(source.values()))[2]}
    assert sr.SOPClassUID == pydicom.uid.Comprehensive3DSRStorage
    assert (
        len(hd.sr.srread(exported.paths["sr"]).content.get_volumetric_roi_measurement_groups()) == 2
    )
    rows = json.loads(exported.paths["json"].read_text())["vertebrae"]
    assert [r["level"] for r in rows] == ["L1", "L2"] and rows[1]["not_assessable_reason"]


def fracture_map_case(scan: Image) -> tuple[Image, np.ndarray]:
    """p(fracture) on the scan grid: 0.9 in part of L1 and in one voxel outside any vertebra."""
    p = np.zeros(scan.shape, np.float32)
    p[3:6, 2:4, 2:4] = 0.9  # inside L1 (labels 20 at [3:8, 2:4, 1:5])
    p[12, 0, 0] = 0.7  # a corner voxel: a flip or a transposition would move it
    p[1, 1, 1] = 0.3  # below the threshold
    return scan.with_data(p), p >= 0.5


def test_fracture_seg_marks_flagged_vertebrae_and_the_fracture_voxels(tmp_path):
    scan, labels, mask_path = synthetic_case(tmp_path)
    fracture_map, voxels = fracture_map_case(scan)
    exported = export_results(
        scan,
        RESULTS,
        tmp_path / "out",
        mask_path=mask_path,
        mask_numbering="verse",
        fracture_map=fracture_map,
        fracture_threshold=0.5,
    )
    path = exported.paths["fracture_seg"]
    assert path.name == "fractures_seg.dcm"
    expected = {"L1 fracture": labels == 20, "fracture voxels (p >= 0.50)": voxels}
    assert check_segmentation_geometry(path, tmp_path / "series", scan, expected) > 0
    seg, vertebrae = hd.seg.segread(path), hd.seg.segread(exported.paths["seg"])
    assert seg.SeriesInstanceUID != vertebrae.SeriesInstanceUID  # its own series in PACS
    assert seg.FrameOfReferenceUID == vertebrae.FrameOfReferenceUID
    first, second = seg.SegmentSequence
    assert first.SegmentedPropertyTypeCodeSequence[0].CodeValue == "72704001"  # SCT fracture
    assert first.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
    assert first.AnatomicRegionSequence[0].CodeValue == "66794005"  # SCT L1 vertebra
    assert "AnatomicRegionSequence" not in second
    assert "voxel" in first.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName
    doc = json.loads(exported.paths["json"].read_text())
    assert doc["fracture_segmentation"] == "L1 fracture; fracture voxels (p >= 0.50)"


def test_fracture_map_on_another_grid_lands_on_the_same_voxels(tmp_path):
    scan, labels, mask_path = synthetic_case(tmp_path)
    fracture_map, voxels = fracture_map_case(scan)
    canonical = nib.as_closest_canonical(nib.Nifti1Image(fracture_map.data, scan.affine))
    assert nib.aff2axcodes(canonical.affine) != nib.aff2axcodes(scan.affine)
    other = Image(np.asarray(canonical.dataobj), canonical.affine)
    exported = export_results(
        scan, RESULTS, tmp_path / "out", fracture_map=other, fracture_threshold=0.5
    )
    # no mask: the voxels alone, still on the source frames
    expected = {"fracture voxels (p >= 0.50)": voxels}
    check_segmentation_geometry(exported.paths["fracture_seg"], tmp_path / "series", scan, expected)
    assert "seg" not in exported.paths


def test_no_fracture_seg_without_a_flag_or_an_operating_point(tmp_path):
    scan, labels, mask_path = synthetic_case(tmp_path)
    fracture_map, _ = fracture_map_case(scan)
    healthy = [VertebraResult(20, 0.1, False, method="voxel"), RESULTS[1]]
    exported = export_results(
        scan,
        healthy,
        tmp_path / "out",
        mask_path=mask_path,
        mask_numbering="verse",
        fracture_map=fracture_map,
    )
    assert "fracture_seg" not in exported.paths and "seg" in exported.paths
    assert NO_OPERATING_POINT_NOTE in exported.notes and NO_FRACTURE_NOTE in exported.notes
    doc = json.loads(exported.paths["json"].read_text())
    assert doc["fracture_segmentation"] == "none"


def test_without_a_mask_only_the_sr_and_json_are_written(tmp_path, caplog):
    scan, _, _ = synthetic_case(tmp_path)
    exported = export_results(scan, RESULTS, tmp_path / "out")
    assert set(exported.paths) == {"sr", "json"}
    assert exported.notes == (
        NO_MASK_NOTE,
        "flagged vertebrae L1 have no region in the fracture SEG: no vertebra mask",
    )
    assert "no vertebra segmentation written" in caplog.text
    assert [g[0] for g in measurement_groups(exported.paths["sr"])[1]] == ["L1", "L2"]


def test_nifti_input_gets_a_labelled_map_and_json_and_the_reason(tmp_path):
    scan, labels, mask_path = synthetic_case(tmp_path)
    nifti = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(scan.data, scan.affine), nifti)
    exported = export_results(
        load_scan(nifti), RESULTS, tmp_path / "out", mask_path=mask_path, mask_numbering="verse"
    )
    assert set(exported.paths) == {"nifti_seg", "nifti_fracture_seg", "json"}
    assert NOT_DICOM_NOTE in exported.notes
    written = nib.load(exported.paths["nifti_seg"])
    np.testing.assert_array_equal(np.asarray(written.dataobj), labels)
    np.testing.assert_allclose(written.affine, scan.affine, atol=1e-5)
    fractured = nib.load(exported.paths["nifti_fracture_seg"])  # L1 (flagged) only
    np.testing.assert_array_equal(np.asarray(fractured.dataobj), np.where(labels == 20, 20, 0))
    np.testing.assert_allclose(fractured.affine, scan.affine, atol=1e-5)
    doc = json.loads(exported.paths["json"].read_text())
    assert [r["fracture_probability"]["voxel"] for r in doc["vertebrae"]] == [0.83, None]


def _real_series_with_uids(real_data, tmp_path):
    """The TotalSegmentator series, its blank UIDs filled in as a PACS export would hold."""
    folder = tmp_path / "series"
    shutil.copytree(real_data / "totalseg" / "example_ct_dicom", folder)
    study, series = generate_uid(), generate_uid()
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.save_as(f)
    return folder


@pytest.mark.real
def test_real_totalseg_series_seg_geometry(real_data, tmp_path):
    with pytest.raises(InputError, match="blank SOPInstanceUID"):  # anonymised: UIDs removed
        scan = load_scan(real_data / "totalseg" / "example_ct_dicom")
        export_results(scan, RESULTS, tmp_path / "raw")
    folder = _real_series_with_uids(real_data, tmp_path)
    scan = load_scan(folder)
    # its spine mask is in another frame of reference (tests/io/test_dicom.py): refused
    spine = next((real_data / "totalseg" / "spine_report").glob("*.nii.gz"))
    with pytest.raises(InputError, match="does not overlap the scan"):
        export_results(scan, RESULTS, tmp_path / "other", mask_path=spine)
    # a mask on the real grid: bone of the upper ten slices = L1, the lower ten = L2
    bone = np.asarray(scan.data) > 250
    labels = np.zeros(scan.shape, np.uint8)
    labels[:, :, 10:][bone[:, :, 10:]] = 20
    labels[:, :, :10][bone[:, :, :10]] = 21
    assert scan.affine[2, 2] > 0  # slice index grows superiorly: L1 above L2
    mask_path = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(labels, scan.affine), mask_path)
    exported = export_results(
        scan, RESULTS, tmp_path / "out", mask_path=mask_path, mask_numbering="verse"
    )
    # each of the 20 slices holds one of the two segments: 20 frames
    assert check_segmentation_geometry(exported.paths["seg"], folder, scan, labels) == 20
    assert [g[0] for g in measurement_groups(exported.paths["sr"])[1]] == ["L1", "L2"]
    # the fracture SEG: L1 (flagged) and the voxels of a fracture map, on the same frames
    p = np.zeros(scan.shape, np.float32)
    p[: scan.shape[0] // 2, :, 12:15] = np.where(bone[: scan.shape[0] // 2, :, 12:15], 0.8, 0.2)
    exported = export_results(
        scan,
        RESULTS,
        tmp_path / "fx",
        mask_path=mask_path,
        mask_numbering="verse",
        fracture_map=scan.with_data(p),
        fracture_threshold=0.5,
    )
    expected = {"L1 fracture": labels == 20, "fracture voxels (p >= 0.50)": p >= 0.5}
    assert expected["fracture voxels (p >= 0.50)"].sum() > 100
    # L1 on its ten slices, the voxels on three: 13 frames at the source slices' positions
    assert check_segmentation_geometry(exported.paths["fracture_seg"], folder, scan, expected) == 13


def test_a_mask_on_another_grid_of_the_same_space_gives_the_same_seg(tmp_path):
    scan, labels, _ = synthetic_case(tmp_path)
    canonical = nib.as_closest_canonical(nib.Nifti1Image(labels, scan.affine))  # PIR -> RAS
    assert nib.aff2axcodes(canonical.affine) != nib.aff2axcodes(scan.affine)
    mask_path = tmp_path / "mask_ras.nii.gz"
    nib.save(canonical, mask_path)
    exported = export_results(
        scan, RESULTS, tmp_path / "out", mask_path=mask_path, mask_numbering="verse"
    )
    check_segmentation_geometry(exported.paths["seg"], tmp_path / "series", scan, labels)


@pytest.mark.real
def test_detect_dicom_out_on_a_nifti_ct_writes_the_map_json_and_says_why(
    real_data, tmp_path, capsys, caplog
):
    from spinefx.cli import main

    scan = real_data / "totalseg/example_ct.nii.gz"
    mask = next((real_data / "totalseg/spine_report").glob("*.nii.gz"))
    out = tmp_path / "pacs"
    argv = ["detect", str(scan), "--mask", str(mask), "--out", str(tmp_path / "d")]
    assert main([*argv, "--dicom-out", str(out)]) == 0
    assert f"results for PACS in {out}" in capsys.readouterr().out
    assert NOT_DICOM_NOTE in caplog.text
    doc = json.loads((out / "findings.json").read_text())
    assert [r["level"] for r in doc["vertebrae"]] == ["T12", "L1", "L2", "L3", "L4", "L5"]
    assert all(0 <= r["fracture_probability"]["voxel"] <= 1 for r in doc["vertebrae"])
    assert doc["vertebrae"][1]["heights_mm"]["posterior"] > 15  # L1 morphometry from the mask
    assert doc["models"]["voxel"]["weights_sha256"]
    written = nib.load(out / "vertebrae_seg.nii.gz")
    source = nib.load(mask)
    np.testing.assert_array_equal(np.asarray(written.dataobj), np.asarray(source.dataobj))
    np.testing.assert_allclose(written.affine, source.affine, atol=1e-4)
    assert not (out / "findings_sr.dcm").exists()
    # the fracture voxels: detect's own p(fracture) map at the run's probability threshold
    # without what the patient decision ignores: components under t_n (no metal in this CT)
    from scipy import ndimage

    from spinefx.runs import load_trained
    from spinefx.runs.shipped import shipped_run_dir

    point = json.loads((tmp_path / "d" / "patient.json").read_text())["operating_point"]
    threshold = point["probability_threshold"]
    spacing = load_trained(shipped_run_dir("voxel")).model.config.input_spacing_mm
    min_mm3 = point["noise_threshold_vox"] * float(np.prod(np.broadcast_to(spacing, 3)))
    image = nib.load(tmp_path / "d" / "prob_fractured.nii.gz")
    prob = np.asarray(image.dataobj)
    # the map on disk is quantised (uint8, step 1/255); the SEG is made from the unquantised
    # map, so it lies between the components surely above the threshold and every voxel
    # that may be above it
    from spinefx.io.nifti import PROBABILITY_STEP

    step = PROBABILITY_STEP / 2 + 1e-6
    surely = prob >= threshold + step
    labels, _ = ndimage.label(surely, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel()) * float(np.prod(image.header.get_zooms()[:3]))
    keep = sizes >= min_mm3
    keep[0] = False
    least = keep[labels]
    most = prob >= threshold - step
    voxels = out / "fracture_voxels_seg.nii.gz"
    if least.any():
        assert voxels.is_file()
    if not most.any():
        assert not voxels.is_file()
    if voxels.is_file():
        seg = np.asarray(nib.load(voxels).dataobj) > 0
        assert seg.any()
        assert not (least & ~seg).any(), "a component surely above the threshold is missing"
        assert not (seg & ~most).any(), "a voxel below the threshold is in the SEG"
    flagged = [r["level"] for r in doc["vertebrae"] if r["flagged"].get("voxel")]
    assert (out / "fractures_seg.nii.gz").is_file() == bool(flagged)


@pytest.mark.real
def test_report_dicom_out_writes_seg_and_sr_of_the_patch_classifier(real_data, tmp_path, patch_run):
    from spinefx.reporting import write_scan_report

    folder = _real_series_with_uids(real_data, tmp_path)
    scan = load_scan(folder)
    bone = np.asarray(scan.data) > 250
    labels = np.zeros(scan.shape, np.uint8)
    labels[:, :, 10:][bone[:, :, 10:]] = 20
    labels[:, :, :10][bone[:, :, :10]] = 21
    mask_path = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(labels, scan.affine), mask_path)
    out = tmp_path / "pacs"
    write_scan_report(
        folder,
        model_run_dir=patch_run(tmp_path / "run"),
        out_path=tmp_path / "r.html",
        mask_path=mask_path,
        mask_numbering="verse",
        dicom_out=out,
    )
    check_segmentation_geometry(out / "vertebrae_seg.dcm", folder, scan, labels)
    groups = measurement_groups(out / "findings_sr.dcm")[1]
    assert [g[0] for g in groups] == ["L1", "L2"]
    assert all(0 <= g[1]["FXPROBPATCH"] <= 1 for g in groups)


def test_fracture_voxels_smaller_than_the_noise_threshold_are_left_out(tmp_path):
    """The patient decision ignores components under t_n; so does the fracture SEG: the
    lone corner voxel goes, the 12-voxel block in L1 stays."""
    from spinefx.reporting.dicom_export import fracture_regions
    from spinefx.reporting.vertebra_findings import vertebra_findings

    scan, labels, _ = synthetic_case(tmp_path)
    fracture_map, voxels = fracture_map_case(scan)
    findings = vertebra_findings(RESULTS, [])
    kept = fracture_regions(findings, labels, scan, fracture_map=fracture_map, threshold=0.5,
                            min_mm3=2.0 * float(np.prod(scan.spacing_mm)))  # fmt: skip
    block = voxels.copy()
    block[12, 0, 0] = False
    np.testing.assert_array_equal(kept.voxels, block)
    everything = fracture_regions(findings, labels, scan, fracture_map=fracture_map, threshold=0.5)
    np.testing.assert_array_equal(everything.voxels, voxels)

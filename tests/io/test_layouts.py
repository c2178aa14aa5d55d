"""Dataset layouts -> cases: VerSe (+ grade table), BIDS-like + labels.tsv, manifest CSV."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from spinefx.errors import InputError
from spinefx.image import Image
from spinefx.io import load_dataset, load_scan, save_centroids, save_image, scan_dataset

LONG_CSV = "verse_labels/verse19_loeffler_per_vertebra_long.csv"
XLSX = "verse_labels/ryai190138_appendixe1.xlsx"


def test_ctfu_layout(real_data):
    result = scan_dataset(real_data / "ctfu")
    cases = {c.case_id: c for c in result.cases}
    assert sorted(cases) == [
        "sub-ctfu00001_ses-20080508_ce-no",
        "sub-ctfu00001_ses-20140908_split-0_ce-no",
        "sub-ctfu00001_ses-20140908_split-1_ce-no",
    ]
    no_ct = cases["sub-ctfu00001_ses-20140908_split-0_ce-no"]
    assert no_ct.scan_path is None and no_ct.mask_path is not None
    assert [p.case_id for p in result.problems] == [no_ct.case_id]
    assert len(no_ct.vertebrae) == 19  # C6-L5 from the JSON
    by_level = {v.level: v for v in no_ct.vertebrae}
    assert by_level["L3"].foreign_material and by_level["L3"].genant_grade is None
    assert by_level["T5"].genant_grade == 0 and by_level["C6"].genant_grade is None
    first = cases["sub-ctfu00001_ses-20080508_ce-no"]
    assert [v.level for v in first.vertebrae] == ["L2", "L3", "L4", "L5"]
    assert all(v.centroid_mm is not None for v in first.vertebrae)
    assert {c.patient for c in cases.values()} == {"sub-ctfu00001"}


@pytest.mark.parametrize("table", [LONG_CSV, XLSX])
def test_verse004_joined_to_the_official_grades(real_data, table):
    (case,) = load_dataset(real_data / "verse004", grades=real_data / table)
    grades = {v.level: v.genant_grade for v in case.vertebrae}
    assert grades == {"T9": 2, "T10": 2, "T11": 0, "T12": 0, "L1": 3, "L2": 0, "L3": 0,
                      "L4": None, "L5": None}  # fmt: skip
    assert case.split == "train" and case.scan_path is None
    assert {v.level: v.shape for v in case.vertebrae if v.fractured} == {
        "T9": "wedge", "T10": "wedge", "L1": "crush",
    }  # fmt: skip


def _tiny_subject(root, name, *, sub_dir, ses=None, labels=(19, 20, 21), with_ct=True):
    """A VerSe-layout subject with a CT, a vertebra mask and a centroid JSON (PIR grid)."""
    affine = np.array([[0, 0, 1.0, -20], [-1.0, 0, 0, 30], [0, -1.0, 0, 40], [0, 0, 0, 1]])
    shape = (16, 8 * len(labels) + 4, 12)
    mask = np.zeros(shape, np.uint8)
    for n, label in enumerate(labels):
        mask[4:12, 2 + 8 * n : 8 + 8 * n, 3:9] = label
    ct = np.where(mask > 0, 600, -1000).astype(np.int16)
    parts = [root / kind / sub_dir / (ses or "") for kind in ("rawdata", "derivatives")]
    if with_ct:
        save_image(Image(ct, affine), parts[0] / f"{name}_ct.nii.gz")
    mask_image = Image(mask, affine)
    save_image(mask_image, parts[1] / f"{name}_seg-vert_msk.nii.gz")
    centres = {
        lab: mask_image.voxel_to_world([7.5, 4.5 + 8 * n, 5.5]) for n, lab in enumerate(labels)
    }
    save_centroids(centres, parts[1] / f"{name}_seg-subreg_ctd.json", mask_image)
    return centres


def test_verse_layout_with_split_names_sessions_and_auto_grade_table(tmp_path):
    c1 = _tiny_subject(tmp_path, "sub-synth0001", sub_dir="sub-synth0001")
    _tiny_subject(tmp_path, "sub-verse412_split-verse290", sub_dir="sub-verse412", ses="ses-01")
    _tiny_subject(tmp_path, "sub-synth0003", sub_dir="sub-synth0003", with_ct=False)
    (tmp_path / "fracture_grades.csv").write_text(
        "verse_ID,subject_ID,split,level,label,grade,shape\n"
        "1,1,training,T12,19,0,0\n1,1,training,L1,20,2,1\n1,1,training,L2,21,x,x\n"
        "290,412,validation public,T12,19,3,3\n290,412,validation public,L1,20,,\n"
    )
    result = scan_dataset(tmp_path)
    cases = {c.case_id: c for c in result.cases}
    assert sorted(cases) == ["sub-synth0001", "sub-synth0003", "sub-verse412_split-verse290"]
    first = cases["sub-synth0001"]
    assert first.split == "train" and first.scan_path.name == "sub-synth0001_ct.nii.gz"
    records = {v.level: v for v in first.vertebrae}
    assert records["L1"].genant_grade == 2 and records["L1"].shape == "wedge"
    assert records["L2"].foreign_material and records["L2"].genant_grade is None
    np.testing.assert_allclose(records["L1"].centroid_mm, c1[20], atol=1e-3)
    series = cases["sub-verse412_split-verse290"]
    assert series.split == "val" and series.patient_id == "sub-verse412"
    assert {v.level: v.genant_grade for v in series.vertebrae} == {"T12": 3, "L1": None, "L2": None}
    assert cases["sub-synth0003"].scan_path is None
    problems = {(p.case_id, p.problem.split(";")[0]) for p in result.problems}
    assert ("sub-synth0003", "no CT for this case (annotations only)") in problems
    assert ("sub-synth0003", "no grades for this case in the grade table") in problems


def test_bad_case_is_reported_and_the_others_load(tmp_path):
    _tiny_subject(tmp_path, "sub-synth0001", sub_dir="sub-synth0001")
    _tiny_subject(tmp_path, "sub-synth0002", sub_dir="sub-synth0002")
    bad = tmp_path / "derivatives/sub-synth0002/sub-synth0002_seg-subreg_ctd.json"
    bad.write_text(
        json.dumps([{"direction": ["P", "I", "R"]}, {"label": 20, "X": 500, "Y": 1, "Z": 1}])
    )
    (tmp_path / "derivatives/sub-synth0002/sub-synth0002_seg-vert_msk.nii.gz").unlink()
    result = scan_dataset(tmp_path)
    assert [c.case_id for c in result.cases] == ["sub-synth0001"]
    (problem,) = result.problems
    assert problem.case_id == "sub-synth0002" and "outside the scan" in problem.problem


def test_mask_only_case_gets_centroids_from_the_mask(tmp_path):
    centres = _tiny_subject(tmp_path, "sub-synth0001", sub_dir="sub-synth0001")
    (tmp_path / "derivatives/sub-synth0001/sub-synth0001_seg-subreg_ctd.json").unlink()
    (case,) = load_dataset(tmp_path)
    for record in case.vertebrae:
        np.testing.assert_allclose(record.centroid_mm, centres[record.vertebra_label], atol=1e-6)
        assert record.genant_grade is None and record.split == ""


def test_manifest_csv(tmp_path):
    _tiny_subject(tmp_path / "data", "sub-a", sub_dir="a")
    (tmp_path / "cases.csv").write_text(
        "case_id,scan,centroids,mask,split,patient_id,T12,L1,L2\n"
        "a1,data/rawdata/a/sub-a_ct.nii.gz,data/derivatives/a/sub-a_seg-subreg_ctd.json,,"
        "training,p1,0,3,x\n"
        "a2,data/rawdata/a/sub-a_ct.nii.gz,,data/derivatives/a/sub-a_seg-vert_msk.nii.gz,test,,,1,\n"
        "a3,data/rawdata/a/missing_ct.nii.gz,,data/derivatives/a/sub-a_seg-vert_msk.nii.gz,,,,,\n"
    )
    result = scan_dataset(tmp_path / "cases.csv")
    cases = {c.case_id: c for c in result.cases}
    assert sorted(cases) == ["a1", "a2"]
    assert [p.case_id for p in result.problems] == ["a3"] and "not found" in result.problems[
        0
    ].problem
    a1 = {v.level: v for v in cases["a1"].vertebrae}
    assert (a1["T12"].genant_grade, a1["L1"].genant_grade, a1["L2"].foreign_material) == (
        0,
        3,
        True,
    )
    assert cases["a1"].split == "train" and cases["a1"].patient_id == "p1"
    a2 = {v.level: v for v in cases["a2"].vertebrae}
    assert a2["L1"].genant_grade == 1 and a2["T12"].genant_grade is None
    assert cases["a2"].patient == "a2"
    for level in ("T12", "L1"):
        np.testing.assert_allclose(a1[level].centroid_mm, a2[level].centroid_mm, atol=1e-3)


def _dicom_helpers():
    """The synthetic DICOM writer of test_dicom.py (importlib mode: sibling tests import by path)."""
    spec = importlib.util.spec_from_file_location(
        "_io_dicom_helpers", Path(__file__).with_name("test_dicom.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.stored_volume, module.write_series


def test_manifest_with_a_dicom_folder_and_a_mask_only_row(tmp_path):
    stored_volume, write_series = _dicom_helpers()
    write_series(tmp_path / "dcm", stored_volume(), iop=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    scan = load_scan(tmp_path / "dcm")
    mask = np.zeros(scan.shape, np.uint8)
    mask[3:6, 3:6, 1:4] = 20
    save_image(scan.with_data(mask), tmp_path / "mask.nii.gz")
    world = scan.voxel_to_world([4.0, 4.0, 2.0])
    save_centroids({20: world}, tmp_path / "ctd.json", scan)
    (tmp_path / "cases.csv").write_text(
        "case_id,scan,centroids,mask,L1\nd1,dcm,ctd.json,,2\nd2,,,mask.nii.gz,\n"
    )
    result = scan_dataset(tmp_path / "cases.csv")
    d1, d2 = result.cases
    np.testing.assert_allclose(d1.vertebrae[0].centroid_mm, world, atol=1e-3)
    assert d1.vertebrae[0].genant_grade == 2
    np.testing.assert_allclose(d2.vertebrae[0].centroid_mm, world, atol=1e-6)
    assert d2.scan_path is None and [p.case_id for p in result.problems] == ["d2"]


def test_manifest_with_a_level_the_table_does_not_know(tmp_path):
    path = tmp_path / "cases.csv"
    path.write_text("case_id,scan,mask,T14\nx,a.nii.gz,b.nii.gz,1\n")
    with pytest.raises(InputError) as exc:
        load_dataset(path)
    assert "['T14']" in str(exc.value) and str(path) in str(exc.value) and "Fix:" in str(exc.value)


def test_folder_without_layout_files(tmp_path):
    with pytest.raises(InputError, match="no VerSe/BIDS files"):
        load_dataset(tmp_path)

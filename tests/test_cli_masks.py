"""``--mask`` on predict, detect, report, morphometry and inspect, on real CTs and their masks."""

from __future__ import annotations

import json

import numpy as np

from spinefx.cli import main


def test_predict_takes_vertebra_positions_from_a_real_verse_mask(real_data, tmp_path):
    scan = real_data / "verse/rawdata/sub-verse007/sub-verse007_ct.nii.gz"
    mask = real_data / "verse/derivatives/sub-verse007/sub-verse007_seg-vert_msk.nii.gz"
    out = tmp_path / "p.json"
    assert main(["predict", str(scan), "--mask", str(mask), "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["vertebrae"]
    assert [r["level"] for r in rows] == ["T9", "T10", "T11", "T12", "L1", "L2", "L3"]
    assert all(r["centroid_source"] for r in rows)
    csv = tmp_path / "p.csv"
    assert main(["predict", str(scan), "--mask", str(mask), "--out", str(csv)]) == 0
    import pandas as pd

    table = pd.read_csv(csv)
    assert set(table["scan"]) == {str(scan)} and table["model_run"][0] == "patch_classifier"
    assert len(set(table["weights_sha256"])) == 1 and set(table["spinefx_version"])
    from spinefx.morphometry import MORPHOMETRY_COLUMNS

    assert set(MORPHOMETRY_COLUMNS) <= set(table.columns)  # the mask's morphometry beside p
    assert table["posterior_height_mm"].between(15, 40).all()
    assert set(table["morph_grade"].dropna()) <= {0, 1, 2, 3}


def test_detect_and_report_on_the_totalsegmentator_ct_with_its_spine_mask(
    real_data, tmp_path, capsys
):
    scan = real_data / "totalseg/example_ct.nii.gz"
    mask = next((real_data / "totalseg/spine_report").glob("*.nii.gz"))
    out = tmp_path / "d"
    assert main(["detect", str(scan), "--mask", str(mask), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    levels = [line.split(",")[1] for line in (out / "vertebrae.csv").read_text().splitlines()[1:]]
    assert levels == ["T12", "L1", "L2", "L3", "L4", "L5"]
    import pandas as pd

    table = pd.read_csv(out / "vertebrae.csv")
    assert table["middle_height_mm"].notna().sum() >= 5 and "morph_grade" in table
    # the patient answer never contradicts the vertebrae: a fracture region with no flagged
    # vertebra (or the reverse) is inconclusive, with a note naming where to look
    patient = json.loads((out / "patient.json").read_text())
    flagged = bool(table["flagged"].fillna(False).astype(bool).any())
    if patient["component_positive"] == flagged:
        assert patient["patient_fractured"] is flagged
    else:
        assert patient["patient_fractured"] is None and patient["patient_state"] == "INCONCLUSIVE"
        assert "inconclusive" in patient["patient_note"]
    assert f"patient: {patient['patient_state']} " in printed  # what the CLI says, it wrote
    assert patient["patient_note"] in printed
    min_mm3 = patient["operating_point"]["noise_threshold_vox"] * 8.0  # 2 mm network grid
    assert all(r["volume_mm3"] >= min_mm3 for r in patient["fracture_regions"])
    assert bool(patient["fracture_regions"]) == patient["component_positive"]
    html = tmp_path / "r.html"
    assert main(["report", str(scan), "--mask", str(mask), "--out", str(html)]) == 0
    assert "body centroids of the vertebra mask" in html.with_suffix(".txt").read_text()
    assert "Morphometric grade" in html.read_text()  # the mask's morphometry beside p


def test_a_binary_mask_is_a_clear_error_everywhere(real_data, tmp_path, capsys):
    import nibabel as nib

    source = nib.load(real_data / "verse/derivatives/sub-verse008/sub-verse008_seg-vert_msk.nii.gz")
    binary = (np.asarray(source.dataobj) > 0).astype(np.uint8)
    path = tmp_path / "binary.nii.gz"
    nib.save(nib.Nifti1Image(binary, source.affine), path)
    scan = real_data / "verse/rawdata/sub-verse008/sub-verse008_ct.nii.gz"
    for argv in (
        ["predict", str(scan), "--mask", str(path)],
        ["morphometry", str(path)],
        ["inspect", str(scan), "--mask", str(path)],
    ):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert "binary mask" in err and "binary.nii.gz" in err


def test_a_mask_of_another_scan_is_refused(real_data, tmp_path, capsys):
    scan = real_data / "verse/rawdata/sub-verse007/sub-verse007_ct.nii.gz"
    other = real_data / "verse/derivatives/sub-verse006/sub-verse006_seg-vert_msk.nii.gz"
    assert main(["predict", str(scan), "--mask", str(other)]) == 1
    assert "sub-verse006_seg-vert_msk" in capsys.readouterr().err

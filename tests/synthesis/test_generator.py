"""The synthetic spine CT generator: layout, determinism, geometry and intensities."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from spinefx.conventions import GENANT_HEIGHT_LOSS
from spinefx.io.grades import LONG_COLUMNS
from spinefx.synthesis import case_rng, generate_case, generate_dataset, preset
from spinefx.synthesis.fractures import sample_fractures


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_gives_byte_identical_files_whatever_the_number_of_scans(
    tmp_path, synthetic_dataset
):
    # the fixture made 4 scans with seed 0; case 1 alone must come out byte for byte the same
    one = _files(generate_dataset(tmp_path / "one", n_scans=1, seed=0, preset="small"))
    full = _files(synthetic_dataset)
    case_files = [k for k in one if "sub-synth0001" in k]
    assert len(case_files) == 5
    assert all(one[k] == full[k] for k in case_files)


def test_parallel_generation_writes_the_same_files(tmp_path, synthetic_dataset):
    parallel = generate_dataset(tmp_path / "par", n_scans=4, seed=0, preset="small", workers=2)
    assert _files(parallel) == _files(synthetic_dataset)


def test_other_seed_gives_other_scan(tmp_path, synthetic_dataset):
    other = generate_dataset(tmp_path / "other", n_scans=1, seed=1, preset="small")
    name = "rawdata/sub-synth0001/sub-synth0001_ct.nii.gz"
    assert (other / name).read_bytes() != (synthetic_dataset / name).read_bytes()


def test_verse_layout_and_centroids_land_in_their_vertebral_body(synthetic_dataset):
    rows = list(csv.DictReader((synthetic_dataset / "fracture_grades.csv").open()))
    assert rows and tuple(rows[0]) == LONG_COLUMNS
    for i in range(1, 5):
        sub = f"sub-synth{i:04d}"
        ct = nib.load(synthetic_dataset / "rawdata" / sub / f"{sub}_ct.nii.gz")
        der = synthetic_dataset / "derivatives" / sub
        vert = nib.load(der / f"{sub}_seg-vert_msk.nii.gz")
        subreg = np.asarray(nib.load(der / f"{sub}_seg-subreg_msk.nii.gz").dataobj)
        assert np.allclose(ct.affine, vert.affine) and ct.shape == vert.shape
        ctd = json.loads((der / f"{sub}_seg-subreg_ctd.json").read_text())
        assert ctd[0]["direction"] == list(nib.aff2axcodes(ct.affine))
        labels = np.asarray(vert.dataobj)
        assert len(ctd) >= 2
        for entry in ctd[1:]:
            ijk = np.rint([entry["X"], entry["Y"], entry["Z"]]).astype(int)
            assert labels[tuple(ijk)] == entry["label"]
            assert subreg[tuple(ijk)] in (49, 50)
        table_labels = {int(r["label"]) for r in rows if int(r["verse_ID"]) == i}
        assert table_labels == {e["label"] for e in ctd[1:]}


def test_small_preset_varies_orientation_and_spacing():
    cases = [generate_case(preset("small"), case_rng(3, i)) for i in range(3)]
    assert len({c.ct.orientation for c in cases}) > 1
    for c in cases:
        assert c.ct.data.dtype == np.int16
        sp = sorted(c.ct.spacing_mm)
        assert 1.2 < sp[0] and sp[-1] < 1.6


def test_tissue_intensities_are_ct_like():
    case = generate_case(preset("small"), case_rng(0, 0))
    ct, sub = case.ct.data.astype(float), case.subregion_mask.data
    trabecular = np.median(ct[sub == 50])
    cortex = np.median(ct[sub == 49])
    assert 80 < trabecular < 330
    assert cortex > trabecular + 150
    outside = ct[(case.vertebra_mask.data == 0)]
    assert np.percentile(outside, 1) < -900  # air around the body
    assert -150 < np.median(outside) < 80  # fat / muscle / viscera
    assert ct.max() < 3072 and ct.min() >= -1024


def test_screws_are_metal_and_flagged_x(tmp_path):
    base = preset("small")
    config = dataclasses.replace(
        base, acquisition=dataclasses.replace(base.acquisition, screw_probability=1.0)
    )
    root = generate_dataset(tmp_path / "x", n_scans=1, seed=5, config=config)
    truth = list(csv.DictReader((root / "synthesis_truth.csv").open()))
    screwed = {r["level"] for r in truth if r["foreign_material"] == "1"}
    assert len(screwed) >= 2
    grades = {r["level"]: r["grade"] for r in csv.DictReader((root / "fracture_grades.csv").open())}
    assert {level for level, g in grades.items() if g == "x"} == screwed
    ct = nib.load(root / "rawdata" / "sub-synth0001" / "sub-synth0001_ct.nii.gz")
    assert np.asarray(ct.dataobj).max() > 2000


#: Fracture-zone labels in the scans of the ``synthetic_dataset`` fixture (seed 0, preset
#: small): the fractured vertebrae in view (L1 in 2, T3 in 4) and, in 3, a fractured T9 that the
#: field of view cuts (its body centroid is outside the scan, so it has no truth row).
FIXTURE_ZONE_LABELS = {1: set(), 2: {20}, 3: {16}, 4: {10}}


def test_fracture_zone_marks_exactly_the_fractured_vertebrae(synthetic_dataset):
    truth = list(csv.DictReader((synthetic_dataset / "synthesis_truth.csv").open()))
    for i in range(1, 5):
        sub = f"sub-synth{i:04d}"
        der = synthetic_dataset / "derivatives" / sub
        zone = np.asarray(nib.load(der / f"{sub}_seg-fxzone_msk.nii.gz").dataobj)
        vert = np.asarray(nib.load(der / f"{sub}_seg-vert_msk.nii.gz").dataobj)
        grades = {int(r["label"]): int(r["genant_grade"]) for r in truth if r["case_id"] == sub}
        present = set(np.unique(zone).tolist()) - {0}
        assert present == FIXTURE_ZONE_LABELS[i], sub
        # in view: every fractured vertebra has a zone and no normal one does
        assert present & set(grades) == {k for k, g in grades.items() if g > 0}, sub
        # a zone without a truth row belongs to a vertebra the field of view cuts
        assert present - set(grades) <= set(np.unique(vert).tolist()), sub
        for label in present:
            assert np.all(vert[zone == label] == label), (sub, label)  # inside its vertebra


def test_every_fractured_vertebra_has_a_fracture_zone_in_its_body():
    base = preset("small")
    fractures = dataclasses.replace(base.fractures, prevalence=0.6, osteoporotic_prevalence=0.6)
    config = dataclasses.replace(base, fractures=fractures)
    n_fractured = 0
    for i in (1, 2):
        case = generate_case(config, case_rng(7, i))
        zone, vert = case.fxzone_mask.data, case.vertebra_mask.data
        body = np.isin(case.subregion_mask.data, (49, 50))
        for v in case.vertebrae:
            in_zone = zone == v.vertebra_label
            if v.genant_grade == 0:
                assert not in_zone.any(), (i, v.vertebra_label)
                continue
            n_fractured += 1
            # hundreds of voxels at 1.25-1.5 mm even for a mild (grade 1) fracture
            assert in_zone.sum() > 300, (i, v.vertebra_label, v.genant_grade)
            assert np.all(vert[in_zone] == v.vertebra_label) and np.all(body[in_zone])
    assert n_fractured >= 4  # grades 1, 2 and 3 among them (seed 7, cases 1 and 2)


def test_fracture_sampling_prevalence_and_height_loss_ranges():
    config = preset("default").fractures
    rng = np.random.default_rng(0)
    truths = [
        t for _ in range(400) for t in sample_fractures(17, rng, config=config, osteoporotic=False)
    ]
    fractured = [t for t in truths if t.genant_grade > 0]
    assert 0.05 < len(fractured) / len(truths) < 0.12
    for t in fractured:
        low, high = GENANT_HEIGHT_LOSS[t.genant_grade]
        assert low < t.height_loss < min(high, config.severe_max_loss)
        assert t.shape in ("wedge", "biconcave", "crush")
    # runs: a fracture is followed by another more often than the base rate
    pairs = [
        (a.genant_grade > 0, b.genant_grade > 0)
        for a, b in zip(truths[:-1], truths[1:], strict=True)
    ]
    after = [b for a, b in pairs if a]
    assert np.mean(after) > 2 * len(fractured) / len(truths)


def test_load_dataset_reads_synthetic_data_without_special_case(synthetic_dataset):
    io = pytest.importorskip("spinefx.io")
    if not hasattr(io, "load_dataset"):
        pytest.skip("spinefx.io.load_dataset not written yet in this checkout")
    cases = io.load_dataset(synthetic_dataset)
    assert len(cases) == 4
    rows = list(csv.DictReader((synthetic_dataset / "fracture_grades.csv").open()))
    assert sum(len(c.vertebrae) for c in cases) == len(rows)


def test_synth_cli_writes_the_same_case_as_the_api(tmp_path, synthetic_dataset, capsys):
    from spinefx.cli import main

    out = tmp_path / "cli"
    assert (
        main(["synth", "--out", str(out), "--n-scans", "1", "--seed", "0", "--preset", "small"])
        == 0
    )
    name = "derivatives/sub-synth0001/sub-synth0001_seg-vert_msk.nii.gz"
    assert (out / name).read_bytes() == (synthetic_dataset / name).read_bytes()
    assert main(["synth", "--out", str(out), "--n-scans", "1", "--preset", "huge"]) == 1
    assert "unknown synthesis preset" in capsys.readouterr().err

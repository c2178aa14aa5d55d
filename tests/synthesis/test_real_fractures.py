"""Fracture simulation on real tissue: geometry, measured grades, resampling path, dataset."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from spinefx.io import load_dataset, save_image
from spinefx.io.grades import LONG_COLUMNS
from spinefx.preprocessing import reorient, resample_to_spacing
from spinefx.synthesis import (
    FractureTruth,
    RealFractureConfig,
    case_rng,
    deform_scan,
    deform_to_genant,
    generate_case,
    generate_real_fracture_dataset,
    preset,
    simulate_fracture,
)
from spinefx.synthesis.deformation import random_rigid_transform
from spinefx.synthesis.genant_deformation import measure_by_label
from spinefx.synthesis.real_sources import RealScan, RealSubject

L1, L2, L3 = 20, 21, 22
SHAPES = ("wedge", "biconcave", "crush")
LOSSES = {1: 0.225, 2: 0.32, 3: 0.47}  # the middle of each Genant range (grade 3: 40-55 %)


def _graded(mask) -> dict:
    return {k: r for k, r in measure_by_label(mask).items() if r.note == ""}


def _healthy_config():
    base = preset("small")
    return dataclasses.replace(
        base,
        fractures=dataclasses.replace(base.fractures, prevalence=0.0, osteoporotic_prevalence=0.0),
        anatomy=dataclasses.replace(
            base.anatomy, schmorl_probability=0.0, degeneration_probability=0.0
        ),
        acquisition=dataclasses.replace(
            base.acquisition, screw_probability=0.0, n_levels_range=(5, 5), orientations=("RAS",)
        ),
    )


def _lumbar_canvas(first_seed: int):
    """The first healthy synthetic CT (seeds from ``first_seed``) with three consecutive
    lumbar vertebrae fully in view and measured grade 0; the case and those three labels."""
    for seed in range(first_seed, first_seed + 60):
        case = generate_case(_healthy_config(), case_rng(seed, 0))
        graded = _graded(case.vertebra_mask)
        normal = [k for k in range(20, 25) if k in graded and graded[k].genant_grade == 0]
        for mid in normal:
            if mid - 1 in normal and mid + 1 in normal:
                return case, (mid - 1, mid, mid + 1)
    raise RuntimeError(f"no lumbar canvas among seeds {first_seed}-{first_seed + 59}")


@pytest.fixture(scope="module")
def canvas():
    """A healthy synthetic CT, its mask and three consecutive normal lumbar labels."""
    case, labels = _lumbar_canvas(0)
    return case.ct, case.vertebra_mask, labels


def _truth(shape: str, grade: int) -> FractureTruth:
    return FractureTruth(grade, shape, LOSSES[grade], 0.5 if shape == "biconcave" else 0.85)


@pytest.mark.parametrize("grade", [1, 2, 3])
@pytest.mark.parametrize("shape", SHAPES)
def test_simulated_fracture_measures_as_its_grade_and_neighbours_stay_normal(canvas, shape, grade):
    ct, mask, (up, mid, low) = canvas
    before = _graded(mask)
    assert {before[k].genant_grade for k in (up, mid, low)} == {0}
    _, out_mask, measured, _ = deform_to_genant(ct, mask, {mid: _truth(shape, grade)})
    assert (measured[mid].genant_grade, measured[mid].shape) == (grade, shape)
    for k in (up, low):
        assert measured[k].genant_grade == 0
        # heights kept (to 1 mm: morphometry's frame of a neighbour follows the spine curve
        # through the fractured body's centroid; the masks themselves: next test)
        assert np.allclose(measured[k].heights_mm, before[k].heights_mm, atol=1.0)


def test_neighbour_masks_are_not_deformed(canvas):
    ct, mask, (up, mid, low) = canvas
    truth = FractureTruth(3, "crush", 0.5, 0.7)  # moves both endplates of mid
    _, out = simulate_fracture(ct, mask, vertebra_label=mid, truth=truth)
    for k in (up, low):
        changed = np.count_nonzero((mask.data == k) != (out.data == k))
        assert changed < 0.005 * np.count_nonzero(mask.data == k)
    lost = np.count_nonzero(mask.data == mid) - np.count_nonzero(out.data == mid)
    assert lost > 0.3 * np.count_nonzero(mask.data == mid)  # the body did collapse


def test_labels_follow_the_tissue(canvas):
    ct, mask, (_, mid, _) = canvas
    out_ct, out_mask = deform_scan(ct, mask, {mid: _truth("wedge", 3)}, condensation=0.0)
    kept, vacated = out_mask.data == mid, (mask.data == mid) & (out_mask.data != mid)
    bone_before = float(ct.data[mask.data == mid].mean())
    assert abs(float(out_ct.data[kept].mean()) - bone_before) < 40.0  # still this bone
    assert float(out_ct.data[vacated].mean()) < bone_before - 80.0  # disc moved in
    # condensation raises the HU of the compressed bone
    dense_ct, _ = deform_scan(ct, mask, {mid: _truth("wedge", 3)}, condensation=1.0)
    assert float(dense_ct.data[kept].mean()) > float(out_ct.data[kept].mean()) + 5.0


def test_reoriented_anisotropic_input_keeps_its_grid_and_grades(canvas):
    (up, mid, low) = canvas[2]
    ct, mask = (reorient(image, "PIR") for image in canvas[:2])
    ct = resample_to_spacing(ct, (1.0, 1.0, 3.0))  # VerSe-like: 3 mm lateral slices
    mask = resample_to_spacing(mask, (1.0, 1.0, 3.0), interpolation="nearest")
    out_ct, out_mask, measured, _ = deform_to_genant(ct, mask, {mid: _truth("wedge", 2)})
    for out, ref in ((out_ct, ct), (out_mask, mask)):
        assert out.shape == ref.shape
        assert np.array_equal(out.affine, ref.affine)
        assert out.orientation == "PIR"
    assert out_mask.data.dtype == mask.data.dtype
    assert (measured[mid].genant_grade, measured[mid].shape) == (2, "wedge")
    assert measured[up].genant_grade == measured[low].genant_grade == 0


def test_healthy_vertebrae_go_through_the_same_resampling(canvas):
    ct, mask, (up, mid, low) = canvas
    same_ct, same_mask = deform_scan(ct, mask, {})
    assert np.array_equal(same_ct.data, ct.data) and np.array_equal(same_mask.data, mask.data)
    centre = ct.voxel_to_world((np.asarray(ct.shape) - 1) / 2.0)
    motion = random_rigid_transform(
        centre, np.random.default_rng(3), rotation_deg=2.0, shift_mm=1.0
    )
    healthy, healthy_mask = deform_scan(ct, mask, {}, transform=motion)
    grade0, _ = deform_scan(ct, mask, {mid: FractureTruth()}, transform=motion)
    assert np.array_equal(grade0.data, healthy.data)  # loss 0: the very same path
    assert not np.array_equal(healthy.data, ct.data)  # ... and it did interpolate
    fractured, _ = deform_scan(ct, mask, {mid: _truth("crush", 2)}, transform=motion)
    beyond = [k for k in np.unique(mask.data) if k and k not in (up, mid, low)]
    far = np.isin(healthy_mask.data, beyond)  # vertebrae beyond the neighbours
    assert far.sum() > 1000
    assert np.array_equal(fractured.data[far], healthy.data[far])
    near = healthy_mask.data == up  # the neighbour: only a sliver at its endplate may change
    assert (fractured.data[near] != healthy.data[near]).mean() < 0.02


def test_slabs_do_not_change_the_result(canvas, monkeypatch):
    from spinefx.synthesis import deformation

    ct, mask, (_, mid, _) = canvas
    noise = np.random.default_rng(0).standard_normal(ct.shape)
    whole = deform_scan(ct, mask, {mid: _truth("crush", 3)}, noise=noise)
    monkeypatch.setattr(deformation, "SLAB_VOXELS", 7 * ct.shape[1] * ct.shape[2])
    slabs = deform_scan(ct, mask, {mid: _truth("crush", 3)}, noise=noise)
    assert all(np.array_equal(a.data, b.data) for a, b in zip(whole, slabs, strict=True))


def test_two_neighbours_cannot_both_be_fractured(canvas):
    ct, mask, (up, mid, _) = canvas
    with pytest.raises(ValueError, match="adjacent"):
        deform_scan(ct, mask, {up: _truth("wedge", 2), mid: _truth("crush", 2)})


@pytest.mark.parametrize(
    "change, message",
    [
        ({"fracture_probability": 1.5}, "fracture_probability"),
        ({"grade_weights": (0.0, 0.0, 0.0)}, "grade_weights"),
        ({"boundary_margin": 0.03}, "boundary_margin"),
        ({"crop_levels": (5, 3)}, "crop_levels"),
        ({"rotation_deg": 40.0}, "rotation_deg"),
    ],
)
def test_config_is_validated(change, message):
    with pytest.raises(ValueError, match=message):
        RealFractureConfig(**change)


@pytest.fixture(scope="module")
def subjects(canvas, tmp_path_factory) -> list[RealSubject]:
    """The canvas written twice as two 'real' subjects (CT + mask, normal vertebrae grade 0)."""
    root = tmp_path_factory.mktemp("canvases")
    ct, mask, labels = canvas
    save_image(ct, root / "ct.nii.gz")
    save_image(mask, root / "msk.nii.gz")
    scan = RealScan(
        "canvas", root / "ct.nii.gz", root / "msk.nii.gz", {k: (0, None) for k in labels}
    )
    return [RealSubject(f"subj{i}", "synthetic", (scan,), "test", i == 0) for i in range(2)]


FAST = RealFractureConfig(fracture_probability=1.0, crop_levels=(3, 3), calibration_steps=2)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_dataset_is_deterministic_and_records_sources_and_grades(tmp_path, subjects):
    a = generate_real_fracture_dataset(
        tmp_path / "a", subjects=subjects, n_scans=2, seed=0, config=FAST
    )
    b = generate_real_fracture_dataset(
        tmp_path / "b", subjects=subjects, n_scans=1, seed=0, config=FAST
    )
    one, two = _files(b), _files(a)  # case 1 does not depend on how many cases are made
    case_files = [k for k in one if "sub-rf0001" in k]
    assert len(case_files) == 3 and all(one[k] == two[k] for k in case_files)
    c = generate_real_fracture_dataset(
        tmp_path / "c", subjects=subjects, n_scans=1, seed=1, config=FAST
    )
    ct = "rawdata/sub-rf0001/sub-rf0001_ct.nii.gz"
    assert _files(c)[ct] != _files(a)[ct]
    sources = _csv(a / "sources.csv")
    assert [r["source_subject"] for r in sources] in (["subj0", "subj1"], ["subj1", "subj0"])
    assert {r["shippable"] for r in sources} == {"True", "False"}
    grades = _csv(a / "fracture_grades.csv")
    assert tuple(grades[0]) == tuple(LONG_COLUMNS)
    simulated = [r for r in _csv(a / "synthesis_truth.csv") if r["simulated"] == "1"]
    assert simulated, "fracture_probability 1 must fracture a vertebra"
    cases = {c.case_id: c for c in load_dataset(a)}
    for row in simulated:
        vertebra = {v.vertebra_label: v for v in cases[row["case_id"]].vertebrae}
        written = vertebra[int(row["label"])]
        assert written.genant_grade == int(row["genant_grade"]) and written.shape == row["shape"]
        assert row["measured_grade"] == row["genant_grade"]  # the output mask measures it


@pytest.mark.real
def test_real_verse008_l3_wedge_measures_grade_2(real_data):
    from spinefx.synthesis.real_sources import find_real_subjects, load_real_pair

    subject = {s.subject_id: s for s in find_real_subjects(real_data)}.get("verse008")
    if subject is None or not subject.ct_scans:
        pytest.skip("verse008 CT not in the real sample folder")
    scan = subject.ct_scans[0]
    assert scan.grades[L3] == (0, None)  # L4 touches the scan border and is not graded
    ct, mask = load_real_pair(scan)
    before = _graded(mask)
    out_ct, out_mask, measured, _ = deform_to_genant(ct, mask, {L3: _truth("wedge", 2)})
    assert (measured[L3].genant_grade, measured[L3].shape) == (2, "wedge")
    assert np.array_equal(out_ct.affine, ct.affine) and out_ct.shape == ct.shape
    for k in (L1, L2):  # L2 is a real grade-2 wedge that morphometry measures lower
        assert measured[k].genant_grade == before[k].genant_grade
        assert np.allclose(measured[k].heights_mm, before[k].heights_mm, atol=1.0)

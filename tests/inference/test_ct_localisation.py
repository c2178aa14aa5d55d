"""Localisation from the CT's anatomy: bodies found where the masks put them, levels anchored
on the sacrum or said to be uncertain, never a confident wrong level; the CLI's outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spinefx.errors import InputError
from spinefx.evaluation.localisation import match_detections, score_localisation
from spinefx.image import Image
from spinefx.inference.ct_localisation import (
    automatic_centroids,
    localise_spine,
    vertebra_label_map,
)


def _real_pair(real_data, scan_id: str):
    from spinefx.synthesis.real_sources import find_real_subjects, load_real_pair

    for subject in find_real_subjects(real_data):
        for scan in subject.ct_scans:
            if scan.scan_id == scan_id:
                return load_real_pair(scan)
    pytest.skip(f"{scan_id} is not in {real_data}")


def _score(ct, mask):
    from spinefx.morphometry.centroids import body_centroids

    loc = localise_spine(ct)
    dets = [
        {
            "label": v.label,
            "centroid_mm": v.centroid_mm,
            "certain": v.level_confidence == "anchored",
        }
        for v in loc.vertebrae
    ]
    return loc, score_localisation(dets, body_centroids(mask), mask)


@pytest.mark.real
@pytest.mark.parametrize("scan_id", ["sub-verse007", "sub-verse008"])
def test_real_thoracolumbar_crops_are_found_and_their_levels_said_to_be_uncertain(
    real_data, scan_id
):
    """Tight VerSe crops (about 100 mm wide; 006-008 lie elderly, fatty marrow of 80-135 HU at
    the body centres): every vertebra in view but one within 10 mm, none outside the spine;
    no sacrum in view, so no level is given as certain."""
    ct, mask = _real_pair(real_data, scan_id)
    loc, score = _score(ct, mask)
    assert score["n_found"] >= score["n_truth"] - 1, score
    assert score["median_error_mm"] <= 6.0, score
    assert score["n_outside_spine"] == 0
    assert loc.anchor == "profile" and not loc.levels_certain
    assert all(v.level_confidence == "uncertain" for v in loc.vertebrae)
    assert score["levels_wrong"] == 0


@pytest.mark.real
def test_the_sacrum_anchors_the_levels_of_the_abdominal_ct(real_data):
    """TotalSegmentator's abdominal CT (T12-L5 and the sacrum, 3 mm): the sacrum is found, the
    body above it is L5 and every level matched to the mask is right."""
    ct, mask = _real_pair(real_data, "totalseg")
    loc, score = _score(ct, mask)
    assert loc.sacrum_found and loc.anchor == "sacrum" and loc.levels_certain
    assert score["n_found"] >= 3 and score["levels_wrong"] == 0
    assert score["levels_right"] == score["n_found"]
    assert loc.vertebrae[-1].label == 24  # L5


@pytest.mark.real
def test_the_ct_with_pedicle_screws_is_found_around_the_metal(real_data):
    """The clinical CT with pedicle screws (ctfu, L1-L5 and the sacrum, a 112 mm wide
    cut-out): the screws would outshine every endplate in the body profile and are left out
    of it; the body whose discs the profile misses is placed by the spacing of its
    neighbours. The sacrum ends the body line, but the cut-out's sides cut it, so its width
    was not seen and every level is said to be uncertain, never confidently wrong."""
    ct, mask = _real_pair(real_data, "sub-ctfu00001_ses-20080508_ce-no")
    loc, score = _score(ct, mask)
    assert loc.sacrum_found and not loc.sacrum_whole and loc.vertebrae[-1].label == 24
    # L2-L5 have their bodies in the mask (its L1 holds only the posterior elements)
    assert score["n_found"] >= 4, score
    assert score["levels_wrong"] == 0 and score["levels_right"] == 0, score
    assert any(v.inferred for v in loc.vertebrae), "the body between the screws is inferred"
    assert all(v.level_confidence == "uncertain" for v in loc.vertebrae)
    assert all("sides cut" in v.level_note for v in loc.vertebrae)
    assert any("sides cut" in note for note in loc.notes)


def test_a_body_missed_between_two_is_placed_by_their_spacing():
    from spinefx.inference.ct_localisation import _fill_gaps

    bone = np.ones(200, bool)
    centres, inferred = _fill_gaps([10, 40, 100, 130], 30.0, bone)
    assert centres == [10, 40, 70, 100, 130] and inferred == {70}
    centres, inferred = _fill_gaps([10, 40, 130], 30.0, bone)  # two missed
    assert centres == [10, 40, 70, 100, 130] and inferred == {70, 100}
    assert _fill_gaps([10, 40, 85], 30.0, bone) == ([10, 40, 85], set())  # 1.5 pitches: no body
    bone[70] = False  # the line is in a disc there: nothing is placed
    assert _fill_gaps([10, 40, 100], 30.0, bone) == ([10, 40, 100], set())


def test_a_sacrum_cut_by_the_scans_sides_ends_the_line_but_is_not_seen_whole():
    from spinefx.inference.ct_localisation import GRID_MM, SACRUM_HALF_WIDTH_MM, _sacrum_top

    # working grid (2 mm): a body line at x 40, y 30 from slice 0 to 79; slices 0-19 hold
    # bone 120 mm wide (a sacrum), slices 20-79 a 40 mm body
    solid = np.zeros((81, 60, 80), bool)
    chain = np.full((80, 3), np.nan)
    chain[:, :2] = (40, 30)
    solid[30:51, 22:39, 20:] = True
    solid[10:71, 22:39, :20] = True
    assert _sacrum_top(solid, chain) == (19, True)
    # a field of view 94 mm wide: the wide bone runs off both sides; it reaches 46 mm on
    # each side of the line, which reads as a sacrum, but its width was not seen
    narrow = np.ascontiguousarray(solid[17:64])
    chain[:, 0] = 23
    assert narrow[:, 30, 5].all() and min(23, 46 - 23) * GRID_MM >= SACRUM_HALF_WIDTH_MM
    assert _sacrum_top(narrow, chain) == (19, False)
    assert _sacrum_top(narrow[:, :, 20:], chain[20:]) == (None, True)  # no wide bone


def test_the_bodies_depth_keeps_the_pitch_off_twice_its_period():
    from spinefx.inference.ct_localisation import DISC_SPACING_MM, _pitch, _pitch_range

    # cervical-sized bodies 15 mm apart whose endplates alternate in brightness: the
    # profile correlates better at 30 mm (two bodies) than at 15 mm (one)
    z = np.arange(240.0)
    profile = 300 + 100 * np.cos(2 * np.pi * z / 15) + 90 * np.cos(2 * np.pi * z / 30)
    assert _pitch(profile) == 30.0  # the whole range 11-55 mm lets the double period win
    band = _pitch_range(8.0)  # bodies 16 mm across: pitches about 10-24 mm
    assert band == (11.0, 24.0)
    assert _pitch(profile, band) == 15.0
    # lumbar bodies 40 mm across; no depth at all leaves the whole range
    assert _pitch_range(20.0) == (24.0, 55.0)
    assert _pitch_range(None) == DISC_SPACING_MM == _pitch_range(float("nan"))


def test_levels_counted_from_the_sacrum_across_an_inferred_body_are_uncertain():
    from spinefx.inference.ct_localisation import (
        LocalisedVertebra,
        SpineLocalisation,
        _assign_levels,
        _level_remark,
    )

    def body(z, inferred=False):
        return LocalisedVertebra(0, np.array([0.0, 0.0, z]), "uncertain", "", inferred=inferred)

    loc = SpineLocalisation(
        [body(90.0), body(60.0, inferred=True), body(30.0), body(0.0)],
        np.zeros((0, 3)),
        pitch_mm=30.0,
        sacrum_found=True,
    )
    _assign_levels(loc)
    assert [v.label for v in loc.vertebrae] == [21, 22, 23, 24]  # L2-L5
    assert [v.level_confidence for v in loc.vertebrae] == [
        "uncertain", "uncertain", "anchored", "anchored"
    ]  # fmt: skip
    assert not loc.levels_certain
    remarks = {v.label: _level_remark(v, loc) for v in loc.vertebrae}  # automatic_centroids'
    assert (
        remarks[24] == remarks[23] == "" and "inferred" in remarks[21] and "inferred" in remarks[22]
    )
    # the same bodies above a sacrum whose width the scan's sides cut: no level is anchored
    loc = SpineLocalisation(
        [body(90.0), body(60.0, inferred=True), body(30.0), body(0.0)],
        np.zeros((0, 3)),
        pitch_mm=30.0,
        sacrum_found=True,
        sacrum_whole=False,
    )
    _assign_levels(loc)
    assert [v.label for v in loc.vertebrae] == [21, 22, 23, 24]
    assert all(v.level_confidence == "uncertain" for v in loc.vertebrae)
    assert all("sides cut" in _level_remark(v, loc) for v in loc.vertebrae)


def test_levels_counted_from_the_sacrum_across_a_gap_unlike_its_neighbours_are_uncertain():
    from spinefx.inference.ct_localisation import (
        LocalisedVertebra,
        SpineLocalisation,
        _assign_levels,
        _irregular_gaps,
    )

    # a disc taken for a body between the two lowest: two 15 mm gaps among 30 mm ones
    zs = [150.0, 120.0, 90.0, 60.0, 45.0, 30.0]
    assert _irregular_gaps([np.array([0.0, 0.0, z]) for z in zs]) == [
        False, False, False, True, True
    ]  # fmt: skip
    loc = SpineLocalisation(
        [LocalisedVertebra(0, np.array([0.0, 0.0, z]), "uncertain", "") for z in zs],
        np.zeros((0, 3)),
        pitch_mm=30.0,
        sacrum_found=True,
    )
    _assign_levels(loc)
    assert [v.label for v in loc.vertebrae] == [19, 20, 21, 22, 23, 24]  # T12-L5 by count
    # only the body right above the sacrum is still anchored: every count crosses the odd gap
    assert [v.level_confidence for v in loc.vertebrae] == ["uncertain"] * 5 + ["anchored"]
    assert "gap unlike" in loc.vertebrae[0].level_note
    # a slowly changing pitch (thoracic to lumbar) is not odd
    assert not any(
        _irregular_gaps([np.array([0.0, 0.0, z]) for z in np.cumsum([0, 24, 26, 28, 31, 34, 37])])
    )


def test_held_out_synthetic_scans_are_found(tmp_path):
    from spinefx.io import load_scan
    from spinefx.io.nifti import read_nifti
    from spinefx.synthesis import generate_dataset

    root = generate_dataset(tmp_path / "synth", n_scans=1, seed=7001, preset="default")
    ct_path = next(root.glob("rawdata/*/*_ct.nii.gz"))
    sub = ct_path.name.removesuffix("_ct.nii.gz")
    mask = read_nifti(root / "derivatives" / sub / f"{sub}_seg-vert_msk.nii.gz")
    _, score = _score(load_scan(ct_path), mask)
    assert score["found_rate"] >= 0.7 and score["median_error_mm"] <= 4.0, score
    assert score["n_outside_spine"] == 0


def test_a_scan_without_a_spine_gives_no_vertebra_and_says_why():
    rng = np.random.default_rng(0)
    shape = (60, 60, 60)
    data = np.full(shape, -1000.0, np.float32)
    x, y = np.meshgrid(np.arange(60), np.arange(60), indexing="ij")
    data[((x - 30) ** 2 + (y - 30) ** 2 < 25**2)] = 40.0  # a soft-tissue cylinder
    data += rng.normal(0, 10, shape).astype(np.float32)
    scan = Image(data, np.diag([2.0, 2.0, 2.0, 1.0]))
    loc = localise_spine(scan)
    assert loc.vertebrae == [] and loc.notes
    centroids, notes, summary = automatic_centroids(scan)
    assert centroids == {} and summary["localiser"] == "anatomy"


def test_an_implausible_localisation_is_refused():
    """The app's phantom has bodies 30 mm apart with 900 HU endplates and 90 HU discs: what is
    found there does not make one spine, and the guard says to pass centroids."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
    try:
        from conftest import make_phantom
    finally:
        sys.path.pop(0)
    scan, _ = make_phantom()
    with pytest.raises(InputError, match="implausible"):
        automatic_centroids(scan)


def test_matching_is_one_to_one_and_within_the_radius():
    truth = {20: np.array([0.0, 0.0, 0.0]), 21: np.array([0.0, 0.0, -30.0])}
    pairs = match_detections(
        [np.array([0.0, 0.0, 2.0]), np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, -45.0])],
        truth,
    )
    assert pairs == [(1, 20, 1.0)]  # the nearer of two detections; -45 is 15 mm away


def test_an_unknown_localiser_is_an_input_error():
    from spinefx.inference.screening import detect_fractures
    from spinefx.runs.shipped import shipped_run_dir

    scan = Image(np.zeros((8, 8, 8), np.float32), np.eye(4))
    with pytest.raises(InputError, match="unknown localiser"):
        detect_fractures(shipped_run_dir("voxel"), scan, localiser="guess")


@pytest.mark.real
def test_localise_cli_writes_centroids_a_label_map_and_the_confidences(real_data, tmp_path):
    from spinefx.cli import main
    from spinefx.io import load_centroids, load_scan
    from spinefx.io.nifti import read_nifti

    scan_path = real_data / "totalseg" / "example_ct.nii.gz"
    if not scan_path.is_file():
        pytest.skip("the TotalSegmentator example CT is not in the real sample folder")
    assert main(["localise", str(scan_path), "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "localisation.json").read_text())
    assert summary["anchor"] == "sacrum" and summary["levels_certain"]
    scan = load_scan(scan_path)
    centroids = load_centroids(tmp_path / "example_ct_ctd.json", scan)
    assert sorted(centroids) == sorted(v["label"] for v in summary["vertebrae"])
    labels = read_nifti(tmp_path / "example_ct_vert_msk.nii.gz")
    assert labels.shape == scan.shape and np.allclose(labels.affine, scan.affine)
    present = set(np.unique(np.asarray(labels.data)).tolist()) - {0}
    assert present == set(centroids)
    for label, c in centroids.items():  # each centre lies in (or next to) its own label
        ijk = np.round(labels.world_to_voxel(c[None])[0]).astype(int)
        box = np.asarray(labels.data)[tuple(slice(max(i - 3, 0), i + 4) for i in ijk)]
        assert label in box


def test_the_label_map_is_on_the_scan_grid_and_empty_without_vertebrae():
    scan = Image(np.full((10, 12, 14), -1000.0, np.float32), np.diag([1.5, 1.5, 3.0, 1.0]))
    loc = localise_spine(scan)
    labels = vertebra_label_map(scan, loc)
    assert labels.shape == scan.shape and np.allclose(labels.affine, scan.affine)
    assert not np.asarray(labels.data).any()


@pytest.mark.real
def test_detect_without_centroids_localises_on_the_anatomy_and_flags_uncertain_levels(
    real_data, tmp_path
):
    from spinefx.cli import main

    scan = real_data / "verse" / "rawdata" / "sub-verse008" / "sub-verse008_ct.nii.gz"
    if not scan.is_file():
        pytest.skip("verse008 is not in the real sample folder")
    assert main(["detect", str(scan), "--out", str(tmp_path)]) == 0
    patient = json.loads((tmp_path / "patient.json").read_text())
    assert patient["localisation"]["localiser"] == "anatomy"
    assert patient["localisation"]["levels_certain"] is False
    import pandas as pd

    rows = pd.read_csv(tmp_path / "vertebrae.csv")
    assert len(rows) >= 5 and (rows["centroid_source"] == "automatic").all()
    assert rows["note"].fillna("").str.contains("level uncertain").all()

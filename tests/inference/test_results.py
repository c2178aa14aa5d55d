"""Both methods return the same per-vertebra result, and say when a vertebra is not assessable."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spinefx.image import Image
from spinefx.records import RESULT_COLUMNS, VertebraResult


def _scan() -> Image:
    rng = np.random.default_rng(0)
    data = rng.normal(40.0, 30.0, (60, 60, 80)).astype(np.float32)
    data[20:40, 25:45, :] = 700.0  # a bone column
    data[:, :, :2] = -1000.0
    return Image(data, np.diag([2.0, 2.0, 2.0, 1.0]))


def test_a_result_row_has_the_shared_columns():
    row = VertebraResult(20, 0.7, True, (1.0, 2.0, 3.0), method="voxel").row()
    assert tuple(row) == RESULT_COLUMNS
    assert row["level"] == "L1" and row["flagged"] is True and row["x_mm"] == 1.0


def test_a_patch_mostly_outside_the_scan_is_not_assessable_rather_than_no_fracture(
    tmp_path, patch_run
):
    from spinefx.inference.patch_classifier import predict_vertebrae

    scan = _scan()
    inside = scan.voxel_to_world(np.array([30.0, 35.0, 40.0]))
    outside = inside + np.array([0.0, 0.0, 200.0])  # 200 mm beyond the top of a 160 mm scan
    results = predict_vertebrae(patch_run(tmp_path / "p"), scan, {20: inside, 21: outside})
    by_label = {r.vertebra_label: r for r in results}
    assert {r.method for r in results} == {"patch"}
    assert by_label[20].assessable and by_label[20].flagged is not None
    assert not by_label[21].assessable and by_label[21].flagged is None
    assert "outside the scan" in by_label[21].note
    assert by_label[21].out_of_view_fraction > 0.5


def test_a_voxel_vertebra_outside_the_scan_is_not_assessable(tmp_path, voxel_run):
    from spinefx.inference.screening import detect_fractures

    scan = _scan()
    inside = scan.voxel_to_world(np.array([30.0, 35.0, 40.0]))
    far = inside + np.array([0.0, 0.0, 400.0])
    result = detect_fractures(
        voxel_run(tmp_path / "v"), scan, {20: inside, 21: far}, show_progress=False
    )
    by_label = {r.vertebra_label: r for r in result.vertebrae}
    assert {r.method for r in result.vertebrae} == {"voxel"}
    assert by_label[20].assessable and math.isfinite(by_label[20].probability)
    assert by_label[20].flagged is None  # no operating point: not flagged, and said so
    assert "no operating point" in result.flag_note
    assert not by_label[21].assessable and by_label[21].flagged is None
    assert "outside the scan" in by_label[21].note


@pytest.mark.parametrize("flagged", [True, False, None])
def test_flagged_survives_the_row(flagged):
    assert VertebraResult(20, 0.5, flagged).row()["flagged"] is flagged


def test_vertebrae_with_screws_are_not_assessable_in_the_patch_classifier(
    real_data, patch_run, tmp_path
):
    from spinefx.inference.patch_classifier import predict_vertebrae
    from spinefx.io import load_centroids
    from spinefx.synthesis.real_sources import find_real_subjects, load_real_pair

    scans = [
        sc
        for s in find_real_subjects(real_data)
        if s.collection == "ctfu"
        for sc in s.ct_scans
        if sc.foreign_material
    ]
    assert scans, "the ctfu samples hold instrumented vertebrae"
    scan = scans[0]
    ct, _ = load_real_pair(scan)
    json_path = next(scan.mask_path.parent.glob("*_ctd.json"))
    centroids = load_centroids(json_path, ct, outside="keep")
    results = {
        r.vertebra_label: r for r in predict_vertebrae(patch_run(tmp_path / "p"), ct, centroids)
    }
    screwed = set(scan.foreign_material) & set(results)
    assert screwed
    for label in screwed:
        assert not results[label].assessable and results[label].flagged is None
        assert "metal" in results[label].note
    clean = [r for k, r in results.items() if k not in scan.foreign_material]
    assert all(r.assessable for r in clean if r.out_of_view_fraction <= 0.5)


def _voxel_result(label: int, flagged: bool | None, assessable: bool = True) -> VertebraResult:
    return VertebraResult(
        label, 0.5, flagged, (0.0, 0.0, 0.0), method="voxel", assessable=assessable
    )


_REGION = {
    "volume_mm3": 103328.0,
    "vertebrae": ["L4", "L5"],
    "nearest": "L5",
    "centre_mm": [0, 0, 0],
}
_OP = {"probability_threshold": 0.1, "noise_threshold_vox": 3200}


@pytest.mark.parametrize(
    ("component", "flags", "answer", "words"),
    [
        (True, (True, False), True, "flagged: L4"),
        (False, (False, False), False, ""),
        # a fracture region with no flagged vertebra: nothing a reader could check
        (True, (False, False), None, "no vertebra reaches the vertebra threshold"),
        # a flagged vertebra without a region reaching t_n: the two levels disagree
        (False, (True, False), None, "L4 reach the vertebra threshold"),
    ],
)
def test_the_voxel_patient_answer_is_inconclusive_where_patient_and_vertebrae_disagree(
    component, flags, answer, words
):
    from spinefx.inference.screening import _patient_answer

    vertebrae = [_voxel_result(23, flags[0]), _voxel_result(24, flags[1])]
    regions = [_REGION] if component else []
    fractured, note = _patient_answer(component, vertebrae, regions, _OP, checked=True)
    assert fractured is answer
    assert words in note
    if component:  # the region is named with its volume and the vertebrae it runs across
        assert "103.3 cm3 across L4-L5" in note and "outside what it knows" in note


def test_the_voxel_patient_answer_without_assessable_vertebrae_is_not_no_fracture():
    from spinefx.inference.screening import _patient_answer

    metal = [_voxel_result(23, None, assessable=False), _voxel_result(24, None, assessable=False)]
    fractured, note = _patient_answer(False, metal, [], _OP, checked=True)
    assert fractured is None and "not assessable" in note
    # without an operating point the vertebrae are never flagged: the paper's rule stands
    unflagged = [_voxel_result(23, None), _voxel_result(24, None)]
    assert _patient_answer(True, unflagged, [_REGION], _OP, checked=False)[0] is True
    assert _patient_answer(False, unflagged, [], _OP, checked=False) == (False, "")

"""Real-CT scoring: summaries of hand-made rows, morphometry on real and synthetic masks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spinefx.evaluation.real_ct import ScoredVertebra, summarise
from spinefx.morphometry.centroids import body_centroids


def _row(subject: str, grade: int, score: float, flagged: bool, level: str = "L1"):
    return ScoredVertebra(
        method="patch",
        subject_id=subject,
        scan_id=subject,
        collection="test",
        level=level,
        vertebra_label=20,
        genant_grade=grade,
        shape="wedge" if grade else "",
        score=score,
        flagged=flagged,
    )


def test_summary_counts_auc_rates_and_grades():
    rows = [
        _row("a", 0, 0.1, False),
        _row("a", 0, 0.4, True),
        _row("b", 2, 0.9, True),
        _row("b", 0, 0.2, False),
        _row("c", 3, 0.3, False),
        _row("c", 0, math.nan, False),  # not assessable: counted, not scored
    ]
    out = summarise(rows, n_resamples=200)
    assert out["n_vertebrae"] == 6 and out["n_scored"] == 5 and out["not_assessable"] == 1
    assert out["n_fractured"] == 2 and out["n_subjects"] == 3
    # positives 0.9, 0.3 against negatives 0.1, 0.4, 0.2: 3 + 2 of 6 pairs ordered
    assert out["auc"] == pytest.approx(5 / 6)
    assert out["sensitivity"] == pytest.approx(0.5)
    assert out["specificity"] == pytest.approx(2 / 3)
    assert out["by_grade"]["2"]["auc_vs_normal"] == pytest.approx(1.0)
    assert out["by_grade"]["3"]["auc_vs_normal"] == pytest.approx(2 / 3)
    assert "1" not in out["by_grade"]
    boot = out["auc_bootstrap"]
    assert 0.0 <= boot["low"] <= boot["high"] <= 1.0 and boot["n"] > 0


def test_body_centroids_sit_in_front_of_the_whole_vertebra_centre(synthetic_dataset):
    """The body centroid is anterior of the centre of mass of body + posterior elements."""
    from spinefx.io import centroids_from_mask, load_dataset, load_mask

    case = load_dataset(synthetic_dataset)[0]
    mask = load_mask(case.mask_path)
    body = body_centroids(mask)
    whole = centroids_from_mask(mask)
    truth = {v.vertebra_label: np.asarray(v.centroid_mm) for v in case.vertebrae}
    labels = [k for k in truth if k in body]
    assert labels
    err_body = np.median([np.linalg.norm(body[k] - truth[k]) for k in labels])
    err_whole = np.median([np.linalg.norm(whole[k] - truth[k]) for k in labels])
    assert err_body < err_whole and err_body < 4.0


def test_morphometry_scores_every_graded_real_vertebra(real_data):
    from spinefx.evaluation.real_ct import score_morphometry
    from spinefx.synthesis.real_sources import find_real_subjects

    verse = [s for s in find_real_subjects(real_data) if s.collection == "verse"]
    rows = score_morphometry(verse)
    assert len(rows) == 15 and sum(r.genant_grade >= 1 for r in rows) == 3
    fractured = {(r.subject_id, r.level) for r in rows if r.genant_grade >= 1}
    assert fractured == {("verse007", "T12"), ("verse007", "L1"), ("verse008", "L2")}
    assert all(r.method == "morphometry" for r in rows)


def test_a_scan_that_cannot_be_read_is_reported_in_its_rows_and_the_rest_are_scored(tmp_path):
    from spinefx.evaluation.real_ct import score_network
    from spinefx.synthesis.real_sources import RealScan, RealSubject

    bad = tmp_path / "truncated_ct.nii.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00truncated")
    scan = RealScan("broken", bad, tmp_path / "missing_msk.nii.gz", {20: (2, "wedge")})
    subject = RealSubject("broken", "test", (scan,), "none", False)
    rows = score_network("patch", tmp_path / "no_run", [subject])
    assert len(rows) == 1 and math.isnan(rows[0].score) and not rows[0].flagged
    assert rows[0].note.startswith("not scored:")

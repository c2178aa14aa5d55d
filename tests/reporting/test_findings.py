"""Draft findings: marked as a draft, probabilities and concept labels of the relevant units."""

from __future__ import annotations

import numpy as np

from spinefx.image import Image
from spinefx.reporting import (
    DRAFT_BANNER,
    ScanAnalysis,
    UnitConcept,
    UnitEvidence,
    VertebraExplanation,
    VertebraPrediction,
    draft_findings,
)

SCAN = Image(np.zeros((4, 4, 4), np.float32), np.eye(4))


def _analysis(probs: dict[int, float], threshold: float = 0.5) -> ScanAnalysis:
    preds = tuple(
        VertebraPrediction(label, p, p >= threshold, (0.0, 0.0, float(label)))
        for label, p in probs.items()
    )
    return ScanAnalysis("scan.nii.gz", SCAN, preds, decision_threshold=threshold)


def _explanation(pred: VertebraPrediction, units: list[int]) -> VertebraExplanation:
    evidence = tuple(
        UnitEvidence(u, 10.0 - i, 0.5, np.zeros((4, 4, 4))) for i, u in enumerate(units)
    )
    return VertebraExplanation(pred, SCAN, evidence)


def test_draft_names_flagged_levels_with_probabilities_and_unit_concepts():
    a = _analysis({19: 0.12, 20: 0.91, 21: 0.30})
    concepts = {
        7: UnitConcept(7, 0.5, label="superior endplate depression"),
        3: UnitConcept(3, 0.5, concept_scores={"inferior_endplate": 0.42, "disc": 0.1}),
    }
    text = draft_findings(a, {20: _explanation(a.predictions[1], [7, 3, 99])}, concepts)
    assert text.splitlines()[0] == DRAFT_BANNER
    assert "3 vertebrae assessed (T12 to L2)" in text
    assert "a vertebral fracture at L1 (probability 0.91)" in text
    assert "highest: L2, 0.30" in text
    assert "'superior endplate depression' (unit 7)" in text
    assert "unit 3 (no expert label; overlaps most with inferior endplate, IoU 0.42)" in text
    assert "unit 99 (not in the concept atlas)" in text
    assert text.index("unit 7") < text.index("unit 3")  # most relevant first


def test_draft_without_fracture_says_so_and_reports_the_highest_probability():
    text = draft_findings(_analysis({20: 0.2, 21: 0.45}), {}, {})
    assert "does not suggest a vertebral fracture" in text
    assert "highest: L2, 0.45" in text
    assert "respond to" not in text


def test_decision_threshold_of_the_run_is_used():
    text = draft_findings(_analysis({20: 0.35}, threshold=0.3), {}, {})
    assert "fracture at L1 (probability 0.35)" in text


def test_empty_scan_is_reported_without_inventing_findings():
    text = draft_findings(ScanAnalysis("x", SCAN, ()), {}, {})
    assert "no vertebrae could be assessed" in text

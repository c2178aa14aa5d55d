"""Draft findings: marked as a draft, probabilities and concept labels of the relevant units."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spinefx.image import Image
from spinefx.models import DISSECTED_LAYER
from spinefx.preprocessing import unit_to_hu
from spinefx.reporting import (
    DRAFT_BANNER,
    ScanAnalysis,
    UnitConcept,
    UnitEvidence,
    VertebraExplanation,
    VertebraResult,
    draft_findings,
)
from spinefx.reporting.analysis import ModelRun, predict_vertebrae

SCAN = Image(np.zeros((4, 4, 4), np.float32), np.eye(4))


def _analysis(probs: dict[int, float], threshold: float = 0.5) -> ScanAnalysis:
    preds = tuple(
        VertebraResult(label, p, p >= threshold, (0.0, 0.0, float(label)))
        for label, p in probs.items()
    )
    return ScanAnalysis("scan.nii.gz", SCAN, preds, decision_threshold=threshold)


def _explanation(pred: VertebraResult, units: list[int]) -> VertebraExplanation:
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


class MeanIntensityModel(torch.nn.Module):
    """A stand-in classifier whose probability is the mean of its [0, 1] input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logit(x.mean(dim=(1, 2, 3, 4)).double()).float()


#: vertebra -> probability the stand-in model gives its patch (T12, L1, L2, L3)
PROBABILITIES = {19: 0.05, 20: 0.30, 21: 0.60, 22: 0.95}


@pytest.mark.parametrize(
    ("threshold", "expected_flagged", "sentence"),
    [
        (0.9, [22], "The other 3 vertebrae are below the decision threshold of 0.90"),
        (0.1, [20, 21, 22], "The other 1 vertebrae are below the decision threshold of 0.10"),
    ],
)
def test_flags_follow_the_decision_threshold_of_the_run(threshold, expected_flagged, sentence):
    # at the default 0.5, L2 and L3 would be flagged: neither expectation matches that
    run = ModelRun(
        run_dir=None,
        model=MeanIntensityModel().eval(),
        patch_size_vox=4,
        spacing_mm=1.0,
        decision_threshold=threshold,
        layer=DISSECTED_LAYER,
    )
    patches = {
        k: Image(unit_to_hu(np.full((4, 4, 4), p, np.float32)), np.eye(4))
        for k, p in PROBABILITIES.items()
    }
    centroids = {k: np.array([0.0, 0.0, float(k)]) for k in PROBABILITIES}
    predictions, _ = predict_vertebrae(run, patches, centroids)
    assert [p.probability for p in predictions] == pytest.approx(list(PROBABILITIES.values()))
    assert [p.vertebra_label for p in predictions if p.flagged] == expected_flagged
    analysis = ScanAnalysis("scan.nii.gz", SCAN, predictions, decision_threshold=threshold)
    text = draft_findings(analysis, {}, {})
    flagged = ", ".join(
        f"{p.level} (probability {PROBABILITIES[p.vertebra_label]:.2f})"
        for p in predictions
        if p.vertebra_label in expected_flagged
    )
    assert f"at {flagged}." in text, text
    assert sentence in text, text


def test_the_threshold_saved_with_the_checkpoint_is_the_run_threshold(tmp_path):
    from spinefx.models import PatchClassifierConfig, build_model
    from spinefx.reporting import load_model_run
    from spinefx.runs import save_checkpoint

    config = PatchClassifierConfig(
        widths=(4, 8, 8, 16), patch_size_vox=16, head_conv_widths=(8,), head_mlp_widths=(8,)
    )
    model = build_model(config)
    for threshold in (0.9, 0.1):
        run_dir = tmp_path / f"run-{threshold}"
        run_dir.mkdir()
        save_checkpoint(
            run_dir / "checkpoint.pt",
            model,
            config,
            epoch=0,
            seed=0,
            threshold=threshold,
            val_metrics={},
        )
        assert load_model_run(run_dir).decision_threshold == pytest.approx(threshold)


def test_empty_scan_is_reported_without_inventing_findings():
    text = draft_findings(ScanAnalysis("x", SCAN, ()), {}, {})
    assert "no vertebrae could be assessed" in text

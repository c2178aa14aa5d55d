"""Draft findings text for one scan, from predictions and the concepts of the most relevant units.

The paper proposes pre-filling a report from the concept labels of the units that drove the
prediction. The text is a **draft** for a radiologist to edit: it says so in its first line, it
reports probabilities rather than diagnoses, and it names the units whose concept is unlabelled
instead of inventing one.
"""

from __future__ import annotations

from collections.abc import Mapping

from spinefx.reporting.types import ScanAnalysis, UnitConcept, VertebraExplanation

DRAFT_BANNER = (
    "DRAFT - generated automatically by spinefx for review; "
    "to be checked and edited by a radiologist. Not a diagnosis."
)


def draft_findings(
    analysis: ScanAnalysis,
    explanations: Mapping[int, VertebraExplanation],
    concepts: Mapping[int, UnitConcept],
    *,
    units_per_vertebra: int = 3,
) -> str:
    """Plain-language findings for one scan.

    Args:
        analysis: predictions for the scan's vertebrae.
        explanations: vertebra label → explanation (top units); flagged vertebrae without an
            explanation are reported without concepts.
        concepts: unit → general concept from the atlas (may be empty when there is no atlas).
        units_per_vertebra: how many of the most relevant units to name per flagged vertebra.

    Returns:
        The draft text: banner line, a findings paragraph, one sentence per flagged vertebra
        naming its most relevant concepts, and a method line.
    """
    preds = analysis.predictions
    lines = [DRAFT_BANNER, ""]
    if not preds:
        lines.append(f"Findings ({analysis.name}): no vertebrae could be assessed in this scan.")
        return "\n".join(lines)
    thr = analysis.decision_threshold
    flagged = [p for p in preds if p.flagged]
    normal = [p for p in preds if p.flagged is False]
    unassessed = [p for p in preds if not p.assessable]
    span = preds[0].level if len(preds) == 1 else f"{preds[0].level} to {preds[-1].level}"
    para = [
        f"Findings ({analysis.name}): {len(preds) - len(unassessed)} vertebrae assessed ({span})."
    ]
    if unassessed:
        listed = "; ".join(f"{p.level}: {p.note}" for p in unassessed)
        para.append(f"Not assessable: {listed}.")
    if flagged:
        listed = ", ".join(f"{p.level} (probability {p.probability:.2f})" for p in flagged)
        noun = "a vertebral fracture" if len(flagged) == 1 else "vertebral fractures"
        para.append(f"The classifier suggests {noun} at {listed}.")
    else:
        para.append("The classifier does not suggest a vertebral fracture at any assessed level.")
    if normal and flagged:
        top = max(normal, key=lambda p: p.probability)
        para.append(
            f"The other {len(normal)} vertebrae are below the decision threshold of {thr:.2f} "
            f"(highest: {top.level}, {top.probability:.2f})."
        )
    elif normal:
        top = max(normal, key=lambda p: p.probability)
        para.append(
            f"All probabilities are below the decision threshold of {thr:.2f} "
            f"(highest: {top.level}, {top.probability:.2f})."
        )
    lines.append(" ".join(para))
    for p in flagged:
        sentence = _concept_sentence(
            p.level, explanations.get(p.vertebra_label), concepts, units_per_vertebra
        )
        if sentence:
            lines.extend(["", sentence])
    if analysis.centroid_source:
        lines.extend(["", f"Vertebra positions: {analysis.centroid_source}."])
    lines.extend(
        [
            "",
            "Method: 3D CNN patch classifier per vertebra; concepts are the expert labels of the "
            "network units with the highest relevance r_k for that vertebra (network dissection).",
        ]
    )
    if analysis.notes:
        lines.extend(["", *(f"Note: {note}" for note in analysis.notes)])
    return "\n".join(lines)


def _concept_sentence(
    level: str,
    explanation: VertebraExplanation | None,
    concepts: Mapping[int, UnitConcept],
    n_units: int,
) -> str:
    if explanation is None or not explanation.units:
        return ""
    parts = []
    for ev in explanation.units[:n_units]:
        concept = concepts.get(ev.unit)
        parts.append(_describe_unit(ev.unit, concept))
    return f"At {level}, the most relevant network units respond to: " + "; ".join(parts) + "."


def _describe_unit(unit: int, concept: UnitConcept | None) -> str:
    if concept is None:
        return f"unit {unit} (not in the concept atlas)"
    if concept.label:
        return f"'{concept.label}' (unit {unit})"
    best = concept.best_concept()
    if best is not None and best[1] > 0:
        name, iou = best
        return f"unit {unit} (no expert label; overlaps most with {_pretty(name)}, IoU {iou:.2f})"
    return f"unit {unit} (no expert label yet)"


def _pretty(concept_name: str) -> str:
    return concept_name.replace("_", " ")

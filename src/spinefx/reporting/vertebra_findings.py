"""Per-vertebra findings for export: model probabilities joined with mask morphometry.

One :class:`VertebraFinding` per vertebra is what the DICOM Structured Report, the NIfTI
export's JSON and any other results file hold: the fracture probability of each model that
ran (by method, from :class:`~spinefx.records.VertebraResult`), the body heights, height
loss, Genant grade and shape from the vertebra mask (:mod:`spinefx.morphometry`), and why a
vertebra is not assessable. It adds nothing to those results; it only lines them up.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from spinefx.conventions import level_name, spine_rank
from spinefx.morphometry import VertebraMorphometry
from spinefx.records import VertebraResult


@dataclass(frozen=True)
class VertebraFinding:
    """Everything known about one vertebra of one scan.

    Attributes:
        vertebra_label: VerSe label id.
        probabilities: method (``patch`` / ``voxel``) -> fracture probability in [0, 1]
            (NaN: the model could not score it).
        flagged: method -> flagged at the run's operating point (None: no decision).
        heights_mm: (anterior, middle, posterior) body heights in mm, None without a mask.
        height_loss: largest deformity against the reference (fraction), None without a mask.
        genant_grade: 0-3 from morphometry, None when not graded or no mask.
        shape: ``wedge`` / ``biconcave`` / ``crush`` for grade >= 1, else None.
        assessable: False when a model's answer must not be read as "no fracture".
        notes: why it is not assessable or not graded (one per source), "" otherwise.
    """

    vertebra_label: int
    probabilities: dict[str, float] = field(default_factory=dict)
    flagged: dict[str, bool | None] = field(default_factory=dict)
    heights_mm: tuple[float, float, float] | None = None
    height_loss: float | None = None
    genant_grade: int | None = None
    shape: str | None = None
    assessable: bool = True
    notes: tuple[str, ...] = ()

    @property
    def level(self) -> str:
        return level_name(self.vertebra_label)

    @property
    def reason(self) -> str:
        """Why the vertebra is not assessable or not graded ("" when there is no note)."""
        return "; ".join(self.notes)

    def to_dict(self) -> dict:
        """JSON-ready record (NaN written as null)."""

        def num(v):
            return None if v is None or not math.isfinite(v) else round(float(v), 6)

        return {
            "vertebra_label": self.vertebra_label,
            "level": self.level,
            "fracture_probability": {m: num(p) for m, p in self.probabilities.items()},
            "flagged": dict(self.flagged),
            "heights_mm": None
            if self.heights_mm is None
            else dict(
                zip(("anterior", "middle", "posterior"), map(num, self.heights_mm), strict=True)
            ),
            "height_loss": num(self.height_loss),
            "genant_grade": self.genant_grade,
            "shape": self.shape,
            "assessable": self.assessable,
            "not_assessable_reason": "" if self.assessable else self.reason,
            "notes": list(self.notes),
        }


def vertebra_findings(
    results: Iterable[VertebraResult],
    morphometry: Iterable[VertebraMorphometry] = (),
) -> list[VertebraFinding]:
    """Join model results (any methods) and morphometry into one finding per vertebra.

    Args:
        results: per-vertebra results of every model that ran (``method`` tells them apart).
        morphometry: per-vertebra measurements of the vertebra mask (may be empty).

    Returns:
        One finding per vertebra present in either input, cranial to caudal.
    """
    by_label: dict[int, list[VertebraResult]] = {}
    for r in results:
        by_label.setdefault(int(r.vertebra_label), []).append(r)
    measured = {int(m.vertebra_label): m for m in morphometry}
    findings = []
    for label in sorted({*by_label, *measured}, key=spine_rank):
        rows, m = by_label.get(label, []), measured.get(label)
        notes = [r.note for r in rows if r.note and not r.assessable]
        if m is not None and m.note:
            notes.append(f"morphometry: {m.note}")
        findings.append(
            VertebraFinding(
                vertebra_label=label,
                probabilities={r.method or "model": float(r.probability) for r in rows},
                flagged={r.method or "model": r.flagged for r in rows},
                heights_mm=None if m is None else tuple(float(h) for h in m.heights_mm),
                height_loss=None if m is None else float(m.height_loss),
                genant_grade=None if m is None else m.genant_grade,
                shape=None if m is None else m.shape,
                assessable=all(r.assessable for r in rows),
                notes=tuple(notes),
            )
        )
    return findings


def findings_json(
    findings: Iterable[VertebraFinding],
    *,
    models: Mapping[str, dict],
    segmentation: str,
    fracture_segmentation: str = "none",
) -> str:
    """The findings as a JSON document (``models``: method -> :func:`model_identity`).

    ``segmentation`` says where the vertebra segmentation came from, ``fracture_segmentation``
    what the fracture segmentation holds (its segments' labels, or ``"none"``).
    """
    return json.dumps(
        {
            "models": dict(models),
            "segmentation": segmentation,
            "fracture_segmentation": fracture_segmentation,
            "vertebrae": [f.to_dict() for f in findings],
        },
        indent=2,
    )

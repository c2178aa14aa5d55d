"""What the page shows for one scan and one vertebra: JSON for the concept panel, PNG slices.

Presentation only: values come from :class:`~spinefx.reporting.ScanWorkspace` (cached per scan)
and images from :mod:`spinefx.reporting.figures`, in the display convention of every figure
(:mod:`spinefx.display`: radiological, edge letters, world RAS+ positions).
"""

from __future__ import annotations

from pathlib import Path

from spinefx.display import slice_positions_mm
from spinefx.errors import InputError
from spinefx.reporting import ModelRun, ScanWorkspace
from spinefx.reporting.backends import atlas_concepts
from spinefx.reporting.figures import (
    PLANES,
    best_slice,
    render_patch_slice,
    slice_count,
)


def overview_png(ws: ScanWorkspace) -> bytes:
    """Mid-sagittal slice of the scan with the vertebra centroids coloured by decision."""
    return ws.overview_png()


def panel_json(ws: ScanWorkspace, vertebra_label: int) -> dict:
    """The concept panel of one vertebra: top units with their concepts, slice counts, peaks.

    Raises:
        InputError: unknown vertebra or no atlas (the page shows the message).
    """
    ex = ws.explanation(vertebra_label)
    pred = ex.prediction
    concepts = ws.concepts()
    units = []
    for rank, ev in enumerate(ex.units, start=1):
        units.append(
            {
                "unit": ev.unit,
                "rank": rank,
                "relevance": float(ev.relevance),
                "threshold": float(ev.threshold),
                "peak": {p: best_slice(ev.activation, plane=p, region=ev.region()) for p in PLANES},
                "concept": _concept_dict(concepts.get(ev.unit)),
            }
        )
    top = ex.units[0] if ex.units else None
    start = (
        {p: best_slice(top.activation, plane=p, region=top.region()) for p in PLANES}
        if top is not None
        else {p: slice_count(ex.patch.shape, plane=p) // 2 for p in PLANES}
    )
    return {
        "vertebra_label": pred.vertebra_label,
        "level": pred.level,
        "probability": pred.probability,
        "flagged": pred.flagged,
        "assessable": pred.assessable,
        "note": pred.note,
        "layer": ex.layer,
        "slices": {p: slice_count(ex.patch.shape, plane=p) for p in PLANES},
        # world RAS+ mm of each slice along the plane's fixed axis (the slider's label)
        "positions_mm": {
            p: [round(float(v), 1) for v in slice_positions_mm(ex.patch, plane=p)] for p in PLANES
        },
        "start": start,
        "has_gradcam": ex.gradcam is not None,
        "n_units": len(concepts),
        "units": units,
    }


def slice_png(
    ws: ScanWorkspace,
    vertebra_label: int,
    *,
    plane: str,
    index: int | None,
    layer: str,
    unit: int | None,
) -> bytes:
    """One patch slice: plain CT (``layer="ct"``), a unit map (``"unit"``) or Grad-CAM."""
    label = int(vertebra_label)
    if layer == "ct":
        if label not in ws.patches:
            raise InputError(f"vertebra {label} is not in this scan")
        return render_patch_slice(ws.patches[label], plane=plane, index=index)
    ex = ws.explanation(label)
    if layer == "gradcam":
        if ex.gradcam is None:
            raise InputError("no Grad-CAM for this vertebra")
        return render_patch_slice(ex.patch, plane=plane, index=index, heat=ex.gradcam)
    if layer == "unit":
        for ev in ex.units:
            if ev.unit == unit:
                return render_patch_slice(
                    ex.patch, plane=plane, index=index, heat=ev.activation, region=ev.region()
                )
        raise InputError(f"unit {unit} is not among the top units of this vertebra")
    raise InputError(f"unknown layer {layer!r}", fix="use ct, unit or gradcam")


def concept_json(run: ModelRun, unit: int) -> dict:
    """The atlas concept of one unit, as shown on its card."""
    return _concept_dict(atlas_concepts(run).get(int(unit)))


def collage_path(run: ModelRun, unit: int) -> Path:
    """The collage PNG of one unit (dataset samples that activate it most)."""
    concept = atlas_concepts(run).get(int(unit))
    if concept is None or concept.collage_path is None or not concept.collage_path.is_file():
        raise InputError(f"no collage for unit {unit} in the atlas")
    return concept.collage_path


def _concept_dict(concept) -> dict | None:
    if concept is None:
        return None
    scores = sorted(concept.concept_scores.items(), key=lambda kv: -kv[1])
    return {
        "unit": concept.unit,
        "label": concept.label,
        "explanation": concept.explanation,
        "ranks": concept.ranks,
        "correlations": concept.correlations,
        "concept_scores": [{"name": k.replace("_", " "), "iou": round(v, 3)} for k, v in scores],
        "has_collage": concept.collage_path is not None and concept.collage_path.is_file(),
    }

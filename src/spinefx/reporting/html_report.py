"""Self-contained HTML report of one scan: draft findings, vertebra table and key images.

Every image is inlined as base64 PNG, so the single file can be mailed or archived. Only
allow-listed scan metadata appear (see :mod:`spinefx.reporting.privacy`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from functools import lru_cache

from spinefx.reporting.figures import best_slice, render_patch_slice, render_scan_overview
from spinefx.reporting.findings import draft_findings
from spinefx.reporting.privacy import report_metadata
from spinefx.reporting.types import ScanAnalysis, UnitConcept, VertebraExplanation


def build_html_report(
    analysis: ScanAnalysis,
    explanations: Mapping[int, VertebraExplanation],
    concepts: Mapping[int, UnitConcept],
    *,
    findings_text: str | None = None,
    include_identifiers: bool = False,
    model_name: str = "",
    units_per_vertebra: int = 3,
) -> str:
    """Render the report as one HTML string with inlined images.

    Args:
        analysis: the scan's predictions.
        explanations: vertebra label → explanation; key images are drawn for these vertebrae.
        concepts: unit → atlas concept (may be empty).
        findings_text: the (possibly edited) findings; default the automatic draft.
        include_identifiers: show patient/study identifiers from the scan metadata.
        model_name: run directory name shown in the footer.
        units_per_vertebra: unit maps per key-image block.

    Returns:
        HTML text (UTF-8).
    """
    import spinefx

    if findings_text is None:
        findings_text = draft_findings(
            analysis, explanations, concepts, units_per_vertebra=units_per_vertebra
        )
    scan = analysis.scan
    centroids = {
        p.vertebra_label: p.centroid_mm for p in analysis.predictions if p.centroid_mm is not None
    }
    overview = render_scan_overview(
        scan, centroids, fractured={p.vertebra_label: bool(p.flagged) for p in analysis.predictions}
    )
    scan_info = {
        "Scan": analysis.name,
        "Grid (voxels)": " x ".join(str(s) for s in scan.shape),
        "Voxel size (mm)": " x ".join(f"{s:.2f}" for s in scan.spacing_mm),
        "Orientation": scan.orientation,
        **report_metadata(scan.meta, include_identifiers=include_identifiers),
    }
    return _template().render(
        name=analysis.name,
        findings=findings_text,
        predictions=analysis.predictions,
        morphometry=analysis.morphometry,
        threshold=analysis.decision_threshold,
        centroid_source=(
            f"Vertebra positions: {analysis.centroid_source}." if analysis.centroid_source else ""
        ),
        overview=_b64(overview),
        key_images=_key_images(analysis, explanations, concepts, units_per_vertebra),
        scan_info=scan_info,
        notes=analysis.notes,
        version=spinefx.__version__,
        model_name=model_name,
    )


def _key_images(analysis, explanations, concepts, n_units) -> list[dict]:
    blocks = []
    for pred in analysis.predictions:
        ex = explanations.get(pred.vertebra_label)
        if ex is None:
            continue
        figures = [{"png": _b64(render_patch_slice(ex.patch, height_px=200)), "caption": "CT"}]
        for rank, ev in enumerate(ex.units[:n_units], start=1):
            index = best_slice(ev.activation, plane="sagittal", region=ev.region())
            png = render_patch_slice(
                ex.patch, index=index, heat=ev.activation, region=ev.region(), height_px=200
            )
            concept = concepts.get(ev.unit)
            label = concept.label if concept is not None and concept.label else "no expert label"
            caption = f"#{rank} unit {ev.unit} (r = {ev.relevance:.3g}): {label}"
            figures.append({"png": _b64(png), "caption": caption})
        if ex.gradcam is not None:
            index = best_slice(ex.gradcam, plane="sagittal")
            png = render_patch_slice(ex.patch, index=index, heat=ex.gradcam, height_px=200)
            figures.append({"png": _b64(png), "caption": f"Grad-CAM ({ex.layer or 'same layer'})"})
        blocks.append({"level": pred.level, "probability": pred.probability, "figures": figures})
    return blocks


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


@lru_cache(maxsize=1)
def _template():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("spinefx.reporting", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
    )
    return env.get_template("report.html")

"""Self-contained HTML report of one scan: draft findings, vertebra table and key images.

Every image is inlined as base64 PNG, so the single file can be mailed or archived. Only
allow-listed scan metadata appear (see :mod:`spinefx.reporting.privacy`). Images follow the
display convention of every spinefx figure (:mod:`spinefx.display`: radiological, edge letters,
world RAS+ mm positions in their captions) and are sized by their mm aspect inside a bounded
box; the page's CSS caps every image at the column width, so the report stays readable for any
field of view (a thin slab, a whole-body scan).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from functools import lru_cache

from spinefx.display import display_slice
from spinefx.reporting.figures import (
    best_slice,
    overview_slice,
    png_size,
    render_patch_slice,
    render_scan_overview,
)
from spinefx.reporting.findings import draft_findings
from spinefx.reporting.privacy import report_metadata
from spinefx.reporting.types import ScanAnalysis, UnitConcept, VertebraExplanation

#: height of the key images (patch slices) in pixels
KEY_IMAGE_HEIGHT_PX = 200


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
    overview_position = overview_slice(scan, centroids).position_label
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
        overview=_figure(overview, f"Mid-sagittal slice, {overview_position} (world RAS+)"),
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
        figures = [_patch_figure(ex.patch, None, "CT")]
        for rank, ev in enumerate(ex.units[:n_units], start=1):
            index = best_slice(ev.activation, plane="sagittal", region=ev.region())
            concept = concepts.get(ev.unit)
            label = concept.label if concept is not None and concept.label else "no expert label"
            caption = f"#{rank} unit {ev.unit} (r = {ev.relevance:.3g}): {label}"
            figures.append(
                _patch_figure(ex.patch, index, caption, heat=ev.activation, region=ev.region())
            )
        if ex.gradcam is not None:
            index = best_slice(ex.gradcam, plane="sagittal")
            caption = f"Grad-CAM ({ex.layer or 'same layer'})"
            figures.append(_patch_figure(ex.patch, index, caption, heat=ex.gradcam))
        blocks.append({"level": pred.level, "probability": pred.probability, "figures": figures})
    return blocks


def _patch_figure(patch, index, caption: str, **overlay) -> dict:
    """A sagittal patch slice with its world position in the caption."""
    png = render_patch_slice(patch, index=index, height_px=KEY_IMAGE_HEIGHT_PX, **overlay)
    position = display_slice(patch, plane="sagittal", index=index).position_label
    return _figure(png, f"{caption}; sagittal {position}")


def _figure(png: bytes, caption: str) -> dict:
    width, height = png_size(png)
    return {"png": _b64(png), "caption": caption, "width": width, "height": height}


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

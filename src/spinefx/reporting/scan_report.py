"""One call from a scan file to a written report: what ``spinefx report`` and the app share."""

from __future__ import annotations

from pathlib import Path

from spinefx.atomic import write_text_atomic
from spinefx.reporting.analysis import ModelRun, ScanWorkspace, load_model_run
from spinefx.reporting.findings import draft_findings
from spinefx.reporting.html_report import build_html_report


def open_workspace(
    run: ModelRun,
    scan_path: str | Path,
    *,
    centroids_path: str | Path | None = None,
    name: str | None = None,
    mask_path: str | Path | None = None,
    mask_numbering: str = "auto",
) -> ScanWorkspace:
    """Load a scan and its vertebra centroids, then predict every vertebra.

    Centroids come from the VerSe JSON when given, else from a vertebra mask (VerSe or
    TotalSegmentator, body centroids), else from automatic localisation on the CT's anatomy
    (no model needed).

    Raises:
        InputError: unreadable scan or centroid file, or no way to find the vertebrae.
    """
    from spinefx.io import load_centroids, load_scan
    from spinefx.reporting.backends import locate_vertebrae

    scan = load_scan(scan_path)
    scan.meta.pop("source", None)  # a path often names the patient; reports never show it
    if centroids_path is not None:
        centroids = load_centroids(centroids_path, scan)
        source = "from the centroid file"
    elif mask_path is not None:
        from spinefx.morphometry.centroids import vertebra_mask_centroids

        centroids = vertebra_mask_centroids(mask_path, scan, numbering=mask_numbering)
        source = "body centroids of the vertebra mask"
    else:
        centroids = locate_vertebrae(scan)
        source = "from automatic localisation (bodies and discs on the CT)"
    morphometry = None
    if mask_path is not None:
        from spinefx.io.vertebra_masks import load_vertebra_mask
        from spinefx.morphometry import morphometry_columns

        morphometry = morphometry_columns(
            load_vertebra_mask(mask_path, numbering=mask_numbering).image
        )
    return ScanWorkspace(
        run,
        scan,
        centroids,
        name=name or Path(scan_path).name,
        centroid_source=source,
        morphometry=morphometry,
    )


def write_scan_report(
    scan_path: str | Path,
    *,
    model_run_dir: str | Path,
    out_path: str | Path,
    centroids_path: str | Path | None = None,
    atlas_path: str | Path | None = None,
    include_identifiers: bool = False,
    mask_path: str | Path | None = None,
    mask_numbering: str = "auto",
    dicom_out: str | Path | None = None,
) -> tuple[Path, Path]:
    """Write the DRAFT report of one scan as HTML (images inlined) and as plain text.

    Args:
        scan_path: NIfTI file or DICOM folder.
        model_run_dir: patch classifier run directory.
        out_path: the ``.html`` file; the text goes next to it with suffix ``.txt``.
        centroids_path: VerSe centroid JSON, else automatic localisation.
        atlas_path: concept atlas (default: the run's own).
        mask_path / mask_numbering: vertebra mask whose body centroids locate the vertebrae
            when no centroid file is given (see :mod:`spinefx.io.vertebra_masks`).
        include_identifiers: show patient/study identifiers from DICOM headers.
        dicom_out: also write the findings for PACS to this folder
            (:func:`spinefx.reporting.dicom_export.export_results`: DICOM SEG of the mask's
            vertebrae + SR for a DICOM series, NIfTI map + JSON for a NIfTI scan).

    Returns:
        ``(html_path, text_path)``, both written atomically.
    """
    run = load_model_run(model_run_dir, atlas_path=atlas_path)
    ws = open_workspace(
        run,
        scan_path,
        centroids_path=centroids_path,
        mask_path=mask_path,
        mask_numbering=mask_numbering,
    )
    explanations = ws.explanations_for_report()
    concepts = ws.concepts()
    text = draft_findings(ws.analysis, explanations, concepts)
    html = build_html_report(
        ws.analysis,
        explanations,
        concepts,
        findings_text=text,
        include_identifiers=include_identifiers,
        model_name=run.name,
    )
    html_path = Path(out_path)
    text_path = html_path.with_suffix(".txt")
    write_text_atomic(html_path, html)
    write_text_atomic(text_path, text + "\n")
    if dicom_out is not None:
        from spinefx.reporting.dicom_export import export_results
        from spinefx.runs.shipped import model_identity

        export_results(
            ws.analysis.scan,
            ws.analysis.predictions,
            dicom_out,
            source=scan_path,
            mask_path=mask_path,
            mask_numbering=mask_numbering,
            models={"patch": model_identity(run.trained)} if run.trained is not None else {},
        )
    return html_path, text_path

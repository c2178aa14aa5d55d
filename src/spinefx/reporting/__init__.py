"""spinefx.reporting: per-scan analysis, draft findings text and self-contained HTML reports.

The stage after interpretation: it runs a trained classifier and its concept atlas on one scan
and turns the result into what a radiologist reads. The web app (:mod:`spinefx.app`) and
``spinefx report`` are thin shells over this API.

Public names:
    ModelRun, load_model_run: a classifier run (and its atlas) loaded once.
    ScanWorkspace: one scan's patches, predictions and cached explanations.
    draft_findings: the DRAFT findings paragraph.
    build_html_report: the self-contained HTML report.
    report_metadata: allow-listed scan metadata for reports.
    open_workspace, write_scan_report: scan file -> workspace -> written report.
    export_results, ResultsExport: findings for PACS (DICOM SEG + SR, or NIfTI + JSON).
    VertebraFinding, vertebra_findings: per-vertebra probabilities joined with morphometry.
    ScanAnalysis, VertebraExplanation, UnitEvidence, UnitConcept: value types.
"""

from spinefx.records import VertebraResult
from spinefx.reporting.analysis import ModelRun, ScanWorkspace, load_model_run
from spinefx.reporting.dicom_export import ResultsExport, export_results
from spinefx.reporting.findings import DRAFT_BANNER, draft_findings
from spinefx.reporting.html_report import build_html_report
from spinefx.reporting.privacy import report_metadata
from spinefx.reporting.scan_report import open_workspace, write_scan_report
from spinefx.reporting.types import (
    ScanAnalysis,
    UnitConcept,
    UnitEvidence,
    VertebraExplanation,
)
from spinefx.reporting.vertebra_findings import VertebraFinding, vertebra_findings

__all__ = [
    "DRAFT_BANNER",
    "ModelRun",
    "ResultsExport",
    "ScanAnalysis",
    "ScanWorkspace",
    "UnitConcept",
    "UnitEvidence",
    "VertebraExplanation",
    "VertebraFinding",
    "VertebraResult",
    "build_html_report",
    "draft_findings",
    "export_results",
    "load_model_run",
    "open_workspace",
    "report_metadata",
    "vertebra_findings",
    "write_scan_report",
]

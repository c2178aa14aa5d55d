"""HTML report: self-contained, escaped, and free of identifiers unless asked for."""

from __future__ import annotations

import base64
import re

import numpy as np

from spinefx.image import Image
from spinefx.reporting import (
    ScanAnalysis,
    UnitConcept,
    UnitEvidence,
    VertebraExplanation,
    VertebraResult,
    build_html_report,
    report_metadata,
)

META = {
    "format": "dicom",
    "source": "/data/DOE_JOHN/series1",
    "dicom": {"PatientName": "DOE^JOHN", "PatientID": "12345", "Modality": "CT", "KVP": "120"},
}


def _case():
    scan = Image(np.full((16, 16, 24), 100.0, np.float32), np.eye(4), dict(META))
    patch = Image(np.full((8, 8, 8), 300.0, np.float32), np.eye(4))
    pred = VertebraResult(20, 0.8, True, (8.0, 8.0, 12.0))
    heat = np.zeros((8, 8, 8), np.float32)
    heat[2:5, 2:5, 2:5] = 1.0
    ex = VertebraExplanation(pred, patch, (UnitEvidence(5, 3.0, 0.5, heat),), gradcam=heat)
    analysis = ScanAnalysis("case.nii.gz", scan, (pred,))
    return analysis, {20: ex}, {5: UnitConcept(5, 0.5, label="endplate")}


def test_report_is_self_contained_with_decodable_png_images():
    html = build_html_report(*_case())
    assert "DRAFT" in html
    assert not re.search(r"src=\"(?!data:)", html)  # no external resources
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert len(images) >= 4  # overview, CT, one unit, Grad-CAM
    assert all(base64.b64decode(b).startswith(b"\x89PNG") for b in images)
    assert "unit 5" in html and "endplate" in html


def _text(html: str) -> str:
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)  # base64 may spell anything


def test_identifiers_only_with_include_identifiers():
    html = _text(build_html_report(*_case()))
    assert "DOE" not in html and "12345" not in html
    assert "CT" in html and "120" in html  # acquisition fields stay
    html = _text(build_html_report(*_case(), include_identifiers=True))
    assert "DOE^JOHN" in html and "12345" in html
    assert "/data/DOE_JOHN" not in html  # paths never appear


def test_edited_findings_are_escaped():
    html = build_html_report(*_case(), findings_text="<script>alert(1)</script> L1 fracture")
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;" in html


def test_metadata_allow_list():
    assert report_metadata(META) == {"Modality": "CT", "kVp": "120", "Source format": "dicom"}
    with_ids = report_metadata(META, include_identifiers=True)
    assert with_ids["Patient name"] == "DOE^JOHN" and with_ids["Patient ID"] == "12345"

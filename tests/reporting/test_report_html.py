"""HTML report: self-contained, escaped, and free of identifiers unless asked for."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

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


#: the widest a report image may be on any field of view (the page column is ~1,000 px)
MAX_REPORT_IMAGE_PX = 1600


def _scan_case(shape, spacing, origin, marker):
    """One vertebra at the scan centre, a bright marker at voxel slice ``marker``."""
    data = np.full(shape, -800.0, np.float32)
    data[marker] = 1500.0
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    scan = Image(data, affine)
    centre = scan.voxel_to_world((np.asarray(shape, float) - 1) / 2)
    pred = VertebraResult(20, 0.8, True, tuple(centre))
    patch = Image(np.full((8, 8, 8), 300.0, np.float32), np.eye(4))
    ex = VertebraExplanation(pred, patch, (), gradcam=None)
    return ScanAnalysis("case.nii.gz", scan, (pred,)), {20: ex}, {}, centre


def _images(html: str) -> list[tuple[np.ndarray, int, int]]:
    """(decoded RGB, width attribute, height attribute) of every inlined image."""
    import io

    from PIL import Image as PILImage

    out = []
    for tag in re.findall(r"<img [^>]+>", html):
        data = re.search(r"base64,([A-Za-z0-9+/=]+)", tag).group(1)
        rgb = np.asarray(PILImage.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
        width = int(re.search(r'width="(\d+)"', tag).group(1))
        height = int(re.search(r'height="(\d+)"', tag).group(1))
        out.append((rgb, width, height))
    return out


def test_report_images_stay_bounded_on_a_thin_slab_and_a_tall_scan():
    thin = _scan_case((60, 300, 8), (5.0, 1.0, 5.0), (-150, -100, 700), np.s_[:, 250:270, 3:5])
    tall = _scan_case((40, 150, 500), (5.0, 2.0, 2.0), (-100, -150, -400), np.s_[:, 120:140, :])
    for analysis, explanations, concepts, _ in (thin, tall):
        html = build_html_report(analysis, explanations, concepts)
        images = _images(html)
        assert len(images) >= 2  # the overview and the CT key image
        for rgb, width, height in images:
            assert rgb.shape[1] == width <= MAX_REPORT_IMAGE_PX  # attribute = true size
            assert rgb.shape[0] == height <= MAX_REPORT_IMAGE_PX
        assert "img { max-width: 100%; height: auto; }" in html  # and CSS caps it at the column
        assert re.search(r"body \{[^}]*max-width: 1050px", html)
    overview = _images(build_html_report(*thin[:3]))[0][0]
    assert overview.shape[1] / overview.shape[0] == pytest.approx(300 / 40, rel=0.02)


def test_report_overview_is_radiological_and_captioned_in_world_coordinates():
    analysis, explanations, concepts, centre = _scan_case(
        (60, 300, 8), (5.0, 1.0, 5.0), (-150, -100, 700), np.s_[:, 250:270, 3:5]
    )
    html = build_html_report(analysis, explanations, concepts)
    overview = _images(html)[0][0]
    inner = overview[20:-20, 20 : overview.shape[1] // 3].astype(int)  # the dot is mid-image
    grey = (inner[..., 0] == inner[..., 1]) & (inner[..., 1] == inner[..., 2])
    _, cols = np.nonzero(grey & (inner[..., 0] > 200))
    assert cols.size  # the anterior marker: in the left third
    centre_col = overview.shape[1] // 2  # the centroid's dot (white rim) at the middle
    assert np.all(overview[40:-40, centre_col + 60 : -40] < 100)  # nothing bright posteriorly
    x_world = analysis.scan.voxel_to_world(np.array([30.0, 0, 0]))[0]  # the median slice
    assert x_world == pytest.approx(centre[0] + 2.5)  # 60 slices: the centre falls between two
    assert f"Mid-sagittal slice, x = {x_world:.1f} mm (world RAS+)" in html
    assert "CT; sagittal x = 4.0 mm" in html  # the key image: world x of the patch's voxel 4

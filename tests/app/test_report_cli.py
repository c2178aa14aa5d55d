"""``spinefx report`` writes the same draft report as the app, without the app."""

from __future__ import annotations

import re

from spinefx.cli import main


def test_report_command_writes_html_and_text(tiny_run, phantom_files, tmp_path):
    scan, ctd = phantom_files
    out = tmp_path / "reports" / "case.html"
    code = main(
        ["report", str(scan), "--model", str(tiny_run), "--centroids", str(ctd), "--out", str(out)]
    )
    assert code == 0
    html = out.read_text()
    text = out.with_suffix(".txt").read_text()
    assert text.startswith("DRAFT") and "5 vertebrae assessed (T12 to L4)" in text
    assert "DRAFT" in html and len(re.findall("data:image/png;base64,", html)) >= 3
    assert not list(out.parent.glob(".*part*"))  # atomic: no temporary files left


def test_report_command_names_the_bad_file(tiny_run, tmp_path, capsys):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8bnot really")
    code = main(["report", str(bad), "--model", str(tiny_run), "--out", str(tmp_path / "r.html")])
    assert code == 1
    assert "broken.nii.gz" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()

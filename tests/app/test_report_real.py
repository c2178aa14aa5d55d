"""``spinefx report`` on a real CT (PIR orientation) with its VerSe centroid file."""

from __future__ import annotations

import pytest

from spinefx.reporting import write_scan_report

pytestmark = pytest.mark.real


def test_report_on_a_real_lumbar_ct(real_data, tiny_run, tmp_path):
    ses = real_data / "ctfu" / "rawdata" / "sub-ctfu00001" / "ses-20080508"
    scan = ses / "sub-ctfu00001_ses-20080508_ce-no_ct.nii.gz"
    ctd = (
        real_data
        / "ctfu"
        / "derivatives"
        / "sub-ctfu00001"
        / "ses-20080508"
        / "sub-ctfu00001_ses-20080508_ce-no_seg-subreg_ctd.json"
    )
    if not scan.is_file() or not ctd.is_file():
        pytest.skip("ctfu sample session 20080508 not found")
    html_path, text_path = write_scan_report(
        scan, model_run_dir=tiny_run, out_path=tmp_path / "real.html", centroids_path=ctd
    )
    text = text_path.read_text()
    assert text.startswith("DRAFT")
    # centroid labels 21-24; the two vertebrae with pedicle screws are not assessable
    assert "2 vertebrae assessed (L2 to L5)" in text, text
    assert text.count("metal (screws): not assessable") == 2, text
    html = html_path.read_text()
    assert (
        "Orientation</td><td>PIR" in html and "sub-ctfu00001_ses-20080508_ce-no_ct.nii.gz" in html
    )

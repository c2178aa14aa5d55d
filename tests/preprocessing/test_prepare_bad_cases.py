"""`spinefx prepare` on a dataset with broken cases: every case is in the summary and errors.csv."""

from __future__ import annotations

import csv
import gzip
import json

import nibabel as nib
import numpy as np

from spinefx.cli import main


def _broken_dataset(tmp_path):
    from spinefx.synthesis import generate_dataset

    root = generate_dataset(tmp_path / "d", n_scans=3, seed=4, preset="small")
    der = sorted((root / "derivatives").iterdir())
    raw = sorted((root / "rawdata").iterdir())
    # case 2: a malformed centroid direction and a 2-D mask: the loader must drop it
    ctd = next(der[1].glob("*_ctd.json"))
    entries = json.loads(ctd.read_text())
    entries[0] = {"direction": 5}
    ctd.write_text(json.dumps(entries))
    mask = next(der[1].glob("*_seg-vert_msk.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((8, 8), np.uint8), np.eye(4)), mask)
    # case 3: a truncated CT: loading works (header only), extraction fails
    ct = next(raw[2].glob("*_ct.nii.gz"))
    ct.write_bytes(gzip.compress(gzip.decompress(ct.read_bytes())[:2000]))
    return root, der[1].name, raw[2].name


def test_prepare_reports_loader_and_extraction_failures_and_finishes(tmp_path, capsys):
    root, dropped, truncated = _broken_dataset(tmp_path)
    out = tmp_path / "patches"
    code = main(["prepare", str(root), "--out", str(out), "--size-vox", "16", "--spacing-mm", "6"])
    assert code == 0
    summary = capsys.readouterr().out
    assert "cases: 1 ok" in summary and "2 failed" in summary, summary
    with (out / "errors.csv").open() as handle:
        errors = {row["case_id"]: row["error"] for row in csv.DictReader(handle)}
    assert set(errors) == {dropped, truncated}
    assert errors[dropped].startswith("not loaded:")


def test_an_unexpected_error_in_one_case_does_not_abort_the_dataset(tmp_path, monkeypatch):
    from spinefx.io import layouts, scan_dataset
    from spinefx.synthesis import generate_dataset

    root = generate_dataset(tmp_path / "d", n_scans=2, seed=4, preset="small")
    real = layouts._folder_case

    def flaky(name, *args, **kwargs):
        if name.endswith("0001"):
            raise ZeroDivisionError("boom")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(layouts, "_folder_case", flaky)
    loaded = scan_dataset(root)
    assert len(loaded.cases) == 1
    assert any("unexpected ZeroDivisionError: boom" in p.problem for p in loaded.problems)

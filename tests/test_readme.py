"""The README's Python API example runs as written (on a synthetic scan and tiny runs)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _example() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Run it on your own CT")
    blocks = re.findall(r"```python\n(.*?)```", text[start:], flags=re.S)
    assert blocks, "the README lost its Python API example"
    return blocks[0]


def test_the_readme_api_example_runs(tmp_path, monkeypatch, capsys, patch_run, voxel_run):
    import numpy as np

    from spinefx.io import save_centroids, save_image
    from spinefx.synthesis import generate_case, synthesis_preset

    case = generate_case(synthesis_preset("small"), np.random.default_rng(3))
    centroids = {v.vertebra_label: v.centroid_mm for v in case.vertebrae}
    save_image(case.ct, tmp_path / "ct.nii.gz")
    save_centroids(centroids, tmp_path / "ct_ctd.json", reference=case.ct)
    from spinefx.runs.shipped import ENV_VAR, KIND_FOLDERS

    weights = tmp_path / "weights"  # stands in for the shipped weights folder
    patch_run(weights / KIND_FOLDERS["patch"])
    voxel_run(weights / KIND_FOLDERS["voxel"])
    monkeypatch.setenv(ENV_VAR, str(weights))
    monkeypatch.chdir(tmp_path)
    exec(compile(_example(), str(README), "exec"), {})
    out = capsys.readouterr().out
    levels = [line.split()[0] for line in out.splitlines() if line[:1] in "TL" and " " in line]
    assert levels, out
    assert "patient score" in out and "no operating point" in out
    assert out.count("'method': 'voxel'") == len(centroids)

"""The weights that ship with spinefx: packaging, checksums, reproduction, default use, notes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spinefx.cli import main
from spinefx.errors import InputError
from spinefx.runs import shipped


def _package(tmp_path, patch_run, voxel_run):
    from spinefx.release.weights import package_weights

    runs = {"patch": patch_run(tmp_path / "p"), "voxel": voxel_run(tmp_path / "v")}
    target = tmp_path / "weights"
    manifest = package_weights(
        runs,
        target,
        recipe="default-cpu",
        seed=0,
        training_data={"scans_per_source": {"procedural": 1}},
    )
    return target, manifest


def test_the_shipped_weights_are_intact_and_reproduce_their_recorded_outputs():
    """The committed weights load, match MANIFEST.json and reproduce reference_outputs.json."""
    from spinefx.release.weights import reference_outputs
    from spinefx.runs import load_trained

    root = shipped.weights_dir()
    assert (root / shipped.MANIFEST).is_file(), f"no shipped weights in {root}: run make weights"
    assert shipped.verify_shipped() == []
    manifest = shipped.read_manifest()
    assert manifest["recipe"] == "default-cpu"
    data = manifest["training_data"]
    for subject in data["real_subjects"]:  # none today: the default recipe is procedural
        assert "NC" not in subject["licence"] and "no data licence" not in subject["licence"]
    assert {"ctfu", "verse_predicted_masks"} <= set(data["left_out"])
    for kind in ("patch", "voxel"):
        run = load_trained(shipped.shipped_run_dir(kind))
        assert run.threshold is not None, "the shipped runs have an operating point"
        assert run.training_note.startswith("Trained only on simulated data")
        assert str(shipped.weights_dir()) not in run.operating_point["source"]
    recorded = json.loads((root / shipped.REFERENCE).read_text())
    now = reference_outputs(shipped.shipped_run_dir("patch"), shipped.shipped_run_dir("voxel"))
    for kind in ("patch", "voxel"):
        assert recorded[kind].keys() == now[kind].keys()
        for level, p in recorded[kind].items():
            assert now[kind][level] == pytest.approx(p, abs=1e-4)
    assert (shipped.shipped_run_dir("patch") / "checkpoint.pt").stat().st_size < 5e6


def test_packaging_records_checksums_that_catch_a_changed_file(tmp_path, patch_run, voxel_run):
    target, manifest = _package(tmp_path, patch_run, voxel_run)
    assert shipped.verify_shipped(target) == []
    assert "patch_classifier/checkpoint.pt" in manifest["files"]
    assert not (tmp_path / "weights.building").exists()
    recorded = json.loads((target / shipped.REFERENCE).read_text())
    assert recorded["patch"] and recorded["voxel"]
    config = (target / "voxel_classifier" / "config.yaml").read_text()
    assert str(tmp_path) not in config, "no local paths in shipped files"
    with (target / "patch_classifier" / "checkpoint.pt").open("ab") as handle:
        handle.write(b"\0")
    assert shipped.verify_shipped(target) == ["changed: patch_classifier/checkpoint.pt"]


def test_predict_without_model_uses_the_shipped_weights(
    tmp_path, patch_run, voxel_run, monkeypatch
):
    from spinefx.synthesis import generate_dataset

    target, _ = _package(tmp_path, patch_run, voxel_run)
    monkeypatch.setenv(shipped.ENV_VAR, str(target))
    data = generate_dataset(tmp_path / "d", n_scans=1, seed=3, preset="small")
    scan = next((data / "rawdata").rglob("*_ct.nii.gz"))
    ctd = next((data / "derivatives").rglob("*_ctd.json"))
    out = tmp_path / "pred.json"
    assert main(["predict", str(scan), "--centroids", str(ctd), "--out", str(out)]) == 0
    model = json.loads(out.read_text())["model"]
    assert model["shipped_default"] is True
    assert model["weights_sha256"] == shipped.sha256(target / "patch_classifier/checkpoint.pt")
    # the older form (run first) still answers with the named run
    run = tmp_path / "p"
    assert main(["predict", str(run), str(scan), "--centroids", str(ctd), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["model"]["shipped_default"] is False


def test_no_shipped_weights_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(shipped.ENV_VAR, str(tmp_path / "none"))
    with pytest.raises(InputError, match="no default patch-classifier weights"):
        shipped.shipped_run_dir("patch")
    assert shipped.shipped_or_none("voxel") is None
    assert main(["detect", str(tmp_path / "scan.nii.gz"), "--out", str(tmp_path / "o")]) == 1
    assert "make weights" in capsys.readouterr().err


def test_training_data_origin_tells_generated_from_real(tmp_path, real_data):
    from spinefx.datasets.provenance import describe_origin, training_data_origin
    from spinefx.synthesis import generate_dataset

    data = generate_dataset(tmp_path / "d", n_scans=2, seed=1, preset="small")
    origin = training_data_origin(data)
    assert origin == {
        "synthetic_only": True,
        "scans": 2,
        "sources": {"procedural synthetic scans": 2},
    }
    assert "Trained only on simulated data" in describe_origin(origin)
    real = training_data_origin(real_data / "verse")
    assert real["synthetic_only"] is False and real["sources"] == {"real": 3}
    assert describe_origin(real) == ""
    assert training_data_origin(tmp_path / "missing")["synthetic_only"] is None


def test_a_synthetic_only_model_says_so_in_the_report_text(tmp_path, patch_run):
    import nibabel as nib

    from spinefx.reporting import write_scan_report
    from spinefx.runs import RunPaths
    from spinefx.runs.trained import clear_cache
    from spinefx.synthesis import generate_dataset

    run = patch_run(tmp_path / "p")
    origin = {"synthetic_only": True, "scans": 3, "sources": {"procedural synthetic scans": 3}}
    RunPaths(run).provenance.write_text(json.dumps({"training_data": origin}))
    clear_cache()
    data = generate_dataset(tmp_path / "d", n_scans=1, seed=3, preset="small")
    scan = next((data / "rawdata").rglob("*_ct.nii.gz"))
    ctd = next((data / "derivatives").rglob("*_ctd.json"))
    assert np.isfinite(nib.load(scan).get_fdata()).all()
    html, text = write_scan_report(
        scan, model_run_dir=run, out_path=tmp_path / "r.html", centroids_path=ctd
    )
    assert "Trained only on simulated data" in text.read_text()
    assert "Trained only on simulated data" in html.read_text()


def test_demo_without_training_uses_the_shipped_models(tmp_path, patch_run, voxel_run, monkeypatch):
    from spinefx.demo import run_demo

    target, _ = _package(tmp_path, patch_run, voxel_run)
    monkeypatch.setenv(shipped.ENV_VAR, str(target))
    result = run_demo(tmp_path / "demo", n_scans=2, train=False)
    assert set(result.seconds) == {"synthesise", "detect (shipped model)", "report (shipped model)"}
    patient = json.loads((tmp_path / "demo" / "detect" / "patient.json").read_text())
    assert patient["model"]["shipped_default"] is True
    assert result.paths["report"].is_file()
    assert "runs" not in {p.name for p in (tmp_path / "demo").iterdir()}

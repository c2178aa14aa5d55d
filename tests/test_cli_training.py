"""End to end through the CLI: train (both models), evaluate, cross-validate, apply, detect, calibrate."""

from __future__ import annotations

import json

import pytest
from tiny_training import tiny_patch_config, tiny_voxel_config

from spinefx.cli import main
from spinefx.config import save_config
from spinefx.runs import RUN_RECORD_KEYS, RunPaths, load_trained

pytestmark = pytest.mark.slow


def _tiny_patch_config(path):
    save_config(tiny_patch_config(), path)
    return path


def _tiny_voxel_config(path):
    save_config(tiny_voxel_config(epochs=1), path)
    return path


def test_train_and_evaluate_the_patch_classifier_from_the_cli(tmp_path, capsys):
    from spinefx.datasets.patch_toy import write_toy_prepared

    data = write_toy_prepared(tmp_path / "toy", n_cases=10, seed=2)
    config = _tiny_patch_config(tmp_path / "patch.yaml")
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--model",
                "patch",
                "--config",
                str(config),
                "--data",
                str(data),
                "--out",
                str(run),
            ]
        )
        == 0
    )
    metrics = json.loads(RunPaths(run).metrics.read_text())
    assert set(RUN_RECORD_KEYS) <= set(metrics) and metrics["kind"] == "patch"
    assert "best validation metrics" in capsys.readouterr().out
    assert main(["evaluate", str(run), "--split", "test"]) == 0
    result = json.loads((run / "evaluation_test.json").read_text())
    auc = result["summary"]["auc"]["mean"]
    assert 0.0 <= auc <= 1.0
    # the validation-split operating point is what predict / report then read
    from spinefx.evaluation.calibration import validation_operating_point

    point = validation_operating_point(run, data)
    assert load_trained(run).threshold == pytest.approx(point["vertebra_threshold"])


def test_train_crossvalidate_apply_and_detect_the_voxel_classifier_from_the_cli(
    tmp_path, synthetic_dataset
):
    config = _tiny_voxel_config(tmp_path / "voxel.yaml")
    run = tmp_path / "vrun"
    assert (
        main(
            [
                "train",
                "--model",
                "voxel",
                "--config",
                str(config),
                "--data",
                str(synthetic_dataset),
                "--out",
                str(run),
            ]
        )
        == 0
    )
    assert load_trained(run).kind == "voxel"
    assert load_trained(run).threshold is None  # no operating point yet
    cv = tmp_path / "cv"
    assert (
        main(
            [
                "crossval",
                "--model",
                "voxel",
                "--config",
                str(config),
                "--data",
                str(synthetic_dataset),
                "--folds",
                "2",
                "--out",
                str(cv),
                "--apply-to",
                str(run),
            ]
        )
        == 0
    )
    summary = json.loads((cv / "crossval.json").read_text())
    assert "patient_auc" in summary
    op = json.loads(RunPaths(run).operating_point.read_text())
    assert op["source"].endswith("operating_point.json")
    scan = next((synthetic_dataset / "rawdata").rglob("*_ct.nii.gz"))
    ctd = next((synthetic_dataset / "derivatives").rglob(f"{scan.name[:-10]}*_ctd.json"))
    out = tmp_path / "detect"
    assert (
        main(["detect", str(scan), "--model", str(run), "--centroids", str(ctd), "--out", str(out)])
        == 0
    )
    patient = json.loads((out / "patient.json").read_text())
    assert patient["vertebrae_flagged"] is True and patient["flag_note"] == ""
    assert patient["operating_point"]["probability_threshold"] == op["probability_threshold"]
    assert patient["model"]["shipped_default"] is False
    assert patient["model"]["training_note"].startswith("Trained only on simulated data")
    table = (out / "vertebrae.csv").read_text().splitlines()
    flagged = [line.split(",")[4] for line in table[1:]]
    assert all(f in ("True", "False", "") for f in flagged)
    assert any(f in ("True", "False") for f in flagged), "an operating point fills the column"

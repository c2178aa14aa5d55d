"""Evaluate and predict with a tiny trained run: files, Table 1, whole-scan prediction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spinefx.cli import main
from spinefx.config import from_dict
from spinefx.datasets.patch_toy import write_toy_prepared
from spinefx.evaluation.patch_evaluation import evaluate_run
from spinefx.evaluation.patch_table import cross_dataset_table, table_markdown
from spinefx.image import Image
from spinefx.inference.patch_classifier import predict_vertebrae
from spinefx.runs.configs import PatchTrainingConfig
from spinefx.runs.trained import clear_cache
from spinefx.training.patch_training import train_patch_classifier

TINY = {
    "model": {
        "widths": [4, 8, 8, 16],
        "patch_size_vox": 16,
        "spacing_mm": 6.0,
        "head_conv_widths": [8, 4],
        "head_mlp_widths": [16, 8],
    },
    "batch_size": 8,
    "max_epochs": 1,
    "cache_patches": True,
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data = write_toy_prepared(root / "data", n_cases=10, seed=4)
    config = from_dict(PatchTrainingConfig, TINY)
    out = train_patch_classifier(config, data, root / "run", seed=0, trials=2)
    assert out["seeds"] == [0, 1]  # each trial its own seed, one shared patient split
    assert set(out["best_val_metrics"]["auc"]) == {"mean", "std"}
    clear_cache()
    return data, root / "run"


def test_evaluate_writes_json_predictions_and_plots(trained):
    data, run = trained
    result = evaluate_run(run, split="test")
    for name in ("evaluation_test.json", "predictions_test.csv", "roc_test.png", "pr_test.png"):
        assert (run / name).is_file(), name
    saved = json.loads((run / "evaluation_test.json").read_text())
    assert saved["n_vertebrae"] == result["n_vertebrae"] > 0
    assert len(saved["per_trial"]) == 2 and saved["summary"]["auc"]["n"] == 2
    assert [t["trial_dir"][-7:] for t in saved["per_trial"]] == ["trial-0", "trial-1"]
    assert set(saved["by_grade"]) == {"1", "2", "3"}
    assert saved["threshold"] == 0.5
    splits = json.loads((run / "splits.json").read_text())
    assert result["n_cases"] == len(splits["test"]["cases"])


def test_table_one_rows_for_every_training_testing_pair(trained, tmp_path):
    data, run = trained
    other = write_toy_prepared(tmp_path / "other", n_cases=10, seed=9)
    rows = cross_dataset_table({"toy": run}, {"toy": data, "other": other})
    assert [(r["training"], r["testing"]) for r in rows] == [("toy", "toy"), ("toy", "other")]
    text = table_markdown(rows)
    assert text.count("\n") == 4 and "AUC (%)" in text


def test_predict_vertebrae_on_a_scan_with_centroids(trained):
    _, run = trained
    rng = np.random.default_rng(0)
    scan = Image(rng.normal(0, 50, (60, 60, 120)).astype(np.float32), np.diag([1.5, 1.5, 1.5, 1]))
    centroids = {
        label: np.array([45.0, 45.0, 30.0 + 25 * k]) for k, label in enumerate((22, 21, 20, 19))
    }
    preds = predict_vertebrae(run, scan, centroids)
    assert [p.level for p in preds] == ["T12", "L1", "L2", "L3"]  # cranial to caudal
    assert all(0.0 <= p.probability <= 1.0 for p in preds)
    assert all(p.flagged == (p.probability >= 0.5) for p in preds if p.assessable)


def test_predict_cli_requires_centroids(trained, tmp_path, capsys):
    _, run = trained
    assert main(["predict", str(run), str(tmp_path / "scan.nii.gz")]) == 1
    assert "centroids" in capsys.readouterr().err


@pytest.mark.real
def test_predict_runs_on_real_ct(trained, real_data, tmp_path):
    from spinefx.io import load_centroids, load_scan

    _, run = trained
    session = real_data / "ctfu" / "rawdata" / "sub-ctfu00001" / "ses-20080508"
    ctd = next(
        (real_data / "ctfu" / "derivatives" / "sub-ctfu00001" / "ses-20080508").glob("*_ctd.json")
    )
    scan = load_scan(next(session.glob("*_ct.nii.gz")))
    centroids = load_centroids(ctd, scan, outside="keep")
    out = tmp_path / "pred.json"
    assert (
        main(
            [
                "--no-progress",
                "predict",
                str(run),
                str(next(session.glob("*_ct.nii.gz"))),
                "--centroids",
                str(ctd),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = json.loads(out.read_text())["vertebrae"]
    assert {r["vertebra_label"] for r in rows} == {k for k in centroids if k > 7}

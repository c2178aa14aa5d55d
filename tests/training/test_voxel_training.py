"""Voxel classifier training, run directory, detection API/CLI and cross-validation on phantoms."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_training import phantom, tiny_voxel_config

from spinefx.datasets.voxel_cases import make_voxel_case
from spinefx.runs import RUN_RECORD_KEYS, load_trained
from spinefx.training.voxel import (
    train_voxel_classifier,
    weight_penalty,
)


@pytest.fixture(scope="module")
def cases():
    return [
        make_voxel_case(f"p{i}", *phantom(i, (22,) if i % 2 else ()), spacing_mm=2.0)
        for i in range(6)
    ]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, cases):
    run = tmp_path_factory.mktemp("voxel_run")
    train_voxel_classifier(tiny_voxel_config(), run, train_cases=cases[:4], val_cases=cases[4:])
    return run


def test_run_directory_is_complete_and_loads_weights_only(run_dir):
    for name in ("config.yaml", "checkpoint.pt", "history.csv", "metrics.json", "splits.json"):
        assert (run_dir / name).is_file(), name
    payload = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert payload["model"]["kind"] == "voxel_classifier"
    model = load_trained(run_dir, expect="voxel").model
    assert model.config.input_spacing_mm == 2.0
    history = (run_dir / "history.csv").read_text().splitlines()
    assert len(history) == 3 and history[0].startswith("epoch,train_loss,lr,val_loss")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["parameters"] == pytest.approx(20_000, rel=0.1)
    assert set(RUN_RECORD_KEYS) <= set(metrics) and metrics["kind"] == "voxel"


def test_training_is_seeded(tmp_path, cases):
    a = train_voxel_classifier(
        tiny_voxel_config(epochs=1, segments_per_subepoch=10),
        tmp_path / "a",
        train_cases=cases[:2],
        val_cases=cases[4:5],
    )
    b = train_voxel_classifier(
        tiny_voxel_config(epochs=1, segments_per_subepoch=10),
        tmp_path / "b",
        train_cases=cases[:2],
        val_cases=cases[4:5],
    )
    assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)


def test_weight_penalty_is_l1_plus_l2_of_conv_weights():
    from spinefx.models.voxel_classifier import VoxelClassifierConfig, build_voxel_classifier

    model = build_voxel_classifier(VoxelClassifierConfig(target_params=5000, fc_widths=(4,)))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.5)
    n = sum(
        p.numel() for name, p in model.named_parameters() if name.endswith("weight") and p.ndim == 5
    )
    expected = 1e-2 * 0.5 * n + 1e-1 * 0.25 * n
    assert weight_penalty(model, l1=1e-2, l2=1e-1).item() == pytest.approx(expected, rel=1e-5)


def _run_copy(run_dir, dest, operating_point: dict):
    """A copy of the trained run with its own ``operating_point.json``."""
    dest.mkdir()
    for f in run_dir.iterdir():
        (dest / f.name).write_bytes(f.read_bytes())
    (dest / "operating_point.json").write_text(json.dumps(operating_point))
    return dest


def test_detect_api_and_cli_write_all_outputs(run_dir, tmp_path):
    import pandas as pd

    from spinefx.cli import main
    from spinefx.inference.screening import detect_fractures
    from spinefx.io import save_centroids, save_image

    scan, recs = phantom(11, (22,))
    centroids = {r.vertebra_label: np.asarray(r.centroid_mm) for r in recs}
    result = detect_fractures(run_dir, scan, centroids, show_progress=False)
    assert [v.level for v in result.vertebrae] == ["L2", "L3", "L4", "L5"]
    assert all(0.0 <= v.probability <= 1.0 for v in result.vertebrae)
    assert result.probability_maps["fractured"].shape == scan.shape
    np.testing.assert_allclose(result.probability_maps["fractured"].affine, scan.affine)
    path = save_image(scan, tmp_path / "scan.nii.gz")
    ctd = tmp_path / "ctd.json"
    save_centroids(centroids, ctd, scan)
    out = tmp_path / "out"
    argv = ["--no-progress", "detect", str(path), "--model", str(run_dir), "--out", str(out)]
    assert main([*argv, "--centroids", str(ctd)]) == 0
    for name in ("vertebrae.csv", "patient.json", "prob_fractured.nii.gz", "midsagittal.png"):
        assert (out / name).is_file(), name

    patient = json.loads((out / "patient.json").read_text())
    keys = {"patient_score_mm3", "patient_fractured", "operating_point", "n_vertebrae"}
    assert keys <= set(patient), patient
    assert patient["n_vertebrae"] == 4
    score, op = patient["patient_score_mm3"], patient["operating_point"]
    assert isinstance(score, float) and score >= 0.0
    assert score == pytest.approx(result.patient_score)  # the CLI wrote what the API computed
    assert patient["patient_fractured"] in (True, False, None)
    assert patient["patient_fractured"] == result.patient_fractured
    assert patient["patient_state"] == result.patient_state
    # the score is the largest component's volume on the network's 2 mm grid (8 mm^3 a voxel)
    largest_vox = score / 2.0**3
    assert (
        largest_vox == pytest.approx(round(largest_vox), abs=1e-6) and largest_vox < scan.data.size
    )
    assert patient["component_positive"] == (largest_vox >= max(op["noise_threshold_vox"], 1))
    if patient["component_positive"]:  # the regions are the components that reach t_n
        assert patient["fracture_regions"][0]["volume_mm3"] == pytest.approx(score)
    else:
        assert patient["fracture_regions"] == []

    table = pd.read_csv(out / "vertebrae.csv")
    assert {"scan", "model_run", "weights_sha256", "spinefx_version"} <= set(table.columns)
    assert table["weights_sha256"].nunique() == 1 and len(table["weights_sha256"][0]) >= 12
    assert table["vertebra_label"].tolist() == [21, 22, 23, 24]
    assert table["level"].tolist() == ["L2", "L3", "L4", "L5"]
    np.testing.assert_allclose(
        table[["x_mm", "y_mm", "z_mm"]].to_numpy(),
        [centroids[k] for k in (21, 22, 23, 24)],
        atol=1e-3,
    )
    assert (table["centroid_source"] == "given").all()
    assert table["probability"].between(0.0, 1.0).all()
    np.testing.assert_allclose(
        table["probability"], [v.probability for v in result.vertebrae], atol=1e-4
    )
    assert table["assessable"].all()


def test_patient_decision_follows_the_noise_threshold_of_the_run(run_dir, tmp_path):
    from spinefx.inference.screening import detect_fractures

    scan, recs = phantom(11, (22,))
    centroids = {r.vertebra_label: np.asarray(r.centroid_mm) for r in recs}
    op = {"probability_threshold": 0.2, "vertebra_threshold": 0.5}
    at_one = detect_fractures(
        _run_copy(run_dir, tmp_path / "a", {**op, "noise_threshold_vox": 1}),
        scan,
        centroids,
        show_progress=False,
    )
    largest_vox = round(at_one.patient_score / 2.0**3)
    assert largest_vox >= 1, "the tiny run should give some voxel above p = 0.2"
    assert at_one.component_positive
    for noise, fractured in ((largest_vox, True), (largest_vox + 1, False)):
        result = detect_fractures(
            _run_copy(run_dir, tmp_path / f"n{noise}", {**op, "noise_threshold_vox": noise}),
            scan,
            centroids,
            show_progress=False,
        )
        assert result.patient_score == pytest.approx(at_one.patient_score)
        assert result.component_positive is fractured, (noise, largest_vox)


def test_detect_reports_a_screwed_vertebra_as_not_assessable(run_dir, tmp_path):
    import pandas as pd

    from spinefx.inference.screening import detect_fractures, write_detection

    scan, recs = phantom(12)
    centroids = {r.vertebra_label: np.asarray(r.centroid_mm) for r in recs}
    ijk = np.round(scan.world_to_voxel(centroids[22] + np.array([8.0, 0.0, 0.0]))).astype(int)
    data = scan.data.copy()
    data[ijk[0], ijk[1] - 1 : ijk[1] + 2, ijk[2] - 2 : ijk[2] + 3] = 3000.0  # a screw in L3
    screwed = scan.with_data(data)
    # without an operating point nothing is flagged; the scores tell where to put a threshold
    plain = detect_fractures(run_dir, screwed, centroids, show_progress=False)
    assert all(v.flagged is None for v in plain.vertebrae)
    scores = {v.level: v.probability for v in plain.vertebrae if v.assessable}
    assert set(scores) == {"L2", "L4", "L5"}
    low, high = sorted(scores.values())[:2]
    assert low < high, scores
    cut = (low + high) / 2  # above the lowest score, below the other two
    op = {"probability_threshold": 0.5, "noise_threshold_vox": 1, "vertebra_threshold": cut}
    result = detect_fractures(
        _run_copy(run_dir, tmp_path / "run", op), screwed, centroids, show_progress=False
    )
    by_level = {v.level: v for v in result.vertebrae}
    assert not by_level["L3"].assessable and by_level["L3"].flagged is None
    assert "metal" in by_level["L3"].note
    assert {k: by_level[k].probability for k in scores} == pytest.approx(scores)
    assert {k: by_level[k].flagged for k in scores} == {k: p >= cut for k, p in scores.items()}
    assert sum(by_level[k].flagged for k in scores) == 2
    table = pd.read_csv(write_detection(result, tmp_path / "out")["vertebrae"]).set_index("level")
    assert table.loc["L3", "assessable"] == False  # noqa: E712
    assert {k: bool(table.loc[k, "flagged"]) for k in scores} == {
        k: p >= cut for k, p in scores.items()
    }


def test_crossvalidation_on_phantoms(tmp_path, cases):
    from spinefx.evaluation.crossval import crossvalidate_voxel

    config = tiny_voxel_config(epochs=1)
    partial = crossvalidate_voxel(
        cases, config, tmp_path, n_folds=2, n_bootstrap=50, tile_vox=30, folds=[0]
    )
    assert partial == {"n_folds": 2, "completed_folds": [0]}
    assert not (tmp_path / "crossval.json").exists()
    fold0 = (tmp_path / "fold0" / "checkpoint.pt").stat().st_mtime_ns
    summary = crossvalidate_voxel(cases, config, tmp_path, n_folds=2, n_bootstrap=50, tile_vox=30)
    assert (tmp_path / "fold0" / "checkpoint.pt").stat().st_mtime_ns == fold0  # resumed
    for key in ("operating_point_cross_fitted", "vertebra_operating_point_cross_fitted"):
        assert set(summary[key]) == {"sensitivity", "specificity"}
    op = json.loads((tmp_path / "operating_point.json").read_text())
    assert set(op) == {"probability_threshold", "noise_threshold_vox", "vertebra_threshold"}
    # results made with other settings are not reused: fold 0 reruns, fold 1 is now stale
    other = crossvalidate_voxel(
        cases, tiny_voxel_config(epochs=1, l2=2e-4), tmp_path, n_folds=2, tile_vox=30, folds=[0]
    )
    assert other == {"n_folds": 2, "completed_folds": [0]}
    assert (tmp_path / "fold0" / "checkpoint.pt").stat().st_mtime_ns != fold0
    assert summary["n_patients"] == 6 and summary["n_fractured_patients"] == 3
    assert summary["n_vertebrae"] == 24 and summary["n_fractured_vertebrae"] == 3
    assert 0.0 <= summary["patient_auc_pooled"] <= 1.0
    for name in (
        "crossval.json",
        "vertebrae.csv",
        "patients.csv",
        "roc.png",
        "operating_point.json",
        "fold0/checkpoint.pt",
        "fold1/checkpoint.pt",
    ):
        assert (tmp_path / name).is_file(), name


def test_segments_are_class_balanced_over_the_whole_sub_epoch(cases):
    """One fractured scan among four still gets a third of the segments centred on class 2.

    Balancing per scan (the earlier behaviour) gave the fractured class only the fractured
    scans' share, ~1/12 here, and the network learned never to predict it.
    """
    from spinefx.datasets.voxel_cases import sample_segments
    from spinefx.models.voxel_classifier import training_geometry

    subset = [cases[0], cases[1], cases[2], cases[4]]  # only p1 has a fracture
    assert [c.fractured for c in subset] == [False, True, False, False]
    geometry = training_geometry(tiny_voxel_config().model)
    _, _, target = sample_segments(
        subset,
        600,
        geometry,
        rng=np.random.default_rng(0),
        class_proportions=(1 / 3, 1 / 3, 1 / 3),
        augment=None,
    )
    centre = tuple(s // 2 for s in geometry.output_vox)
    share = np.bincount(target[(slice(None), *centre)].ravel(), minlength=3) / len(target)
    np.testing.assert_allclose(share, 1 / 3, atol=0.06)


def test_training_learns_the_fracture_class_on_held_out_phantoms(tmp_path):
    """The flattened body of an unseen phantom scores above every normal one (cube means)."""
    from spinefx.inference.aggregation import vertebra_scores
    from spinefx.inference.voxel_tiling import predict_network_view

    scans = [
        make_voxel_case(f"p{i}", *phantom(i, (22,) if i % 2 else ()), spacing_mm=2.0)
        for i in range(8)
    ]
    config = tiny_voxel_config(epochs=8, segments_per_subepoch=80, seed=1)
    train_voxel_classifier(config, tmp_path, train_cases=scans[:4], val_cases=scans[4:6])
    model = load_trained(tmp_path, expect="voxel").model
    scores = {}
    for case in scans[6:]:
        maps = predict_network_view(model, case.view, output_tile_vox=30, show_progress=False)
        truth = {v.vertebra_label: np.asarray(v.centroid_mm) for v in case.vertebrae}
        for label, score in vertebra_scores(maps["fractured"], truth, cube_size_vox=6).items():
            scores[(case.case_id, label)] = score
    fractured = scores.pop(("p7", 22))
    assert fractured > max(scores.values()) + 0.1, (fractured, scores)


def test_cross_fitted_vertebra_point_uses_thresholds_from_the_other_folds():
    import pandas as pd

    from spinefx.evaluation.crossval import cross_fitted_vertebra_point
    from spinefx.evaluation.metrics import choose_threshold

    # fold 0 separates at 0.5, fold 1 at 0.2: fold 1's positives at 0.3 are missed when the
    # threshold comes from fold 0, and fold 0's negatives at 0.4 are flagged by fold 1's.
    frame = pd.DataFrame(
        {
            "fold": [0, 0, 0, 0, 1, 1, 1, 1],
            "fractured": [0, 0, 1, 1, 0, 0, 1, 1],
            "score": [0.1, 0.4, 0.6, 0.9, 0.05, 0.1, 0.3, 0.35],
        }
    )
    assert choose_threshold(frame["fractured"], frame["score"]) == pytest.approx(0.3)
    rates = cross_fitted_vertebra_point(frame, "score")
    assert rates == {"sensitivity": 0.5, "specificity": 0.75}


def test_time_limit_stops_after_the_epoch_that_passes_it(tmp_path, cases):
    config = tiny_voxel_config(epochs=5, time_limit_minutes=1e-6)
    metrics = train_voxel_classifier(config, tmp_path, train_cases=cases[:4], val_cases=cases[4:])
    assert metrics["epochs_trained"] == 1 and metrics["best_epoch"] == 0
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 2


def test_compare_variants_trains_each_variant_with_the_same_budget(tmp_path, cases):
    from spinefx.evaluation.voxel_variants import compare_variants

    rows = compare_variants(
        cases[:4], cases[4:], tiny_voxel_config(epochs=1), tmp_path, variants=("1slice", "3d")
    )
    assert [r["variant"] for r in rows] == ["1slice", "3d"]
    sizes = [r["parameters"] for r in rows]
    assert abs(sizes[0] - sizes[1]) / sizes[1] < 0.1  # same budget, different kernels
    for r in rows:
        assert r["n_val_vertebrae"] == 8 and r["n_val_fractured"] == 1
        assert 0.0 <= r["vertebra_auc_val"] <= 1.0
        assert (tmp_path / r["variant"] / "checkpoint.pt").is_file()
    table = (tmp_path / "variants.md").read_text()
    assert table.count("\n") == 4 and "| 1slice |" in table
    kernels = {
        r["variant"]: load_trained(tmp_path / r["variant"]).model.config.variant for r in rows
    }
    assert kernels == {"1slice": "1slice", "3d": "3d"}

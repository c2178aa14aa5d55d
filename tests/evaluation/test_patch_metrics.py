"""Generic binary metrics on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spinefx.evaluation.metrics import (
    aggregate_trials,
    auc_statistic,
    binary_metrics,
    bootstrap,
    choose_threshold,
    mean_std,
)
from spinefx.evaluation.patch_evaluation import grade_breakdown


def test_binary_metrics_hand_computed():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.6, 0.4, 0.7, 0.3, 0.2, 0.1, 0.05])
    m = binary_metrics(y, p, threshold=0.5)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 1, 1, 4)
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(4 / 5)
    assert m["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert m["accuracy"] == pytest.approx(6 / 8)
    # AUC: of the 15 positive-negative pairs, only (0.4 vs 0.7) and (0.6 vs 0.7) are misordered
    assert m["auc"] == pytest.approx(13 / 15)


def test_undefined_metrics_are_nan_not_errors():
    m = binary_metrics(np.zeros(4), np.array([0.1, 0.2, 0.7, 0.3]))
    assert math.isnan(m["auc"]) and math.isnan(m["sensitivity"]) and math.isnan(m["ap"])
    assert m["specificity"] == pytest.approx(0.75)


def test_threshold_choice_separates_separable_scores():
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.35, 0.9])
    for method in ("youden", "f1"):
        t = choose_threshold(y, p, method=method)
        assert binary_metrics(y, p, threshold=t)["f1"] == 1.0


def test_mean_std_over_trials():
    assert mean_std([0.8, 0.9, 1.0]) == pytest.approx({"mean": 0.9, "std": 0.1, "n": 3})
    agg = aggregate_trials([{"f1": 0.5, "auc": 0.7}, {"f1": 0.7, "auc": 0.9}])
    assert agg["f1"]["mean"] == pytest.approx(0.6) and agg["auc"]["std"] == pytest.approx(
        math.sqrt(0.02)
    )


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    p = y * 0.5 + rng.random(200) * 0.8
    a = bootstrap(y, p, auc_statistic, n_resamples=100, seed=3)
    b = bootstrap(y, p, auc_statistic, n_resamples=100, seed=3)
    assert a == b
    assert a["low"] <= auc_statistic(y, p) <= a["high"]
    grouped = bootstrap(y, p, auc_statistic, n_resamples=50, seed=3, groups=np.arange(200) // 10)
    assert grouped["n"] == 50


def test_grade_breakdown_scores_each_grade_against_all_normals():
    grades = np.array([0, 0, 0, 1, 2, 3])
    y = (grades > 0).astype(int)
    p = np.array([0.1, 0.2, 0.6, 0.4, 0.7, 0.9])
    out = grade_breakdown(y, p, grades, threshold=0.5)
    assert out["1"] == {"n": 1, "sensitivity": 0.0, "auc": pytest.approx(2 / 3)}
    assert out["2"]["sensitivity"] == 1.0 and out["3"]["auc"] == 1.0

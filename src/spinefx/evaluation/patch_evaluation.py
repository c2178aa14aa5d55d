"""Vertebra-level evaluation of a patch-classifier run on a split of prepared data.

Every trial is scored on its own (F1, accuracy, AUC, AP, sensitivity, specificity at the
config threshold, 0.5 by default), then summarised as mean +- std over trials, as the paper.
Also reported, for information only: the metrics at the threshold maximising Youden's J on
the validation split of the run's training data. Breakdowns: per Genant grade (sensitivity of grade-g fractures and AUC of
grade-g fractures vs all normal vertebrae) and per level.

Writes ``RUN_DIR/evaluation_<split>[_<name>].json``, ``predictions_<split>[_<name>].csv``,
``roc_<split>[_<name>].png`` and ``pr_<split>[_<name>].png``.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spinefx.atomic import write_text_atomic
from spinefx.errors import InputError
from spinefx.evaluation.metrics import (
    METRIC_NAMES,
    aggregate_trials,
    auc_statistic,
    binary_metrics,
    choose_threshold,
)
from spinefx.evaluation.plots import plot_roc_pr
from spinefx.inference.patch_classifier import predict_unit_patches
from spinefx.progress import progress
from spinefx.runs.layout import RunPaths
from spinefx.runs.trained import TrainedRun, load_trained

log = logging.getLogger(__name__)


def split_rows(run: TrainedRun, data_dir: Path, split: str) -> tuple[pd.DataFrame, dict]:
    from spinefx.training.patch_training import split_vertebrae

    run_info = json.loads(RunPaths(run.trial_dirs[0]).provenance.read_text())
    table, record = split_vertebrae(data_dir, run.config, seed=int(run_info["split_seed"]))
    if split == "all":
        return table, record
    rows = table[table["split"] == split].reset_index(drop=True)
    if rows.empty:
        raise InputError(
            f"no usable vertebrae in split {split!r}",
            path=data_dir,
            fix="use --split train/val/test/all",
        )
    return rows, record


def predict_rows(run: TrainedRun, rows: pd.DataFrame) -> np.ndarray:
    """``(trials, N)`` probabilities of the manifest rows."""
    from spinefx.datasets.patch_dataset import load_patch

    stack = np.stack(
        [
            load_patch(p, patch_size_vox=run.patch_size_vox, spacing_mm=run.spacing_mm)
            for p in progress(rows["abs_path"], desc="loading patches", total=len(rows))
        ]
    )
    return np.stack([predict_unit_patches(m, stack) for m in run.models])


def grade_breakdown(
    y_true: np.ndarray, y_prob: np.ndarray, grades: np.ndarray, *, threshold: float
) -> dict[str, dict[str, float]]:
    """Per Genant grade g >= 1: count, sensitivity at ``threshold``, AUC of grade g vs grade 0."""
    out = {}
    negatives = grades == 0
    for g in (1, 2, 3):
        pos = grades == g
        keep = pos | negatives
        out[str(g)] = {
            "n": int(pos.sum()),
            "sensitivity": float(np.mean(y_prob[pos] >= threshold)) if pos.any() else math.nan,
            "auc": auc_statistic(y_true[keep], y_prob[keep]) if pos.any() else math.nan,
        }
    return out


def level_breakdown(
    y_true: np.ndarray, y_prob: np.ndarray, levels: np.ndarray, *, threshold: float
) -> dict[str, dict[str, float]]:
    """Per vertebra level: counts, sensitivity, specificity and AUC (NaN where undefined)."""
    out = {}
    for level in pd.unique(levels):
        sel = levels == level
        m = binary_metrics(y_true[sel], y_prob[sel], threshold=threshold)
        out[str(level)] = {
            k: m[k] for k in ("n", "n_positive", "sensitivity", "specificity", "auc")
        }
    return out


def _summaries(per_trial: list[dict[str, Any]], key: str) -> dict[str, dict[str, dict]]:
    """mean +- std over trials of a nested breakdown (grade or level)."""
    from spinefx.evaluation.metrics import mean_std

    names = per_trial[0][key].keys()
    return {
        name: {
            stat: mean_std(t[key][name][stat] for t in per_trial)
            for stat in per_trial[0][key][name]
        }
        for name in names
    }


def evaluate_run(
    run_dir: str | Path,
    *,
    split: str = "test",
    data_dir: str | Path | None = None,
    name: str = "",
    plots: bool = True,
) -> dict[str, Any]:
    """Evaluate every trial of a run on one split and write the results next to the run.

    Args:
        run_dir: made by ``spinefx train``.
        split: ``train``, ``val``, ``test`` or ``all`` (all usable vertebrae).
        data_dir: prepared folder to evaluate on; default the training data (``run.json``).
            Another dataset is split with the run's split seed (or its own split column).
        name: suffix of the output files (e.g. the test dataset's name for Table 1).
        plots: write the ROC / PR PNGs.

    Returns:
        The content of ``evaluation_<split>[_<name>].json``: ``summary`` (mean/std/n per
        metric at the config threshold), ``per_trial``, ``by_grade``, ``by_level``,
        ``at_val_youden`` (information only), counts.
    """
    run = load_trained(run_dir, expect="patch")
    run_dir = Path(run_dir)
    training_data = Path(json.loads(RunPaths(run.trial_dirs[0]).provenance.read_text())["data_dir"])
    data_dir = training_data if data_dir is None else Path(data_dir)
    rows, record = split_rows(run, data_dir, split)
    y_true = rows["fractured"].astype(int).to_numpy()
    grades = rows["genant_grade"].astype(int).to_numpy()
    levels = rows["level"].astype(str).to_numpy()
    probs = predict_rows(run, rows)
    same_val = split == "val" and data_dir.resolve() == training_data.resolve()
    val_thresholds = [None] * len(probs) if same_val else _val_thresholds(run, training_data)

    per_trial, youden = [], []
    for t, p in enumerate(probs):
        m = binary_metrics(y_true, p, threshold=run.threshold)
        m["by_grade"] = grade_breakdown(y_true, p, grades, threshold=run.threshold)
        m["by_level"] = level_breakdown(y_true, p, levels, threshold=run.threshold)
        m["trial_dir"] = str(run.trial_dirs[t])
        per_trial.append(m)
        if val_thresholds[t] is not None:
            youden.append(binary_metrics(y_true, p, threshold=val_thresholds[t]))
    suffix = f"{split}_{name}" if name else split
    result = {
        "split": split,
        "data_dir": str(data_dir.resolve()),
        "threshold": run.threshold,
        "n_vertebrae": int(len(y_true)),
        "n_fractured": int(y_true.sum()),
        "n_cases": int(rows["case_id"].nunique()),
        "excluded": record["excluded"],
        "summary": aggregate_trials(per_trial),
        "by_grade": _summaries(per_trial, "by_grade"),
        "by_level": _summaries(per_trial, "by_level"),
        "at_val_youden": {
            "thresholds": [t for t in val_thresholds if t is not None],
            "summary": aggregate_trials(youden) if youden else {},
        },
        "per_trial": per_trial,
    }
    pred = rows[["case_id", "vertebra_label", "level", "genant_grade", "fractured"]].copy()
    for t, p in enumerate(probs):
        pred[f"probability_trial{t}"] = np.round(p, 6)
    pred["probability_mean"] = np.round(probs.mean(0), 6)
    write_text_atomic(run_dir / f"predictions_{suffix}.csv", pred.to_csv(index=False))
    write_text_atomic(run_dir / f"evaluation_{suffix}.json", json.dumps(_clean(result), indent=2))
    if plots:
        plot_roc_pr(
            [(y_true, p) for p in probs],
            roc_path=run_dir / f"roc_{suffix}.png",
            pr_path=run_dir / f"pr_{suffix}.png",
            title=f"{split} ({len(y_true)} vertebrae, {int(y_true.sum())} fractured)",
        )
    return result


def _val_thresholds(run: TrainedRun, data_dir: Path) -> list[float | None]:
    """Youden-optimal threshold of each trial on the training data's validation split."""
    try:
        rows, _ = split_rows(run, data_dir, "val")
    except InputError:
        return [None] * len(run.models)
    y = rows["fractured"].astype(int).to_numpy()
    return [choose_threshold(y, p, method="youden") for p in predict_rows(run, rows)]


def _clean(value: Any) -> Any:
    """JSON-safe: NaN -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def format_summary(result: dict[str, Any]) -> str:
    """A short human-readable table of an evaluation result (percent, mean +- std)."""
    lines = [
        f"split {result['split']}: {result['n_vertebrae']} vertebrae "
        f"({result['n_fractured']} fractured) in {result['n_cases']} scans, "
        f"threshold {result['threshold']}"
    ]
    for metric in METRIC_NAMES:
        s = result["summary"][metric]
        lines.append(f"  {metric:<12} {100 * s['mean']:6.1f} +- {100 * s['std']:4.1f} %")
    for grade, stats in result["by_grade"].items():
        sens, auc = stats["sensitivity"], stats["auc"]
        lines.append(
            f"  grade {grade}: n={stats['n']['mean']:.0f}  sensitivity "
            f"{100 * sens['mean']:5.1f} %  AUC vs normal {100 * auc['mean']:5.1f} %"
        )
    return "\n".join(lines)

"""The paper's Table 1: training data x test data -> F1, Acc, AUC, AP (mean +- std, %)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spinefx.atomic import write_text_atomic
from spinefx.evaluation.patch_evaluation import evaluate_run

TABLE_METRICS = (("F1", "f1"), ("Acc.", "accuracy"), ("AUC", "auc"), ("AP", "ap"))


def cross_dataset_table(
    runs: Mapping[str, str | Path],
    test_sets: Mapping[str, str | Path],
    *,
    split: str = "test",
) -> list[dict[str, Any]]:
    """Evaluate every run (named by its training data) on every test set's ``split``.

    Args:
        runs: training-data name -> run directory.
        test_sets: test-data name -> prepared folder.

    Returns:
        One row per (training, testing) pair with ``mean``/``std`` per metric (fractions).
    """
    rows = []
    for train_name, run_dir in runs.items():
        for test_name, data_dir in test_sets.items():
            result = evaluate_run(
                run_dir, split=split, data_dir=data_dir, name=_slug(test_name), plots=True
            )
            row = {"training": train_name, "testing": test_name}
            for label, key in TABLE_METRICS:
                row[label] = result["summary"][key]
            row["n_vertebrae"] = result["n_vertebrae"]
            row["n_fractured"] = result["n_fractured"]
            rows.append(row)
    return rows


def table_markdown(rows: list[dict[str, Any]]) -> str:
    """Rows of :func:`cross_dataset_table` as a Markdown table in percent (mean +- std)."""
    head = "| Training | Testing | " + " | ".join(f"{m} (%)" for m, _ in TABLE_METRICS) + " |"
    lines = [head, "|" + "---|" * (2 + len(TABLE_METRICS))]
    for row in rows:
        cells = [
            f"{100 * row[m]['mean']:.1f} ± {100 * row[m]['std']:.1f}" for m, _ in TABLE_METRICS
        ]
        lines.append(f"| {row['training']} | {row['testing']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Write the Markdown table atomically."""
    write_text_atomic(path, table_markdown(rows))


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")

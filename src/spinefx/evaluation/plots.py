"""ROC and precision-recall plots (matplotlib, Agg backend, PNG), one curve per trial."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from spinefx.atomic import atomic_path


def plot_roc_pr(
    curves: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    roc_path: str | Path,
    pr_path: str | Path,
    title: str,
    labels: Sequence[str] | None = None,
) -> None:
    """Plot the ROC and PR curves of one or more ``(y_true, y_score)`` sets to two PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    labels = labels or [f"trial {i}" for i in range(len(curves))]
    for kind, path in (("roc", roc_path), ("pr", pr_path)):
        fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
        for (y_true, y_score), name in zip(curves, labels, strict=True):
            if len(np.unique(y_true)) < 2:
                continue
            if kind == "roc":
                fpr, tpr, _ = roc_curve(y_true, y_score)
                ax.plot(fpr, tpr, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
            else:
                precision, recall, _ = precision_recall_curve(y_true, y_score)
                ax.plot(recall, precision, label=f"{name} (AP {_ap(y_true, y_score):.3f})")
        if kind == "roc":
            ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
            ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"ROC: {title}")
        else:
            ax.set(xlabel="recall (sensitivity)", ylabel="precision", title=f"PR: {title}")
        ax.set(xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(loc="lower right" if kind == "roc" else "lower left", fontsize=7)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)


def _ap(y_true: np.ndarray, y_score: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y_true, y_score))

"""ROC figures of the voxel classifier's cross-validation (matplotlib, Agg)."""

from __future__ import annotations

import numpy as np


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray, str]], *, title: str):
    """ROC curves: label -> (fpr, tpr, legend suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    for label, (fpr, tpr, suffix) in curves.items():
        ax.plot(fpr, tpr, lw=1.5, label=f"{label} {suffix}")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return fig

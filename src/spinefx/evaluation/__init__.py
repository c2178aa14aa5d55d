"""spinefx.evaluation: metrics, bootstrap/ROC, cross-validation, benchmarks on real CT, plots.

Prediction on new scans is :mod:`spinefx.inference`.

Names are imported lazily so ``import spinefx.evaluation`` stays light.
"""

from __future__ import annotations

from spinefx.lazy_exports import lazy_exports

_EXPORTS = {
    "binary_metrics": "spinefx.evaluation.metrics",
    "bootstrap": "spinefx.evaluation.metrics",
    "choose_threshold": "spinefx.evaluation.metrics",
    "mean_std": "spinefx.evaluation.metrics",
    "aggregate_trials": "spinefx.evaluation.metrics",
    "plot_roc_pr": "spinefx.evaluation.plots",
    "evaluate_run": "spinefx.evaluation.patch_evaluation",
    "cross_dataset_table": "spinefx.evaluation.patch_table",
    "table_markdown": "spinefx.evaluation.patch_table",
    "run_demo_training": "spinefx.evaluation.patch_demo",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

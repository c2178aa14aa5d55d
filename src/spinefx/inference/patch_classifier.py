"""Inference with a trained patch-classifier run: predict patches or whole scans.

Runs are loaded by :func:`spinefx.runs.load_trained`; a run's trials form an ensemble for
prediction (its ensemble rule: mean probability over trials); evaluation scores each trial
separately (mean +- std, as the paper).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spinefx.image import Image
from spinefx.records import VertebraResult
from spinefx.runs.trained import TrainedRun, load_trained

log = logging.getLogger(__name__)


#: a vertebra whose patch lies more than this much outside the scan is not assessable: the
#: network would answer "no fracture" about bone it never saw
MAX_OUT_OF_VIEW_FRACTION = 0.5


def predict_unit_patches(model: Any, patches: np.ndarray, *, batch_size: int = 16) -> np.ndarray:
    """Fracture probabilities of patches already scaled to [0, 1].

    Args:
        model: an eval-mode patch classifier.
        patches: ``(N, 1, S, S, S)`` float32.

    Returns:
        ``(N,)`` float64 probabilities.
    """
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(patches), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(patches[start : start + batch_size]))
            out.append(torch.sigmoid(model(batch.float())).double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def predict_vertebrae(
    run: TrainedRun | str | Path,
    scan: Image,
    centroids: Mapping[int, np.ndarray],
    *,
    batch_size: int = 16,
) -> list[VertebraResult]:
    """Predict every (non-cervical) vertebra of a scan.

    Args:
        run: a loaded run or its directory.
        scan: CT in HU (any orientation / spacing).
        centroids: VerSe label -> vertebral-body centroid in world RAS+ mm.

    Returns:
        One prediction per vertebra, cranial to caudal.
    """
    from spinefx.datasets.patch_dataset import hu_patch_to_unit
    from spinefx.preprocessing import extract_vertebra_patches

    run = run if isinstance(run, TrainedRun) else load_trained(run, expect="patch")
    patches = extract_vertebra_patches(
        scan,
        centroids,
        size_vox=run.patch_size_vox,
        spacing_mm=run.spacing_mm,
        include_cervical=run.config.include_cervical,
    )
    labels = list(patches)
    if not labels:
        return []
    stack = np.stack([hu_patch_to_unit(patches[k].data)[None] for k in labels]).astype(np.float32)
    probs = run.ensemble(
        [predict_unit_patches(m, stack, batch_size=batch_size) for m in run.models]
    )
    return patch_results(scan, patches, centroids, probs, threshold=run.threshold)


def patch_results(
    scan: Image | None,
    patches: Mapping[int, Image],
    centroids: Mapping[int, np.ndarray],
    probabilities: Sequence[float],
    *,
    threshold: float | None,
) -> list[VertebraResult]:
    """:func:`patch_result` of every patch (in ``patches`` order), with the metal check on
    ``scan`` (None: no metal check, e.g. for patches without their scan)."""
    from spinefx.preprocessing.metal import has_metal

    return [
        patch_result(
            int(label),
            float(p),
            centroids[label],
            out_of_view_fraction=float(patches[label].meta.get("out_of_view_fraction", 0.0)),
            threshold=threshold,
            metal=scan is not None and has_metal(scan, centroids[label]),
        )
        for label, p in zip(patches, probabilities, strict=True)
    ]


def patch_result(
    vertebra_label: int,
    probability: float,
    centroid_mm,
    *,
    out_of_view_fraction: float,
    threshold: float | None,
    metal: bool = False,
) -> VertebraResult:
    """The patch classifier's result for one vertebra (used by prediction, report and app).

    A vertebra with metal (screws: the network never learned instrumented vertebrae, see
    :mod:`spinefx.preprocessing.metal`) or whose patch lies more than
    :data:`MAX_OUT_OF_VIEW_FRACTION` outside the scan is not assessable (``flagged`` None,
    the reason in ``note``); otherwise ``flagged`` is ``probability >= threshold`` (None
    without a threshold).
    """
    in_view = out_of_view_fraction <= MAX_OUT_OF_VIEW_FRACTION
    assessable = in_view and not metal
    flagged = None if not assessable or threshold is None else bool(probability >= threshold)
    if metal:
        note = "metal (screws): not assessable"
    elif not in_view:
        note = f"{out_of_view_fraction:.0%} of the patch outside the scan: not assessable"
    else:
        note = ""
    return VertebraResult(
        vertebra_label=int(vertebra_label),
        probability=float(probability),
        flagged=flagged,
        centroid_mm=tuple(float(v) for v in np.asarray(centroid_mm, float)[:3]),
        method="patch",
        assessable=assessable,
        note=note,
        out_of_view_fraction=float(out_of_view_fraction),
    )


def predict_scan(
    run_dir: str | Path, scan: Image, centroids: Mapping[int, np.ndarray]
) -> list[dict[str, Any]]:
    """:func:`predict_vertebrae` as plain rows (for CSV / JSON output, ``RESULT_COLUMNS``)."""
    return [p.row() for p in predict_vertebrae(run_dir, scan, centroids)]


def check_prediction_output(path: str | Path) -> Path:
    """``path`` as a prediction table file (``.csv`` or ``.json``, not a folder).

    Raises:
        InputError: a folder or another suffix, with the file name to use instead.
    """
    from spinefx.errors import InputError

    path = Path(path)
    if path.is_dir() or path.suffix.lower() not in (".csv", ".json"):
        better = path / "predictions.csv" if path.is_dir() else path.with_suffix(".csv")
        raise InputError(
            "--out must name a .csv or .json file", path=path, fix=f"e.g. --out {better}"
        )
    return path


def write_predictions(rows: Sequence[Mapping[str, Any]], path: str | Path, **meta: Any) -> None:
    """Write prediction rows as CSV (``.csv``) or JSON (``.json``, with ``meta``), atomically.

    A CSV row also names the scan, the model run, its weights' checksum and the spinefx
    version (from ``meta["scan"]`` and ``meta["model"]``); the JSON holds them once, in ``meta``.
    """
    import pandas as pd

    from spinefx.atomic import write_text_atomic
    from spinefx.runs.shipped import provenance_columns

    path = check_prediction_output(path)
    if path.suffix.lower() == ".json":
        write_text_atomic(path, json.dumps({**meta, "vertebrae": list(rows)}, indent=2))
    else:
        extra = provenance_columns(meta.get("scan", ""), meta.get("model"))
        table = pd.DataFrame([{**row, **extra} for row in rows])
        write_text_atomic(path, table.to_csv(index=False))

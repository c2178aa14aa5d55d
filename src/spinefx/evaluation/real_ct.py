"""Scoring on real CT: every officially graded real vertebra, per model, with intervals.

One row per (scanned vertebra, method): the real scan and subject, level, official Genant
grade, the method's score (network probability, or morphometric height loss) and decision at
its operating point. :func:`summarise` turns rows into AUC with a subject-clustered bootstrap
interval, sensitivity/specificity at the operating point, and the same by grade.

Body centroids come from the vertebra mask (the real VerSe samples ship no centroid JSON): the
centroid of the body as spinefx's morphometry estimates it (the part of the vertebra in front
of the canal), the point that VerSe centroid files hold.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from spinefx.errors import SpinefxError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoredVertebra:
    """One real vertebra scored by one method.

    Attributes:
        method: ``patch``, ``voxel`` or ``morphometry``.
        subject_id / scan_id / collection: where the vertebra comes from.
        level / vertebra_label: its level.
        genant_grade / shape: the official grade and shape.
        score: probability (networks) or height loss (morphometry); NaN when not scored.
        flagged: score at or above the method's operating point.
        fold: the subjects held out together for this score ("" when no real data trained it).
        note: why a vertebra was not assessable, or "".
    """

    method: str
    subject_id: str
    scan_id: str
    collection: str
    level: str
    vertebra_label: int
    genant_grade: int
    shape: str
    score: float
    flagged: bool
    fold: str = ""
    note: str = ""

    def row(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=32)
def _mask_body_centroids(mask_path: Path) -> dict[int, np.ndarray]:
    """:func:`body_centroids` of a real mask file, measured once (both networks and every fold
    score the same masks)."""
    from spinefx.morphometry.centroids import body_centroids
    from spinefx.synthesis.real_sources import RealScan, load_real_mask

    return body_centroids(load_real_mask(RealScan("", None, Path(mask_path))))


def _base(subject, scan, label: int) -> dict:
    from spinefx.conventions import level_name

    grade, shape = scan.grades[label]
    return {
        "subject_id": subject.subject_id,
        "scan_id": scan.scan_id,
        "collection": subject.collection,
        "level": level_name(label),
        "vertebra_label": int(label),
        "genant_grade": int(grade),
        "shape": shape or "",
    }


def score_morphometry(subjects: Iterable) -> list[ScoredVertebra]:
    """Morphometric height loss of every graded vertebra of every real mask (CT or not)."""
    from spinefx.morphometry import measure_vertebrae
    from spinefx.synthesis.real_sources import load_real_mask

    rows = []
    for subject in subjects:
        for scan in subject.scans:
            if not scan.grades:
                continue
            measured = {m.vertebra_label: m for m in measure_vertebrae(load_real_mask(scan))}
            for label in sorted(scan.grades):
                m = measured.get(label)
                ok = m is not None and m.genant_grade is not None
                rows.append(
                    ScoredVertebra(
                        method="morphometry",
                        score=float(m.height_loss) if ok else math.nan,
                        flagged=bool(ok and m.genant_grade >= 1),
                        note="" if ok else (m.note if m is not None else "not measured"),
                        **_base(subject, scan, label),
                    )
                )
    return rows


def _network_scores(
    method: str, run_dir: Path, ct, centroids
) -> dict[int, tuple[float, bool, str]]:
    """label -> (probability, flagged, note); a note marks a vertebra not assessable."""
    if method == "patch":
        from spinefx.inference.patch_classifier import predict_vertebrae

        results = predict_vertebrae(run_dir, ct, centroids)
    else:
        from spinefx.inference.screening import detect_fractures

        results = detect_fractures(run_dir, ct, centroids, show_progress=False).vertebrae
    out = {}
    for v in results:
        # the benchmark scores every run at its threshold, 0.5 when it has no operating point
        flagged = v.flagged if v.flagged is not None else bool(v.probability >= 0.5)
        out[v.vertebra_label] = (v.probability, flagged, "" if v.assessable else v.note)
    return out


def score_network(
    method: str, run_dir: str | Path, subjects: Iterable, *, fold: str = ""
) -> list[ScoredVertebra]:
    """Score every graded vertebra of the real CTs of ``subjects`` with one trained run.

    Args:
        method: ``patch`` (a patch-classifier run) or ``voxel`` (a voxel-classifier run).
        run_dir: the run directory.
        subjects: real subjects (:func:`spinefx.synthesis.real_sources.find_real_subjects`).
        fold: label stored with each row (which subjects the run was kept from).
    """
    from spinefx.synthesis.real_sources import load_real_pair

    rows = []
    for subject in subjects:
        for scan in subject.ct_scans:
            if not scan.grades:
                continue
            try:
                ct, _ = load_real_pair(scan)
                centroids = _mask_body_centroids(scan.mask_path)
                scores = _network_scores(method, Path(run_dir), ct, centroids)
            except SpinefxError as exc:  # a bad scan is reported in its rows, the rest go on
                log.warning("%s: not scored: %s", scan.scan_id, exc)
                scores = {label: (math.nan, False, f"not scored: {exc}") for label in scan.grades}
            for label in sorted(scan.grades):
                score, flagged, note = scores.get(label, (math.nan, False, "not scored"))
                if note:
                    score, flagged = math.nan, False
                rows.append(
                    ScoredVertebra(
                        method=method,
                        score=float(score),
                        flagged=flagged,
                        fold=fold,
                        note=note,
                        **_base(subject, scan, label),
                    )
                )
    return rows


def summarise(rows: Sequence[ScoredVertebra], *, n_resamples: int = 2000, seed: int = 0) -> dict:
    """AUC (+ subject-clustered bootstrap 95 % interval), sensitivity/specificity, by grade.

    Vertebrae without a score (not assessable) are counted, not scored.
    """
    from spinefx.evaluation.metrics import auc_statistic, bootstrap

    scored = [r for r in rows if np.isfinite(r.score)]
    y = np.array([r.genant_grade >= 1 for r in scored], int)
    s = np.array([r.score for r in scored], float)
    flag = np.array([r.flagged for r in scored], bool)
    groups = np.array([r.subject_id for r in scored])
    out = {
        "n_vertebrae": len(rows),
        "n_scored": len(scored),
        "n_fractured": int(y.sum()),
        "n_subjects": len(set(groups.tolist())),
        "not_assessable": len(rows) - len(scored),
        "auc": auc_statistic(y, s) if len(scored) else math.nan,
        "auc_bootstrap": bootstrap(
            y, s, auc_statistic, n_resamples=n_resamples, seed=seed, groups=groups
        )
        if len(scored)
        else {},
        "sensitivity": float(flag[y == 1].mean()) if (y == 1).any() else math.nan,
        "specificity": float((~flag[y == 0]).mean()) if (y == 0).any() else math.nan,
        "by_grade": {},
    }
    for grade in (1, 2, 3):
        pick = np.array([r.genant_grade in (0, grade) for r in scored], bool)
        n_pos = int(((y == 1) & pick).sum())
        if n_pos == 0:
            continue
        out["by_grade"][str(grade)] = {
            "n": n_pos,
            "auc_vs_normal": auc_statistic(y[pick], s[pick]),
            "sensitivity": float(flag[(y == 1) & pick].mean()),
            "mean_score": float(s[(y == 1) & pick].mean()),
        }
    out["mean_score_normal"] = float(s[y == 0].mean()) if (y == 0).any() else math.nan
    return out

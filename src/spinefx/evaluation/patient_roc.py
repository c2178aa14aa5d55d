"""Patient-level ROC of the voxel classifier over ``(t_p, t_n)`` (Nicolaes et al. 2019, 3.3).

Patient level: fracture voxels are those with ``p(fracture) > t_p``; their connected components
(26-connectivity, ``scipy.ndimage.label``) smaller than ``t_n`` voxels are noise; a patient is
positive when any component survives. A patient is thus summarised by the size of its largest
component at each ``t_p``; every ``(t_p, t_n)`` pair is one classifier, and the ROC is the upper
convex hull of all those classifiers' (FPR, TPR) points (Provost & Fawcett's ROCCH, paper ref.
[10]).

The aggregation itself (largest components, vertebra cube scores) is inference:
:mod:`spinefx.inference.aggregation`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinefx.inference.aggregation import (
    DEFAULT_NOISE_THRESHOLDS_VOX,
    DEFAULT_PROBABILITY_THRESHOLDS,
)


def patient_decisions(largest: np.ndarray, *, noise_thresholds_vox) -> np.ndarray:
    """Positive/negative of every ``(t_p, t_n)`` classifier for a set of patients.

    Args:
        largest: ``(P, T)`` largest-component sizes (:func:`largest_components` per patient).
        noise_thresholds_vox: ``(N,)`` t_n values; components smaller than t_n are dropped.

    Returns:
        ``(P, T, N)`` boolean, True = fracture detected.
    """
    largest = np.asarray(largest)
    tn = np.asarray(noise_thresholds_vox)
    return (largest[:, :, None] >= np.maximum(tn, 1)[None, None, :]) & (largest[:, :, None] > 0)


def grid_roc_points(y_true: np.ndarray, largest: np.ndarray, *, noise_thresholds_vox) -> np.ndarray:
    """(FPR, TPR) of every grid classifier, shape ``(T * N, 2)``."""
    y = np.asarray(y_true).astype(bool)
    dec = patient_decisions(largest, noise_thresholds_vox=noise_thresholds_vox)
    tpr = dec[y].mean(axis=0) if y.any() else np.full(dec.shape[1:], np.nan)
    fpr = dec[~y].mean(axis=0) if (~y).any() else np.full(dec.shape[1:], np.nan)
    return np.stack([fpr.ravel(), tpr.ravel()], axis=1)


def roc_convex_hull(points: np.ndarray) -> np.ndarray:
    """Upper convex hull of ROC points plus (0, 0) and (1, 1), sorted by FPR.

    Written by hand (monotone chain, ~15 lines) because scipy's ConvexHull returns the whole
    hull and fails on degenerate (collinear) point sets, which small ROC grids often are.
    """
    pts = np.vstack([[0.0, 0.0], [1.0, 1.0], np.asarray(points, float)])
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    pts = np.unique(pts, axis=0)  # sorted by fpr, then tpr
    hull: list[np.ndarray] = []
    for p in pts[np.lexsort((-pts[:, 1], pts[:, 0]))]:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:  # not a right turn
                hull.pop()
            else:
                break
        if not hull or p[0] > hull[-1][0]:
            hull.append(p)
    if hull[0][1] > 0:  # start the curve at the origin (a vertical segment adds no area)
        hull.insert(0, np.array([0.0, 0.0]))
    return np.array(hull)


def convex_hull_auc(y_true: np.ndarray, largest: np.ndarray, *, noise_thresholds_vox) -> float:
    """Patient-level AUC of the convex hull of the ``(t_p, t_n)`` grid (NaN with one class)."""
    y = np.asarray(y_true).astype(bool)
    if y.all() or not y.any():
        return float("nan")
    hull = roc_convex_hull(grid_roc_points(y, largest, noise_thresholds_vox=noise_thresholds_vox))
    return float(np.trapezoid(hull[:, 1], hull[:, 0]))


@dataclass(frozen=True)
class OperatingPoint:
    """One patient-level classifier of the grid, chosen by Youden's J on the hull."""

    probability_threshold: float
    noise_threshold_vox: int
    fpr: float
    tpr: float


def best_operating_point(
    y_true: np.ndarray,
    largest: np.ndarray,
    *,
    probability_thresholds=DEFAULT_PROBABILITY_THRESHOLDS,
    noise_thresholds_vox=DEFAULT_NOISE_THRESHOLDS_VOX,
) -> OperatingPoint:
    """The grid classifier of maximal TPR - FPR (ties: larger noise threshold)."""
    pts = grid_roc_points(y_true, largest, noise_thresholds_vox=noise_thresholds_vox)
    j = np.nan_to_num(pts[:, 1] - pts[:, 0], nan=-1.0)
    n = len(noise_thresholds_vox)
    best = max(range(len(j)), key=lambda i: (j[i], i % n))
    return OperatingPoint(
        float(probability_thresholds[best // n]),
        int(noise_thresholds_vox[best % n]),
        float(pts[best, 0]),
        float(pts[best, 1]),
    )

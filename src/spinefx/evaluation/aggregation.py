"""Aggregation of voxel fracture probabilities to patients and vertebrae (Nicolaes et al. 2019, 3.3).

Patient level: fracture voxels are those with ``p(fracture) > t_p``; their connected components
(26-connectivity, ``scipy.ndimage.label``) smaller than ``t_n`` voxels are noise; a patient is
positive when any component survives. A patient is thus summarised by the size of its largest
component at each ``t_p``; every ``(t_p, t_n)`` pair is one classifier, and the ROC is the upper
convex hull of all those classifiers' (FPR, TPR) points (Provost & Fawcett's ROCCH, paper ref.
[10]).

Vertebra level: Gaussian-weighted mean of ``p(fracture)`` in a cube around each centroid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinefx.image import Image

#: Default grid of probability thresholds t_p and noise thresholds t_n, in voxels of the
#: network's grid: 1 mm^3 each in the paper preset, 8 mm^3 at the cpu preset's 2 mm (CV and
#: ``detect`` both count on that grid, so a run's operating point stays consistent).
DEFAULT_PROBABILITY_THRESHOLDS = tuple(np.round(np.arange(0.1, 0.96, 0.05), 2))
DEFAULT_NOISE_THRESHOLDS_VOX = (0, 10, 25, 50, 100, 200, 400, 800, 1600, 3200, 6400)


def largest_components(
    fracture_probability: np.ndarray, *, probability_thresholds=DEFAULT_PROBABILITY_THRESHOLDS
) -> np.ndarray:
    """Voxel count of the largest connected fracture component at each probability threshold.

    Args:
        fracture_probability: ``(X, Y, Z)`` p(fracture) on a 1 mm grid.
        probability_thresholds: ``(T,)`` values of t_p (voxels with p > t_p are fracture).

    Returns:
        ``(T,)`` int64 sizes (0 where no voxel passes).
    """
    from scipy import ndimage

    structure = np.ones((3, 3, 3), dtype=bool)
    out = np.zeros(len(probability_thresholds), dtype=np.int64)
    for i, t in enumerate(probability_thresholds):
        labels, n = ndimage.label(fracture_probability > t, structure=structure)
        if n:
            out[i] = int(np.bincount(labels.ravel())[1:].max())
    return out


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


def vertebra_scores(
    fracture_probability: Image,
    centroids_mm: dict[int, np.ndarray],
    *,
    cube_size_vox: int = 10,
    sigma_vox: float | None = None,
    perturb_sigma_mm: float = 0.0,
    rng: np.random.Generator | None = None,
) -> dict[int, float]:
    """Gaussian-weighted mean fracture probability in a cube around each centroid.

    Args:
        fracture_probability: p(fracture) ``Image`` (any grid; distances use its voxels).
        centroids_mm: VerSe label -> world RAS+ mm.
        cube_size_vox: cube edge in voxels (paper: 10, chosen by cross-validation).
        sigma_vox: Gaussian sigma in voxels; default ``cube_size_vox / 4`` (our choice: the
            cube edge spans +-2 sigma).
        perturb_sigma_mm: std of Gaussian noise added to each centroid coordinate (paper: 3 mm
            to simulate automatic localisation); needs ``rng``.
        rng: generator of the perturbation.

    Returns:
        label -> score in [0, 1]; NaN when the cube lies outside the image.
    """
    data = np.asarray(fracture_probability.data, dtype=np.float32)
    sigma = sigma_vox if sigma_vox is not None else cube_size_vox / 4.0
    half = cube_size_vox / 2.0
    out = {}
    for label, centre in centroids_mm.items():
        c = np.asarray(centre, float)
        if perturb_sigma_mm > 0:
            if rng is None:
                raise ValueError("perturb_sigma_mm needs an rng")
            c = c + rng.normal(0.0, perturb_sigma_mm, 3)
        ijk = fracture_probability.world_to_voxel(c)
        lo = np.maximum(np.ceil(ijk - half).astype(int), 0)
        hi = np.minimum(np.floor(ijk + half).astype(int) + 1, data.shape)
        if np.any(hi <= lo):
            out[label] = float("nan")
            continue
        grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)], indexing="ij")
        d2 = sum((g - x) ** 2 for g, x in zip(grids, ijk, strict=True))
        w = np.exp(-d2 / (2 * sigma**2))
        block = data[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        out[label] = float((w * block).sum() / w.sum())
    return out

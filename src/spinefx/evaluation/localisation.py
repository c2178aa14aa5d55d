"""Automatic vertebra localisation from the voxel classifier's own vertebra map.

Method (ours; the paper only envisages it): the vertebra probability ``p(normal) +
p(fractured)`` is thresholded; the label ellipsoids leave the endplates and discs as
background, so the network's vertebra voxels fall apart into one connected component per
vertebral body. Components smaller than ``min_volume_mm3`` are dropped; each remaining one
gives a centroid (probability-weighted centre of mass, world mm). Centroids are ordered along
the spine by projecting them on their first principal axis, oriented cranially (+z world).
Levels are assigned by counting from an anchor: by default the most caudal component is L5.

Limits: a scan that does not reach L5 (or whose most caudal detection is the sacrum or a
lumbosacral transitional vertebra) is labelled off by the number of missing levels; two
fused components (merged bodies, severe crush fracture bridging a disc) count as one
vertebra. A known level anchor (``anchor_label`` + ``anchor="cranial"``) fixes thoracic scans.
"""

from __future__ import annotations

import numpy as np

from spinefx.conventions import SPINE_ORDER, spine_rank
from spinefx.image import Image


def localise_vertebrae(
    vertebra_probability: Image,
    *,
    threshold: float = 0.5,
    min_volume_mm3: float = 500.0,
    anchor_label: int = 24,
    anchor: str = "caudal",
) -> dict[int, np.ndarray]:
    """Vertebra centroids (world mm) with assigned VerSe labels from a vertebra-probability map.

    Args:
        vertebra_probability: p(normal) + p(fractured) ``Image`` (any grid).
        threshold: probability above which a voxel is vertebra.
        min_volume_mm3: smaller components are discarded as noise.
        anchor_label: VerSe label of the anchor vertebra (24 = L5).
        anchor: ``"caudal"`` (the most caudal component is ``anchor_label``) or ``"cranial"``.

    Returns:
        VerSe label -> centroid ``(3,)`` world RAS+ mm, cranial to caudal.
    """
    from scipy import ndimage

    prob = np.asarray(vertebra_probability.data, dtype=np.float32)
    mask = prob > threshold
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return {}
    voxel_mm3 = float(np.prod(vertebra_probability.spacing_mm))
    sizes = np.bincount(labels.ravel())[1:] * voxel_mm3
    keep = [i + 1 for i in range(n) if sizes[i] >= min_volume_mm3]
    if not keep:
        return {}
    com = ndimage.center_of_mass(prob * mask, labels, keep)
    pts = vertebra_probability.voxel_to_world(np.array(com, float))
    order = spine_order(pts)
    return assign_levels(pts[order], anchor_label=anchor_label, anchor=anchor)


def spine_order(points_mm: np.ndarray) -> np.ndarray:
    """Indices sorting points cranial -> caudal along their first principal axis."""
    pts = np.asarray(points_mm, float)
    if len(pts) < 2:
        return np.arange(len(pts))
    centred = pts - pts.mean(0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    if axis[2] < 0:  # point cranially (+z superior)
        axis = -axis
    return np.argsort(-(centred @ axis))


def assign_levels(
    points_cranial_to_caudal: np.ndarray, *, anchor_label: int = 24, anchor: str = "caudal"
) -> dict[int, np.ndarray]:
    """Label ordered centroids by counting along :data:`SPINE_ORDER` from an anchor.

    The standard spine (no T13/L6) is used: C1..T12, L1..L5.
    """
    standard = [lab for lab in SPINE_ORDER if lab not in (25, 28)]
    pts = list(points_cranial_to_caudal)
    pos = standard.index(anchor_label) if anchor_label in standard else spine_rank(anchor_label)
    if anchor == "caudal":
        first = pos - (len(pts) - 1)
    elif anchor == "cranial":
        first = pos
    else:
        raise ValueError(f"anchor must be 'caudal' or 'cranial', got {anchor!r}")
    out = {}
    for i, p in enumerate(pts):
        k = first + i
        if 0 <= k < len(standard):
            out[standard[k]] = np.asarray(p, float)
    return out


def localisation_errors(
    predicted_mm: dict[int, np.ndarray],
    truth_mm: dict[int, np.ndarray],
    *,
    identification_radius_mm: float = 20.0,
) -> dict[str, float]:
    """Localisation error and identification rate (Glocker et al. 2013 definitions).

    A ground-truth vertebra is *identified* when a prediction of the same label lies within
    ``identification_radius_mm`` and is closer to it than to any other ground-truth vertebra.

    Returns:
        ``mean_error_mm`` / ``std_error_mm`` (same-label pairs), ``mean_nearest_mm`` (each
        prediction to its nearest true centroid, label-free), ``identification_rate``,
        ``n_truth``, ``n_predicted``, ``n_matched``.
    """
    labels = sorted(truth_mm, key=spine_rank)
    truth = np.array([truth_mm[k] for k in labels], float)
    errors, identified = [], 0
    for i, lab in enumerate(labels):
        if lab not in predicted_mm:
            continue
        p = np.asarray(predicted_mm[lab], float)
        d = np.linalg.norm(truth - p, axis=1)
        errors.append(d[i])
        if d[i] <= identification_radius_mm and np.argmin(d) == i:
            identified += 1
    nearest = [
        float(np.min(np.linalg.norm(truth - np.asarray(p, float), axis=1)))
        for p in predicted_mm.values()
    ]
    nan = float("nan")
    return {
        "mean_error_mm": float(np.mean(errors)) if errors else nan,
        "std_error_mm": float(np.std(errors)) if errors else nan,
        "mean_nearest_mm": float(np.mean(nearest)) if nearest and len(truth) else nan,
        "identification_rate": identified / len(labels) if labels else nan,
        "n_truth": len(labels),
        "n_predicted": len(predicted_mm),
        "n_matched": len(errors),
    }

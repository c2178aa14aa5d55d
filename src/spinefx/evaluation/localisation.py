"""Scoring a vertebra localisation against a vertebra mask: found, error, levels, stray bodies.

The targets of ``benchmarks/bench_localisation.py`` (issue 14) are counted here:

* a true vertebra (a label of the mask whose body is in view) is *found* when a detection lies
  within ``radius_mm`` (10 mm) of its body centroid; detections and vertebrae are matched
  one to one, nearest pairs first;
* a detection is *outside the spine* when it lies farther than ``radius_mm`` from every voxel
  of the mask (markers on bowel, ribs or the pelvis);
* a matched detection's level is *right*, *uncertain* (reported as such, whatever the label) or
  *wrong* (a confident wrong level: the failure that must stay rare).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from spinefx.image import Image


def match_detections(
    detected: Mapping[int, np.ndarray] | list[np.ndarray],
    truth: Mapping[int, np.ndarray],
    *,
    radius_mm: float = 10.0,
) -> list[tuple[int, int, float]]:
    """One-to-one pairs ``(detection index, true label, distance mm)`` within ``radius_mm``,
    nearest first (greedy on the distance matrix)."""
    points = list(detected.values()) if isinstance(detected, Mapping) else list(detected)
    labels = sorted(truth)
    if not points or not labels:
        return []
    p = np.array(points, float)
    t = np.array([truth[k] for k in labels], float)
    d = np.linalg.norm(p[:, None] - t[None], axis=-1)
    pairs, used_p, used_t = [], set(), set()
    for flat in np.argsort(d, axis=None):
        i, j = np.unravel_index(flat, d.shape)
        if d[i, j] > radius_mm:
            break
        if i in used_p or j in used_t:
            continue
        used_p.add(i)
        used_t.add(j)
        pairs.append((int(i), labels[j], float(d[i, j])))
    return pairs


def score_localisation(
    detections: list[dict],
    truth: Mapping[int, np.ndarray],
    mask: Image,
    *,
    radius_mm: float = 10.0,
) -> dict:
    """Figures of one scan.

    Args:
        detections: ``{"label", "centroid_mm", "certain"}`` per detected body.
        truth: VerSe label -> body centroid (world mm) of the vertebrae in view.
        mask: the vertebra mask (any labels > 0 are spine), for "outside the spine".

    Returns:
        counts and rates: ``n_truth``, ``n_detected``, ``n_found``, ``found_rate``,
        ``median_error_mm``, ``n_outside_spine``, ``levels_right``, ``levels_uncertain``,
        ``levels_wrong`` (over found vertebrae) and ``per_vertebra`` rows.
    """
    from scipy import ndimage

    points = [np.asarray(d["centroid_mm"], float) for d in detections]
    pairs = match_detections(points, truth, radius_mm=radius_mm)
    spine = np.asarray(mask.data) > 0
    # distance (mm) of every voxel to the spine, for "outside the spine"
    outside_mm = ndimage.distance_transform_edt(~spine, sampling=mask.spacing_mm)
    n_outside = 0
    for p in points:
        ijk = np.round(mask.world_to_voxel(p[None])[0]).astype(int)
        inside_grid = np.all(ijk >= 0) and np.all(ijk < np.array(spine.shape))
        if not inside_grid or outside_mm[tuple(ijk)] > radius_mm:
            n_outside += 1
    right = uncertain = wrong = 0
    rows = []
    matched = {label: (i, dist) for i, label, dist in pairs}
    for label in sorted(truth):
        row = {"true_label": int(label), "found": label in matched}
        if label in matched:
            i, dist = matched[label]
            det = detections[i]
            row.update(
                error_mm=round(dist, 2), detected_label=int(det["label"]), certain=det["certain"]
            )
            if not det["certain"]:
                uncertain += 1
                row["level"] = "uncertain"
            elif int(det["label"]) == int(label):
                right += 1
                row["level"] = "right"
            else:
                wrong += 1
                row["level"] = "wrong"
        rows.append(row)
    errors = [dist for _, _, dist in pairs]
    n_truth = len(truth)
    return {
        "n_truth": n_truth,
        "n_detected": len(points),
        "n_found": len(pairs),
        "found_rate": len(pairs) / n_truth if n_truth else float("nan"),
        "median_error_mm": float(np.median(errors)) if errors else float("nan"),
        "n_outside_spine": n_outside,
        "levels_right": right,
        "levels_uncertain": uncertain,
        "levels_wrong": wrong,
        "per_vertebra": rows,
    }

"""Genant grade and shape of each vertebra from its heights and its neighbours' heights.

Three deformities, each a fractional height reduction against what the vertebra should have:

* wedge: ``1 - (Ha/Hp) / ref_a``, where ``ref_a`` is the median Ha/Hp of normal-looking
  neighbours (so natural thoracic wedging is not called a fracture);
* biconcave: ``1 - (Hm/Hp) / ref_m`` (normal endplates are slightly concave);
* crush: ``1 - Hp / Hp_expected``, where ``Hp_expected`` is the median posterior height of
  normal-looking neighbours within two levels, each scaled to this level by the normal
  size progression T1-L5.

The height loss is the largest deformity, its kind the shape, and the Genant grade follows
from the loss (20-25 % mild, 25-40 % moderate, >= 40 % severe).
"""

from __future__ import annotations

import numpy as np

from spinefx.conventions import (
    genant_grade_from_height_loss,
    normal_vertebra_size,
    spine_rank,
)

_SHAPES = ("wedge", "biconcave", "crush")
#: A neighbour whose own deformity exceeds this is not used as a reference.
REFERENCE_MAX_DEFORMITY = 0.15


def _nominal_height(label: int) -> float | None:
    try:
        return normal_vertebra_size(label)["height"]
    except ValueError:  # cervical / L6 / T13: no table entry, use the nearest level
        if label <= 7:
            return normal_vertebra_size(8)["height"]
        return normal_vertebra_size(24 if label == 25 else 19)["height"]


def _neighbours(labels: list[int], label: int, reach: int = 2) -> list[int]:
    rank = spine_rank(label)
    return [j for j in labels if j != label and abs(spine_rank(j) - rank) <= reach]


def deformities(
    heights: dict[int, tuple[float, float, float]],
    usable: dict[int, bool],
) -> dict[int, dict[str, float]]:
    """Wedge, biconcave and crush deformities of every vertebra.

    Args:
        heights: label -> (Ha, Hm, Hp) in mm.
        usable: label -> whether the vertebra may serve as a reference (not cut by the border).

    Returns:
        label -> {"wedge", "biconcave", "crush", "ref_a", "ref_m", "expected_hp"}.
    """
    labels = sorted(heights, key=spine_rank)
    ratios = {
        k: (h[0] / h[2], h[1] / h[2]) if h[2] > 0 else (np.nan, np.nan) for k, h in heights.items()
    }
    own = {k: max(1 - r[0], 1 - r[1] / 0.95) for k, r in ratios.items()}
    result: dict[int, dict[str, float]] = {}
    crush_first: dict[int, float] = {}
    for pass_ in range(2):
        for k in labels:
            refs = [
                j
                for j in _neighbours(labels, k)
                if usable.get(j, False)
                and own[j] < REFERENCE_MAX_DEFORMITY
                and (pass_ == 0 or crush_first.get(j, 0.0) < REFERENCE_MAX_DEFORMITY)
            ]
            ref_a = float(np.median([ratios[j][0] for j in refs])) if refs else 1.0
            ref_m = float(np.median([ratios[j][1] for j in refs])) if refs else 0.95
            ref_a, ref_m = float(np.clip(ref_a, 0.85, 1.1)), float(np.clip(ref_m, 0.8, 1.05))
            expected = [heights[j][2] * _nominal_height(k) / _nominal_height(j) for j in refs]
            hp_exp = float(np.median(expected)) if expected else float("nan")
            ha, hm, hp = heights[k]
            crush = 1 - hp / hp_exp if expected else 0.0
            result[k] = {
                "wedge": 1 - ratios[k][0] / ref_a,
                "biconcave": 1 - ratios[k][1] / ref_m,
                "crush": crush,
                "ref_a": ref_a,
                "ref_m": ref_m,
                "expected_hp": hp_exp,
            }
        crush_first = {k: r["crush"] for k, r in result.items()}
    return result


def grade_deformity(deformity: dict[str, float]) -> tuple[float, int, str | None]:
    """(height loss, Genant grade, shape) from one vertebra's deformities."""
    values = [max(0.0, float(deformity[s])) if np.isfinite(deformity[s]) else 0.0 for s in _SHAPES]
    loss = max(values)
    grade = genant_grade_from_height_loss(loss)
    shape = _SHAPES[int(np.argmax(values))] if grade > 0 else None
    return loss, grade, shape

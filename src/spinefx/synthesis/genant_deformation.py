"""Deforming vertebrae so that spinefx's morphometry measures their intended Genant grade.

Genant grades a height against the one the vertebra should have, which morphometry takes from
its normal neighbours (their Ha/Hp and Hm/Hp, and their Hp scaled by level). An intended loss
is such a Genant loss; :func:`own_height_losses` turns it into the loss of the vertebra's own
heights that :func:`~spinefx.synthesis.deformation.deform_scan` applies, and
:func:`deform_to_genant` re-runs the deformation until the measured loss lands on the intended
one (a voxel mask's heights change in steps of a voxel, so one run can miss a narrow grade).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from spinefx.image import Image
from spinefx.morphometry import VertebraMorphometry, deformities, measure_vertebrae
from spinefx.synthesis.body_columns import body_columns
from spinefx.synthesis.deformation import deform_scan
from spinefx.synthesis.fractures import FractureTruth


def measure_by_label(mask: Image) -> dict[int, VertebraMorphometry]:
    """Morphometry of every measurable vertebra of ``mask``, by label.

    A sliver of a vertebra at the scan border can make
    :func:`~spinefx.morphometry.measure_vertebrae` fail (no voxel in its mid-sagittal band);
    such a sliver cannot be graded anyway, so the smallest labels are left out until it works.
    """
    data = np.asarray(mask.data)
    for _ in range(4):
        try:
            return {r.vertebra_label: r for r in measure_vertebrae(mask.with_data(data))}
        except IndexError:
            labels, counts = np.unique(data[data > 0], return_counts=True)
            data = np.where(data == labels[np.argmin(counts)], 0, data)
    return {r.vertebra_label: r for r in measure_vertebrae(mask.with_data(data))}


def own_height_losses(
    rows: dict[int, VertebraMorphometry], fractures: dict[int, FractureTruth]
) -> dict[int, float]:
    """Loss of each vertebra's own heights that gives its intended Genant loss.

    Genant grades a height against the expected one, which morphometry takes from the normal
    neighbours (their Ha/Hp and Hm/Hp, and their Hp scaled by level); the vertebrae to be
    fractured are not used as references.
    """
    heights = {k: r.heights_mm for k, r in rows.items()}
    usable = {
        k: r.note == "" and r.heights.posterior_mm > 0 and k not in fractures
        for k, r in rows.items()
    }
    refs = deformities(heights, usable)
    out = {}
    for k, t in fractures.items():
        ha, hm, hp = heights[k]
        ref = refs[k]
        target = {
            "wedge": ref["ref_a"] / (ha / hp),
            "biconcave": ref["ref_m"] / (hm / hp),
            "crush": ref["expected_hp"] / hp if np.isfinite(ref["expected_hp"]) else 1.0,
        }[t.shape]
        out[k] = float(np.clip(1.0 - (1.0 - t.height_loss) * target, 0.05, 0.8))
    return out


def _next_loss(tried: list[tuple[float, float]], target: float) -> float:
    """Next own-height loss: interpolate in the tightest bracket of the target, else extrapolate.

    Measured heights of a voxel mask change in steps of a voxel, so the measured loss is a
    staircase of the applied one; an interpolation that repeats a tried value bisects instead.
    """
    below = [p for p in tried if p[1] <= target]
    above = [p for p in tried if p[1] > target]
    if below and above:
        (o0, m0), (o1, m1) = max(below), min(above)
        if o0 < o1:
            guess = o0 + (target - m0) * (o1 - o0) / max(m1 - m0, 1e-6)
            if min(abs(guess - o) for o, _ in tried) < 0.004:
                guess = 0.5 * (o0 + o1)
            return float(np.clip(guess, 0.02, 0.85))
    (o0, m0), (o1, m1) = tried[-2], tried[-1]
    slope = (m1 - m0) / (o1 - o0) if abs(o1 - o0) > 1e-3 else 1.0
    return float(np.clip(o1 + (target - m1) / (slope if slope > 0.3 else 1.0), 0.02, 0.85))


def deform_to_genant(
    ct: Image,
    mask: Image,
    fractures: dict[int, FractureTruth],
    *,
    condensation: float = 1.0,
    falloff_mm: float = 6.0,
    calibration_steps: int = 3,
    transform: np.ndarray | None = None,
    noise: np.ndarray | None = None,
) -> tuple[Image, Image, dict[int, VertebraMorphometry], dict[int, float]]:
    """Deform a scan so that morphometry measures each fracture's intended Genant loss.

    The intended losses (against the neighbours) are turned into own-height losses
    (:func:`own_height_losses`) for :func:`~spinefx.synthesis.deformation.deform_scan`. A mask
    with an irregular outline (a notched wall, thick slices) or posterior elements that stay
    at their height does not lose exactly that share of its measured heights, so up to
    ``calibration_steps`` re-runs correct each own-height loss (:func:`_next_loss`).
    The run with the fewest wrongly measured grades, then the smallest total error, is kept.

    Args:
        ct / mask: CT in HU and VerSe-id vertebra mask on one grid.
        fractures: label -> intended fracture (``height_loss`` = Genant loss); no neighbours.
        condensation / falloff_mm / transform / noise: as
            :func:`~spinefx.synthesis.deformation.deform_scan`.
        calibration_steps: re-runs allowed after the first (0 = one run).

    Returns:
        ``(ct, mask, measured, own)``: the deformed scan, the morphometry of its mask by label
        and the own-height loss applied to each fractured vertebra.
    """
    own = own_height_losses(measure_by_label(mask), fractures)
    columns = {k: body_columns(mask, k, falloff_mm=falloff_mm) for k in fractures}
    # (own loss, measured loss) tried per vertebra; own 0 measures the vertebra's own deformity
    tried = {k: [(0.0, 1 - (1 - own[k]) / (1 - t.height_loss))] for k, t in fractures.items()}
    best = None
    for step in range(calibration_steps + 1):
        applied = {k: replace(t, height_loss=own[k]) for k, t in fractures.items()}
        ct_out, mask_out = deform_scan(
            ct, mask, applied, transform=transform, condensation=condensation,
            falloff_mm=falloff_mm, noise=noise, columns=columns,
        )  # fmt: skip
        measured = measure_by_label(mask_out)
        ok = [k for k in fractures if k in measured and measured[k].note == ""]
        errors = {k: fractures[k].height_loss - measured[k].height_loss for k in ok}
        wrong = sum(measured[k].genant_grade != fractures[k].genant_grade for k in ok)
        score = (wrong, sum(abs(e) for e in errors.values()))
        if best is None or score < best[0]:
            best = (score, ct_out, mask_out, measured, dict(own))
        if step == calibration_steps or (wrong == 0 and score[1] < 0.015 * len(ok)):
            break
        for k in ok:
            tried[k].append((own[k], measured[k].height_loss))
            own[k] = _next_loss(tried[k], fractures[k].height_loss)
    return best[1:]

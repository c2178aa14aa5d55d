"""Automatic vertebra localisation from the voxel classifier's own vertebra map.

Method (ours; the paper only envisages it): the vertebra probability ``p(normal) +
p(fractured)`` is thresholded; the label ellipsoids leave the endplates and discs as
background, so the network's vertebra voxels fall apart into one connected component per
vertebral body. Components smaller than ``min_volume_mm3`` are dropped; each remaining one
gives a centroid (probability-weighted centre of mass, world mm). Centroids are ordered along
the spine by projecting them on their first principal axis, oriented cranially (+z world).

Level assignment (``anchor``):

* ``"profile"`` (default) makes no assumption about which vertebrae are in view. The measured
  inter-centroid distances (pitches) are matched to a reference T1-L5 pitch profile built from
  normal adult morphometry (:data:`REFERENCE_HEIGHT_MM`, :data:`REFERENCE_DISC_MM`). For every
  window of consecutive standard levels that fits the chain, a patient scale is fitted in log
  space (maximum a posteriori under a log-normal size prior, clamped to
  :data:`PROFILE_SCALE_RANGE`) and the window is scored by a Huber loss on the log-pitch
  residuals plus the size prior; the cheapest window wins (:func:`profile_offset`). The Huber
  loss keeps a fractured vertebra (shortened pitch) or a missed one (doubled pitch) from
  dominating the fit.
* ``"caudal"``: the most caudal component is ``anchor_label`` (L5 by default).
* ``"cranial"``: the most cranial component is ``anchor_label``.

Limits: the profile's only strong landmark is the thoracolumbar junction (lumbar discs are
thicker, so the T12/L1 and lumbar pitches jump); inside the mid-thoracic region the pitch
grows only ~3-4 % per level, so a window that stays there is placed mainly by the absolute
size prior and can be off by one or two levels (patient size, and hence pitch, varies by about
that much). The reference is T1-L5 only: a window reaching the cervical spine, a sacrum
detected as a vertebra, or a transitional spine (T13/L6) is forced onto T1-L5. A single
component carries no pitch and falls back to the caudal anchor. With ``"caudal"`` a scan that
does not reach L5 is labelled off by the number of missing levels. Two fused components
(merged bodies, severe crush fracture bridging a disc) count as one vertebra, which doubles a
pitch; the robust loss tolerates one such error, not several.
"""

from __future__ import annotations

import numpy as np

from spinefx.conventions import SPINE_ORDER, level_name, normal_vertebra_size, spine_rank
from spinefx.image import Image

#: VerSe labels of the reference profile, cranial to caudal (T1..L5).
PROFILE_LABELS: tuple[int, ...] = tuple(range(8, 25))
# Reference T1-L5 profile: normal adult morphometry (``spinefx.conventions.
# normal_vertebra_size``). NOTE: the synthetic generator is built on the same table, so results
# of the profile assignment on synthetic scans are optimistic for this step.
#: Reference posterior body height (mm) per label of :data:`PROFILE_LABELS`.
REFERENCE_HEIGHT_MM: dict[int, float] = {
    lab: normal_vertebra_size(lab)["height"] for lab in PROFILE_LABELS
}
#: Reference height (mm) of the disc below each label of :data:`PROFILE_LABELS` (the T12
#: "disc below" is the T12/L1 disc).
REFERENCE_DISC_MM: dict[int, float] = {
    lab: normal_vertebra_size(lab)["disc"] for lab in PROFILE_LABELS
}
#: Clamp of the fitted patient scale (pitch / reference pitch).
PROFILE_SCALE_RANGE: tuple[float, float] = (0.8, 1.25)
#: Prior sd of log(patient scale) (adult size varies by roughly +-10 %).
PROFILE_SCALE_SD: float = 0.08
#: Expected sd of a log pitch residual (height/disc variation, centroid noise).
PROFILE_RESIDUAL_SD: float = 0.05
#: Huber threshold, in residual sds: larger residuals (fracture, missed level) count linearly.
PROFILE_HUBER_K: float = 1.5


def reference_pitch_mm() -> np.ndarray:
    """Reference centre-to-centre distance (mm) between consecutive levels T1/T2 .. L4/L5.

    ``pitch[i] = height[i] / 2 + disc[i] + height[i + 1] / 2`` over :data:`PROFILE_LABELS`.
    """
    h = np.array([REFERENCE_HEIGHT_MM[lab] for lab in PROFILE_LABELS])
    d = np.array([REFERENCE_DISC_MM[lab] for lab in PROFILE_LABELS])
    return h[:-1] / 2 + d[:-1] + h[1:] / 2


def _huber(z: np.ndarray, k: float) -> np.ndarray:
    a = np.abs(z)
    return np.where(a <= k, 0.5 * z**2, k * a - 0.5 * k**2)


def _profile_fit(log_ratio: np.ndarray) -> tuple[float, float]:
    """Robust MAP log-scale and cost of log(measured / reference) pitches of one window."""
    k, sr, ss = PROFILE_HUBER_K, PROFILE_RESIDUAL_SD, PROFILE_SCALE_SD
    lo, hi = np.log(PROFILE_SCALE_RANGE[0]), np.log(PROFILE_SCALE_RANGE[1])
    prior = (sr / ss) ** 2  # prior weight relative to one residual
    log_s = float(np.clip(np.mean(log_ratio), lo, hi))  # least-squares start
    for _ in range(20):  # IRLS for the Huber loss, the size prior as a pseudo-observation at 0
        z = (log_ratio - log_s) / sr
        w = np.minimum(1.0, k / np.maximum(np.abs(z), 1e-12))
        new = float(np.clip(np.sum(w * log_ratio) / (np.sum(w) + prior), lo, hi))
        if abs(new - log_s) < 1e-9:
            break
        log_s = new
    z = (log_ratio - log_s) / sr
    cost = float(np.sum(_huber(z, k)) + 0.5 * (log_s / ss) ** 2)
    return log_s, cost


def profile_costs(points_cranial_to_caudal: np.ndarray) -> dict[int, tuple[float, float]]:
    """Scale and cost of every T1-L5 window that fits the ordered centroids.

    Returns:
        ``{first VerSe label: (scale, cost)}`` for each candidate window (empty when fewer
        than two points or more points than :data:`PROFILE_LABELS`).
    """
    pts = np.asarray(points_cranial_to_caudal, float)
    n = len(pts)
    if n < 2 or n > len(PROFILE_LABELS):
        return {}
    measured = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    log_d = np.log(np.maximum(measured, 1e-6))
    log_ref = np.log(reference_pitch_mm())
    out = {}
    for first in range(len(PROFILE_LABELS) - n + 1):
        log_s, cost = _profile_fit(log_d - log_ref[first : first + n - 1])
        out[PROFILE_LABELS[first]] = (float(np.exp(log_s)), cost)
    return out


def profile_offset(points_cranial_to_caudal: np.ndarray) -> tuple[int, float, float]:
    """Best T1-L5 window for ordered centroids by matching their pitch profile.

    For each candidate first level, a patient scale ``s`` is fitted in log space (robust MAP:
    Huber loss on the log-pitch residuals, log-normal prior on ``s`` with sd
    :data:`PROFILE_SCALE_SD`, clamped to :data:`PROFILE_SCALE_RANGE`) and the window scores
    ``sum huber((log d_i - log s - log ref_i) / sd_r) + (log s / sd_s)^2 / 2``.

    Args:
        points_cranial_to_caudal: ``(n, 3)`` centroids, mm, cranial first, ``2 <= n <= 17``.

    Returns:
        ``(first_label, scale, cost)``: VerSe label of the first (most cranial) point, the
        fitted scale (measured / reference pitch) and the window's cost.
    """
    costs = profile_costs(points_cranial_to_caudal)
    if not costs:
        raise ValueError("profile matching needs 2 to 17 ordered centroids")
    first = min(costs, key=lambda lab: costs[lab][1])
    return first, costs[first][0], costs[first][1]


def localise_vertebrae(
    vertebra_probability: Image,
    *,
    threshold: float = 0.5,
    min_volume_mm3: float = 500.0,
    anchor_label: int = 24,
    anchor: str = "profile",
) -> dict[int, np.ndarray]:
    """Vertebra centroids (world mm) with assigned VerSe labels from a vertebra-probability map.

    Args:
        vertebra_probability: p(normal) + p(fractured) ``Image`` (any grid).
        threshold: probability above which a voxel is vertebra.
        min_volume_mm3: smaller components are discarded as noise.
        anchor_label: VerSe label of the anchor vertebra for ``"caudal"``/``"cranial"`` (and
            for a single component under ``"profile"``); 24 = L5.
        anchor: ``"profile"`` (match the pitch profile to the T1-L5 reference, see
            :func:`profile_offset`), ``"caudal"`` (the most caudal component is
            ``anchor_label``) or ``"cranial"``.

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


#: automatic localisation is refused when neighbouring bodies are closer or farther than this,
#: mm (vertebral bodies: ~15 mm in the neck, ~40 mm at L4-L5)
AUTO_SPACING_MM = (12.0, 60.0)
#: ... or when a body lies farther than this from a smooth curve through all of them, mm
AUTO_OFF_LINE_MM = 20.0


def check_localisation(centroids: dict[int, np.ndarray]) -> None:
    """Refuse an automatic localisation that cannot be one spine.

    Checked: the spacing of neighbouring bodies (:data:`AUTO_SPACING_MM`: too many "levels"
    for the scanned length give short gaps, missed or spurious ones long gaps), and bodies off
    the spine line (farther than :data:`AUTO_OFF_LINE_MM` from a quadratic curve along the
    first principal axis: markers on spinous processes, ribs or bowel).

    Raises:
        InputError: saying what is implausible and to pass centroids or a mask.
    """
    from spinefx.errors import InputError

    fix = "pass --centroids FILE.json (VerSe centroid JSON) for the vertebrae in view"
    labels = sorted(centroids, key=spine_rank)
    pts = np.array([np.asarray(centroids[k], float) for k in labels])
    if len(pts) < 2:
        return
    gaps = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    low, high = AUTO_SPACING_MM
    if gaps.min() < low or gaps.max() > high:
        raise InputError(
            f"automatic localisation is implausible: {len(pts)} bodies with gaps of "
            f"{gaps.min():.0f}-{gaps.max():.0f} mm between neighbours (vertebral bodies: "
            f"{low:.0f}-{high:.0f} mm)",
            fix=fix,
        )
    if len(pts) >= 4:
        centred = pts - pts.mean(0)
        axes = np.linalg.svd(centred, full_matrices=False)[2]
        t = centred @ axes[0]
        side = centred @ axes[1:].T  # (n, 2) off-axis coordinates
        design = np.stack([np.ones_like(t), t, t**2], axis=1)
        coef, *_ = np.linalg.lstsq(design, side, rcond=None)
        off = np.linalg.norm(side - design @ coef, axis=1)
        if off.max() > AUTO_OFF_LINE_MM:
            worst = labels[int(np.argmax(off))]
            raise InputError(
                f"automatic localisation is implausible: the body labelled "
                f"{level_name(worst)} lies {off.max():.0f} mm off the spine line",
                fix=fix,
            )


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
    points_cranial_to_caudal: np.ndarray, *, anchor_label: int = 24, anchor: str = "profile"
) -> dict[int, np.ndarray]:
    """Label ordered centroids along the standard spine (C1..T12, L1..L5; no T13/L6).

    ``anchor="profile"`` picks the T1-L5 window by :func:`profile_offset`; with a single point
    there is no pitch to match, so it falls back to the caudal anchor (``anchor_label``), and
    with more than 17 points the window is anchored caudally at L5. ``"caudal"`` /
    ``"cranial"`` count from ``anchor_label`` at the most caudal / cranial point.
    """
    standard = [lab for lab in SPINE_ORDER if lab not in (25, 28)]
    pts = list(points_cranial_to_caudal)
    pos = standard.index(anchor_label) if anchor_label in standard else spine_rank(anchor_label)
    if anchor == "profile":
        if 2 <= len(pts) <= len(PROFILE_LABELS):
            first = standard.index(profile_offset(np.asarray(pts, float))[0])
        elif len(pts) > len(PROFILE_LABELS):
            first = standard.index(PROFILE_LABELS[-1]) - (len(pts) - 1)
        else:
            first = pos - (len(pts) - 1)
    elif anchor == "caudal":
        first = pos - (len(pts) - 1)
    elif anchor == "cranial":
        first = pos
    else:
        raise ValueError(f"anchor must be 'profile', 'caudal' or 'cranial', got {anchor!r}")
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

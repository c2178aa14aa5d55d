"""Per-vertebra morphometry of a vertebra mask: heights, ratios, Genant grade and shape."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from spinefx.conventions import (
    NON_VERTEBRA_LABELS,
    VERTEBRA_LEVELS,
    is_cervical,
    level_name,
    spine_rank,
)
from spinefx.errors import InputError
from spinefx.image import Image
from spinefx.morphometry.grading import deformities, grade_deformity
from spinefx.morphometry.heights import BodyHeights, body_voxels, measure_heights

log = logging.getLogger(__name__)

#: Fewer body voxels than this: too small to measure (a sliver at the scan border).
MIN_BODY_VOXELS = 50


@dataclass(frozen=True)
class VertebraMorphometry:
    """Morphometry of one vertebra.

    Attributes:
        vertebra_label: VerSe label.
        heights: anterior/middle/posterior body heights and depth (mm).
        wedge_ratio: Ha / Hp.
        biconcavity_ratio: Hm / Hp.
        crush_ratio: Hp / expected Hp from the neighbours (nan without usable neighbours).
        height_loss: largest deformity against the reference (fraction).
        genant_grade: estimated grade 0-3, or None when not graded (see ``note``).
        shape: "wedge" / "biconcave" / "crush" for grade >= 1, else None.
        note: why a vertebra was not graded ("cut by the scan border", "cervical"), else "".
        centroid_mm: body centroid, world RAS+ mm.
        axis: unit spine axis (cranial) used for the heights, world RAS+.
    """

    vertebra_label: int
    heights: BodyHeights
    wedge_ratio: float
    biconcavity_ratio: float
    crush_ratio: float
    height_loss: float
    genant_grade: int | None
    shape: str | None
    centroid_mm: np.ndarray
    axis: np.ndarray
    note: str = ""

    @property
    def level(self) -> str:
        return level_name(self.vertebra_label)

    @property
    def heights_mm(self) -> tuple[float, float, float]:
        """(anterior, middle, posterior) heights in mm."""
        h = self.heights
        return (h.anterior_mm, h.middle_mm, h.posterior_mm)


def _frames(centroids: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
    from spinefx.preprocessing.spine import frame_from_tangent, spine_frames

    if len(centroids) >= 2:
        return {k: f.axes for k, f in spine_frames(centroids)[1].items()}
    return {
        k: frame_from_tangent(c, np.array([0.0, 0.0, 1.0]), label=k).axes
        for k, c in centroids.items()
    }


def _refine_anterior(
    axes: np.ndarray, mask: Image, body: np.ndarray, posterior: np.ndarray
) -> np.ndarray:
    # anterior = from the posterior elements' centroid to the body's, orthogonal to the axis
    if len(posterior) < 20:
        return axes
    d = mask.voxel_to_world(body).mean(0) - mask.voxel_to_world(posterior).mean(0)
    w = axes[:, 2]
    v = d - (d @ w) * w
    if np.linalg.norm(v) < 1e-6 or v @ axes[:, 1] < 0.3 * np.linalg.norm(v):
        return axes
    v /= np.linalg.norm(v)
    return np.stack([np.cross(v, w), v, w], axis=1)


def measure_vertebrae(
    mask: Image,
    *,
    centroids: Mapping[int, np.ndarray] | None = None,
    subregion_mask: Image | None = None,
) -> list[VertebraMorphometry]:
    """Measure every vertebra of a VerSe vertebra mask and estimate its Genant grade and shape.

    Args:
        mask: integer label image (VerSe labels), any orientation and spacing.
        centroids: body centroids in world RAS+ mm (e.g. from ``spinefx.io.load_centroids``);
            default: estimated from the mask (then refined to the estimated body).
        subregion_mask: VerSe sub-region mask on the same grid (49-50 = body); without it the
            body is estimated as the part of the vertebra anterior to the spinal canal.

    Returns:
        One record per vertebra, cranial to caudal.

    Raises:
        InputError: when the sub-region mask is on another grid or the mask holds no vertebra.
    """
    if subregion_mask is not None and (
        subregion_mask.shape != mask.shape
        or not np.allclose(subregion_mask.affine, mask.affine, atol=1e-3)
    ):
        raise InputError(
            "the sub-region mask is not on the vertebra mask's grid",
            fix="pass the _seg-subreg_msk file of the same scan",
        )
    present = [
        int(x)
        for x in np.unique(mask.data)
        if int(x) in VERTEBRA_LEVELS and int(x) not in NON_VERTEBRA_LABELS
    ]
    if not present:
        raise InputError(
            "the mask holds no vertebra label (VerSe 1-25, 28)", fix="pass a vertebra mask"
        )
    if centroids is None:
        centroids = {k: mask.voxel_to_world(np.argwhere(mask.data == k)).mean(0) for k in present}
    centroids = {int(k): np.asarray(v, float) for k, v in centroids.items() if int(k) in present}
    measured = _measure_bodies(mask, centroids, subregion_mask)
    hmap = {k: (h.anterior_mm, h.middle_mm, h.posterior_mm) for k, (h, _, _) in measured.items()}
    usable = {
        k: not h.cut_by_border and h.posterior_mm > 0 and not is_cervical(k)
        for k, (h, _, _) in measured.items()
    }
    defs = deformities(hmap, usable)
    return [_record(label, *measured[label], defs[label]) for label in measured]


def _measure_bodies(
    mask: Image, centroids: dict[int, np.ndarray], subregion_mask: Image | None
) -> dict[int, tuple[BodyHeights, np.ndarray, np.ndarray]]:
    """Heights, body centroid and cranial axis of every measurable body, cranial first."""
    frames = _frames(centroids)
    measured: dict[int, tuple[BodyHeights, np.ndarray, np.ndarray]] = {}
    for label in sorted(centroids, key=spine_rank):
        axes, origin = frames[label], centroids[label]
        body, post = body_voxels(
            mask, label, subregion_mask=subregion_mask, frame_axes=axes, origin_mm=origin
        )
        axes = _refine_anterior(axes, mask, body, post)
        if subregion_mask is None:  # split again in the refined frame
            body, post = body_voxels(
                mask, label, subregion_mask=None, frame_axes=axes, origin_mm=origin
            )
        if len(body) < MIN_BODY_VOXELS:
            log.info("%s: body too small to measure (%d voxels)", level_name(label), len(body))
            continue
        origin = mask.voxel_to_world(body).mean(0)
        heights = measure_heights(mask, body, frame_axes=axes, origin_mm=origin)
        measured[label] = (heights, origin, axes[:, 2])
    return measured


def _record(
    label: int, h: BodyHeights, origin: np.ndarray, axis: np.ndarray, d: dict
) -> VertebraMorphometry:
    """One vertebra's record from its heights and its deformity against its neighbours."""
    loss, grade, shape = grade_deformity(d)
    hp = h.posterior_mm if h.posterior_mm > 0 else np.nan
    # Genant grading is defined for T1-L5; cervical bodies are measured, not graded
    note = "cut by the scan border" if h.cut_by_border else "cervical" if is_cervical(label) else ""
    return VertebraMorphometry(
        vertebra_label=label,
        heights=h,
        wedge_ratio=h.anterior_mm / hp,
        biconcavity_ratio=h.middle_mm / hp,
        crush_ratio=hp / d["expected_hp"] if np.isfinite(d["expected_hp"]) else float("nan"),
        height_loss=loss,
        genant_grade=None if note else grade,
        shape=None if note else shape,
        centroid_mm=origin,
        axis=axis,
        note=note,
    )


#: the morphometry columns shown beside a network's probability (same names in every table)
MORPHOMETRY_COLUMNS = (
    "anterior_height_mm",
    "middle_height_mm",
    "posterior_height_mm",
    "height_loss",
    "morph_grade",
    "morph_shape",
    "morph_note",
)


def morphometry_columns(mask: Image) -> dict[int, dict]:
    """Per VerSe label, the :data:`MORPHOMETRY_COLUMNS` of its body measured in ``mask``.

    What ``predict``/``detect --mask`` put beside each probability, so a reader sees the
    heights and the morphometric Genant grade next to the network's answer. Vertebrae that
    cannot be measured are absent (their columns stay empty).
    """
    out = {}
    for r in measure_vertebrae(mask):
        h = r.heights
        out[r.vertebra_label] = {
            "anterior_height_mm": round(float(h.anterior_mm), 1),
            "middle_height_mm": round(float(h.middle_mm), 1),
            "posterior_height_mm": round(float(h.posterior_mm), 1),
            "height_loss": round(float(r.height_loss), 3),
            "morph_grade": r.genant_grade,
            "morph_shape": r.shape or "",
            "morph_note": r.note,
        }
    return out


def with_morphometry(rows: list[dict], columns: Mapping[int, dict]) -> list[dict]:
    """``rows`` (each with ``vertebra_label``) with the morphometry columns added (empty when
    that vertebra was not measured)."""
    blank = dict.fromkeys(MORPHOMETRY_COLUMNS)
    return [{**row, **columns.get(int(row["vertebra_label"]), blank)} for row in rows]


def format_table(rows: list[VertebraMorphometry]) -> str:
    """A plain-text table of the morphometry (one line per vertebra)."""
    head = f"{'level':<6}{'Ha mm':>7}{'Hm mm':>7}{'Hp mm':>7}{'Ha/Hp':>7}{'Hm/Hp':>7}{'Hp/exp':>7}{'loss':>7}  grade  shape"
    lines = [head]
    for r in rows:
        grade = "-" if r.genant_grade is None else str(r.genant_grade)
        lines.append(
            f"{r.level:<6}{r.heights.anterior_mm:7.1f}{r.heights.middle_mm:7.1f}{r.heights.posterior_mm:7.1f}"
            f"{r.wedge_ratio:7.2f}{r.biconcavity_ratio:7.2f}{r.crush_ratio:7.2f}{100 * r.height_loss:6.0f}%"
            f"  {grade:<5}  {r.shape or '-'}" + (f"  ({r.note})" if r.note else "")
        )
    return "\n".join(lines)

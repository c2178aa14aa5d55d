"""Anterior, middle and posterior heights of vertebral bodies, measured along the spine axis.

Quantitative morphometry on a mask, the 3-D analogue of the six-point method on a lateral
radiograph: in each vertebra's local frame (w along the spine tangent, v anterior, u lateral)
the body mask is sampled along lines parallel to w, at 10 % of the body depth inside the
anterior and posterior margins and at the centre, on a band of lateral positions around the
mid-sagittal plane. A height is the mean over that band of the extent of the body along
its line. The mask is interpolated trilinearly (threshold 0.5) so that heights are not
quantised to the slice spacing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from spinefx.image import Image

BODY_SUBREGIONS = (49, 50)  # VerSe sub-region labels: corpus border, corpus
_STEP_MM = 0.25
_REACH_MM = 45.0


@dataclass(frozen=True)
class BodyHeights:
    """Heights of one body (mm) and where they were measured.

    Attributes:
        anterior_mm / middle_mm / posterior_mm: body heights along the local axis.
        depth_mm: antero-posterior depth of the body in the mid-sagittal band.
        width_mm: lateral width of the body.
        cut_by_border: the vertebra touches the edge of the image (heights unreliable).
    """

    anterior_mm: float
    middle_mm: float
    posterior_mm: float
    depth_mm: float
    width_mm: float
    cut_by_border: bool


def body_voxels(
    mask: Image,
    label: int,
    *,
    subregion_mask: Image | None,
    frame_axes: np.ndarray,
    origin_mm: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Voxel indices ``(N, 3)`` of the body of ``label`` and of its posterior elements ``(M, 3)``.

    With a VerSe sub-region mask the body is sub-regions 49-50. Without one it is estimated in
    the local frame: along the antero-posterior line through the mid-sagittal band, the body is
    the anterior run of bone that ends at the spinal canal (the first gap of >= 2 mm).
    """
    ijk = np.argwhere(mask.data == label)
    if subregion_mask is not None:
        sub = subregion_mask.data[tuple(ijk.T)]
        is_body = np.isin(sub, BODY_SUBREGIONS)
        if is_body.any():
            return ijk[is_body], ijk[~is_body]
    local = (mask.voxel_to_world(ijk) - origin_mm) @ frame_axes
    band = np.abs(local[:, 0]) < 4.0
    if band.sum() < 5:
        return ijk, ijk[:0]
    v_band = local[band, 1]
    bins = np.arange(np.floor(v_band.min()), np.ceil(v_band.max()) + 1.0, 1.0)
    occupied = np.histogram(v_band, bins=bins)[0] > 0
    # walk from the anterior end backwards until a gap of >= 2 bins (the canal)
    cut = bins[0]
    empty_run = 0
    for k in range(len(occupied) - 1, -1, -1):
        if occupied[k]:
            empty_run = 0
            continue
        empty_run += 1
        if empty_run >= 2:
            cut = bins[k + 2]
            break
    is_body = local[:, 1] >= cut
    return ijk[is_body], ijk[~is_body]


def align_to_posterior_wall(
    mask: Image, body_ijk: np.ndarray, *, frame_axes: np.ndarray, origin_mm: np.ndarray
) -> np.ndarray:
    """Tilt the frame about its lateral axis so w runs along the body's posterior wall.

    The posterior wall keeps its direction in wedge and biconcave fractures, so heights are
    measured along the vertebra's own axis (as the six-point method does on a radiograph),
    not along a spine tangent that a wedge fracture or the end of the spine tilts.
    """
    local = (mask.voxel_to_world(body_ijk) - origin_mm) @ frame_axes
    half_width = 0.5 * (np.percentile(local[:, 0], 99) - np.percentile(local[:, 0], 1))
    band = np.abs(local[:, 0]) < 0.3 * half_width + 1.0
    if band.sum() < 20:
        return frame_axes
    v_post, v_ant = np.percentile(local[band, 1], [0.5, 99.5])
    strip = band & (local[:, 1] < v_post + 0.15 * (v_ant - v_post) + 1.0)
    if strip.sum() < 10:
        return frame_axes
    vw = local[strip][:, 1:] - local[strip][:, 1:].mean(0)
    _, vecs = np.linalg.eigh(vw.T @ vw)
    d = vecs[:, -1] * np.sign(vecs[1, -1] or 1.0)  # major direction, pointing cranially
    angle = float(np.arctan2(d[0], d[1]))
    if abs(angle) > np.radians(25.0):
        return frame_axes
    u, v, w = frame_axes.T
    w_new = np.cos(angle) * w + np.sin(angle) * v
    v_new = np.cross(w_new, u)
    return np.stack([u, v_new, w_new], axis=1)


def measure_heights(
    mask: Image, body_ijk: np.ndarray, *, frame_axes: np.ndarray, origin_mm: np.ndarray
) -> BodyHeights:
    """Heights of a body given its voxels and local frame.

    Args:
        mask: the image grid (only geometry is used).
        body_ijk: ``(N, 3)`` voxel indices of the body.
        frame_axes: ``(3, 3)`` columns u (lateral), v (anterior), w (cranial), world.
        origin_mm: frame origin (body centroid), world RAS+ mm.
    """
    frame_axes = align_to_posterior_wall(mask, body_ijk, frame_axes=frame_axes, origin_mm=origin_mm)
    lo = np.maximum(body_ijk.min(0) - 2, 0)
    hi = np.minimum(body_ijk.max(0) + 3, mask.shape)
    cut = bool(
        np.any(body_ijk.min(0) == 0) or np.any(body_ijk.max(0) == np.asarray(mask.shape) - 1)
    )
    crop = np.zeros(tuple(hi - lo), np.float32)
    crop[tuple((body_ijk - lo).T)] = 1.0
    local = (mask.voxel_to_world(body_ijk) - origin_mm) @ frame_axes
    half_width = 0.5 * (np.percentile(local[:, 0], 99) - np.percentile(local[:, 0], 1))
    band_u = np.linspace(-0.2, 0.2, 9) * half_width
    # margins at mid-height, where osteophytes at the endplate rims do not reach
    mid_w = np.median(local[:, 2])
    in_band = (np.abs(local[:, 0]) < 0.2 * half_width + 1.0) & (np.abs(local[:, 2] - mid_w) < 3.0)
    if in_band.sum() < 5:
        in_band = np.abs(local[:, 0]) < 0.2 * half_width + 1.0
    if in_band.sum() < 5:  # a thin sliver (e.g. cut by the scan border): use every voxel
        in_band = np.ones(len(local), bool)
    v_post, v_ant = np.percentile(local[in_band, 1], [0.5, 99.5])
    depth = float(v_ant - v_post)
    positions = {
        "anterior": v_ant - 0.1 * depth,
        "middle": 0.5 * (v_ant + v_post),
        "posterior": v_post + 0.1 * depth,
    }
    inv = np.linalg.inv(mask.affine)
    ts = np.arange(-_REACH_MM, _REACH_MM + _STEP_MM / 2, _STEP_MM)
    heights = {}
    for name, v0 in positions.items():
        vs = v0 + np.linspace(-1.5, 1.5, 5)
        uu, vv, tt = np.meshgrid(band_u, vs, ts, indexing="ij")
        world = origin_mm + np.stack([uu, vv, tt], -1) @ frame_axes.T
        vox = world @ inv[:3, :3].T + inv[:3, 3] - lo
        values = ndimage.map_coordinates(crop, vox.reshape(-1, 3).T, order=1, cval=0.0)
        inside = values.reshape(uu.shape) >= 0.5
        extents = []
        for line in inside.reshape(-1, len(ts)):
            idx = np.flatnonzero(line)
            if idx.size:
                extents.append((idx[-1] - idx[0] + 1) * _STEP_MM)
        heights[name] = float(np.mean(extents)) if extents else 0.0
    return BodyHeights(
        anterior_mm=heights["anterior"],
        middle_mm=heights["middle"],
        posterior_mm=heights["posterior"],
        depth_mm=depth,
        width_mm=float(2 * half_width),
        cut_by_border=cut,
    )

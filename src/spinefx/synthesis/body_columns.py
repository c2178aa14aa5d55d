"""A vertebral body described column by column along its own axis, for deforming it.

In the vertebra's local frame (u patient right, v anterior, w cranial along the posterior
wall; origin the body centroid, as :mod:`spinefx.morphometry` measures it) the body mask is
sampled on a 1 mm grid of (u, v) columns. Each column gets its inferior and superior endplate
positions and the positions of the neighbours' facing endplates (the fixed ends of the discs),
plus a lateral window that is 1 inside the body's cross-section and fades to 0 over
``falloff_mm`` outside it. Columns at the rim take the endplates of the nearest full-height
column, so the field is smooth; columns where another vertebra reaches into the body's height
range get no collapse, so neighbours are never deformed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from spinefx.errors import InputError
from spinefx.image import Image
from spinefx.io.centroids import centroids_from_mask
from spinefx.morphometry.heights import align_to_posterior_wall, body_voxels
from spinefx.preprocessing.spine import frame_from_tangent, spine_frames

COLUMN_STEP_MM = 1.0  # (u, v) spacing of the column grid
W_STEP_MM = 0.5  # sampling step along a column
REACH_MM = 30.0  # how far beyond a body its neighbours' endplates are looked for
MIN_DISC_MM = 0.5  # a disc is never taken thinner than this
DEFAULT_DISC_MM = 8.0  # disc height assumed where no neighbour is found
MIN_BODY_VOXELS = 50  # as morphometry: fewer body voxels cannot be measured or deformed


@dataclass(frozen=True, eq=False)
class BodyColumns:
    """A vertebral body described column by column along its own axis (local frame, mm).

    Attributes:
        vertebra_label: VerSe label.
        origin_mm: body centroid, world RAS+ mm, ``(3,)``.
        axes: ``(3, 3)`` columns u (right), v (anterior), w (cranial), world RAS+.
        u_mm / v_mm: ``(nu,)`` / ``(nv,)`` local positions of the column grid.
        fields: ``(5, nu, nv)`` per column: inferior / superior endplate w, the w of the
            neighbours' endplates below / above (fixed points) and the lateral window (1 inside
            the body's cross-section, 0 beyond ``falloff_mm``), all in mm but the window.
        u_rel / v_rel: ``(nu, nv)`` position / body half-width and half-depth (+1 anterior),
            the coordinates of :func:`spinefx.synthesis.fractures.loss_field`.
    """

    vertebra_label: int
    origin_mm: np.ndarray
    axes: np.ndarray
    u_mm: np.ndarray
    v_mm: np.ndarray
    fields: np.ndarray
    u_rel: np.ndarray
    v_rel: np.ndarray


def vertebra_frame(
    mask: Image,
    vertebra_label: int,
    *,
    subregion_mask: Image | None = None,
    axis: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Body centroid, local frame and body voxels of one vertebra, as morphometry measures it.

    The axis is the spine tangent through the vertebrae's centroids (or ``axis``), turned
    about the lateral axis onto the body's posterior wall; anterior points from the posterior
    elements to the body.

    Returns:
        ``(origin_mm (3,), axes (3, 3), body_ijk (N, 3))``.
    """
    centroids = centroids_from_mask(mask)
    if vertebra_label not in centroids:
        raise InputError(f"vertebra label {vertebra_label} is not in the mask", fix="pick one")
    centre = centroids[vertebra_label]
    if axis is not None:
        axes = frame_from_tangent(centre, np.asarray(axis, float), label=vertebra_label).axes
    elif len(centroids) >= 2:
        axes = spine_frames(centroids)[1][vertebra_label].axes
    else:
        axes = frame_from_tangent(centre, np.array([0.0, 0.0, 1.0]), label=vertebra_label).axes
    body, post = body_voxels(
        mask, vertebra_label, subregion_mask=subregion_mask, frame_axes=axes, origin_mm=centre
    )
    if len(post) >= 20:  # anterior = from the posterior elements to the body, normal to w
        d = mask.voxel_to_world(body).mean(0) - mask.voxel_to_world(post).mean(0)
        v = d - (d @ axes[:, 2]) * axes[:, 2]
        if np.linalg.norm(v) > 1e-6 and v @ axes[:, 1] > 0.3 * np.linalg.norm(v):
            v /= np.linalg.norm(v)
            axes = np.stack([np.cross(v, axes[:, 2]), v, axes[:, 2]], axis=1)
    origin = mask.voxel_to_world(body).mean(0)
    if axis is None:
        axes = align_to_posterior_wall(mask, body, frame_axes=axes, origin_mm=origin)
    return origin, axes, body


def body_columns(
    mask: Image,
    vertebra_label: int,
    *,
    subregion_mask: Image | None = None,
    axis: np.ndarray | None = None,
    falloff_mm: float = 6.0,
) -> BodyColumns:
    """Measure the columns of one vertebral body and its neighbours' endplates on ``mask``.

    Args:
        mask: VerSe-id vertebra mask, any orientation and spacing.
        vertebra_label: the vertebra.
        subregion_mask: VerSe sub-region mask on the grid (49-50 = body), optional.
        axis: its axis (world, cranial) instead of the spine tangent and posterior wall.
        falloff_mm: width of the lateral fade-out of the window.

    Raises:
        InputError: when the label is absent or its body too small.
    """
    origin, axes, body = vertebra_frame(
        mask, vertebra_label, subregion_mask=subregion_mask, axis=axis
    )
    if len(body) < MIN_BODY_VOXELS:
        raise InputError(
            f"vertebra {vertebra_label} has only {len(body)} body voxels, too few to deform",
            fix="fracture a vertebra whose body is in view",
        )
    local = (mask.voxel_to_world(body) - origin) @ axes
    pad = falloff_mm + 2 * COLUMN_STEP_MM
    lo, hi = local.min(0), local.max(0)
    u = np.arange(lo[0] - pad, hi[0] + pad + 1e-6, COLUMN_STEP_MM)
    v = np.arange(lo[1] - pad, hi[1] + pad + 1e-6, COLUMN_STEP_MM)
    w = np.arange(lo[2] - REACH_MM, hi[2] + REACH_MM + 1e-6, W_STEP_MM)
    grid = np.stack(np.meshgrid(u, v, w, indexing="ij"), -1)
    vox = mask.world_to_voxel(origin + grid @ axes.T).reshape(-1, 3).T
    crop_lo = np.maximum(body.min(0) - 2, 0)
    crop = np.zeros(tuple(np.minimum(body.max(0) + 3, mask.shape) - crop_lo), np.float32)
    crop[tuple((body - crop_lo).T)] = 1.0
    shape = grid.shape[:3]
    inside = ndimage.map_coordinates(crop, vox - crop_lo[:, None], order=1) >= 0.5
    inside = inside.reshape(shape)
    labels = ndimage.map_coordinates(np.asarray(mask.data), vox, order=0).reshape(shape)
    footprint = inside.any(-1)
    first = np.argmax(inside, -1)
    last = len(w) - 1 - np.argmax(inside[..., ::-1], -1)
    inferior, superior = w[first] - W_STEP_MM / 2, w[last] + W_STEP_MM / 2
    height = np.where(footprint, superior - inferior, 0.0)
    core = footprint & (height >= 0.6 * np.median(height[footprint]))
    # endplates of the core columns, carried outward to the rim and the fall-off zone
    idx = ndimage.distance_transform_edt(~core, return_distances=False, return_indices=True)
    inf_w, sup_w = (ndimage.gaussian_filter(f[tuple(idx)], 1.0) for f in (inferior, superior))
    other = (labels != 0) & (labels != vertebra_label)
    below, above = (
        _neighbour_endplate(other, w, edge, sign) for sign, edge in ((-1, inf_w), (1, sup_w))
    )
    dist = ndimage.distance_transform_edt(~footprint, sampling=COLUMN_STEP_MM)
    g = np.clip(1.0 - dist / max(falloff_mm, 1e-6), 0.0, 1.0)
    # no collapse where another vertebra reaches into this body's height range
    near = (w > inf_w[..., None] + W_STEP_MM) & (w < sup_w[..., None] - W_STEP_MM)
    intrude = ndimage.gaussian_filter((other & near).any(-1).astype(float), 1.0)
    g *= 1.0 - np.clip(2.0 * intrude, 0.0, 1.0)
    window = g * g * (3 - 2 * g)
    u_lo, u_hi = np.percentile(local[:, 0], [1, 99])
    mid = (np.abs(local[:, 0] - 0.5 * (u_lo + u_hi)) < 0.1 * (u_hi - u_lo) + 1.0) & (
        np.abs(local[:, 2] - np.median(local[:, 2])) < 3.0
    )
    v_lo, v_hi = np.percentile(local[mid if mid.sum() >= 5 else slice(None), 1], [0.5, 99.5])
    uu, vv = np.meshgrid(u, v, indexing="ij")
    fields = np.stack([inf_w, sup_w, below, above, window])
    return BodyColumns(
        vertebra_label=int(vertebra_label),
        origin_mm=origin,
        axes=axes,
        u_mm=u,
        v_mm=v,
        fields=fields.astype(np.float64),
        u_rel=(uu - 0.5 * (u_lo + u_hi)) / max(0.5 * (u_hi - u_lo), 1.0),
        v_rel=(vv - 0.5 * (v_lo + v_hi)) / max(0.5 * (v_hi - v_lo), 1.0),
    )


def _neighbour_endplate(
    other: np.ndarray, w: np.ndarray, edge: np.ndarray, sign: int
) -> np.ndarray:
    """w of the first other-label sample beyond ``edge`` in each column (``sign`` +1 above).

    Columns without one take the disc height of the nearest column that has one (smoothed);
    a found neighbour is never moved, and no disc is thinner than ``MIN_DISC_MM``.
    """
    beyond = other & (sign * (w - edge[..., None]) > 0)
    found = beyond.any(-1)
    pos = w[::sign][np.argmax(beyond[..., ::sign], -1)] - sign * W_STEP_MM / 2
    gap = sign * (pos - edge)
    if found.any():
        idx = ndimage.distance_transform_edt(~found, return_distances=False, return_indices=True)
        smooth = ndimage.gaussian_filter(gap[tuple(idx)], 1.5)
    else:
        smooth = np.full(edge.shape, DEFAULT_DISC_MM)
    gap = ndimage.minimum_filter(np.where(found, np.minimum(gap, smooth), smooth), size=3)
    gap = np.maximum(gap, MIN_DISC_MM)
    return edge + sign * gap

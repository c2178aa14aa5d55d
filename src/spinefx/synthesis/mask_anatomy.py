"""Anatomy derived from a vertebra label map: bodies, spinal canal, discs and the spine track.

Everything here is deterministic geometry on a label array with its voxel->world affine:

* the body of each vertebra is :func:`spinefx.morphometry.body_voxels`' estimate (the run of
  bone anterior to the spinal canal in the vertebra's local frame);
* the canal of a vertebra is the holes of its mask filled per axial slice (the bony ring),
  posterior to its body;
* a disc fills the gap between the facing endplates of consecutive bodies, column by column
  in the pair's own frame, inside both bodies' footprint;
* the *track* interpolates per-vertebra positions and sizes along world z, for the soft
  tissue around the spine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from spinefx.conventions import SPINE_ORDER
from spinefx.image import Image
from spinefx.morphometry import body_voxels
from spinefx.preprocessing.spine import frame_from_tangent, spine_frames

SACRUM = 26


def spine_order(label: int) -> int:
    """Cranial-to-caudal rank of any mask label (sacrum and coccyx after L6)."""
    return SPINE_ORDER.index(label) if label in SPINE_ORDER else len(SPINE_ORDER) + label


@dataclass(frozen=True, eq=False)
class VertebraGeometry:
    """Geometry of one labelled vertebra on a grid.

    Attributes:
        label: VerSe label.
        box: array slices of the vertebra (padded by one voxel, clipped to the grid).
        vertebra: boolean mask of the vertebra inside ``box``.
        body: boolean mask of its body inside ``box``.
        canal: boolean mask of its spinal-canal holes inside ``box``.
        centroid_mm: body centroid, world RAS+ mm.
        axes: local frame columns (x right, y anterior, z cranial), world.
        half_width_mm / half_depth_mm: body half extents along the frame's x / y.
        canal_mm: centre of the canal, world mm.
        posterior_reach_mm: distance from the body centroid back (world -y) to the most
            posterior voxel (spinous process tip).
        lateral_mm: largest lateral reach from the body centroid (transverse processes).
    """

    label: int
    box: tuple[slice, slice, slice]
    vertebra: np.ndarray
    body: np.ndarray
    canal: np.ndarray
    centroid_mm: np.ndarray
    axes: np.ndarray
    half_width_mm: float
    half_depth_mm: float
    canal_mm: np.ndarray
    posterior_reach_mm: float
    lateral_mm: float


def world_axes(affine: np.ndarray, shape: tuple[int, ...]) -> list[np.ndarray]:
    """World x, y, z of every voxel as float32 arrays broadcastable to ``shape``.

    Each array only spans the array axes it depends on (one for an axis-aligned grid).
    """
    out = []
    for row in range(3):
        value: np.ndarray = np.full([1, 1, 1], affine[row, 3], np.float32)
        for axis in range(3):
            if abs(affine[row, axis]) > 1e-9:
                idx = np.arange(shape[axis], dtype=np.float32) * np.float32(affine[row, axis])
                value = value + idx.reshape([-1 if a == axis else 1 for a in range(3)])
        out.append(value)
    return out


def snapped_affine(affine: np.ndarray) -> np.ndarray:
    """``affine`` with its axis directions snapped to the nearest world axes (same spacing and
    origin): the scene frame of the soft tissue, in which world z is one array axis."""
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    directions = affine[:3, :3] / spacing
    snapped = np.zeros((3, 3))
    for axis in np.argsort(-np.abs(directions).max(axis=0)):
        free = [r for r in range(3) if not snapped[r].any()]
        row = free[int(np.argmax(np.abs(directions[free, axis])))]
        snapped[row, axis] = np.sign(directions[row, axis]) or 1.0
    out = np.eye(4)
    out[:3, :3] = snapped * spacing
    out[:3, 3] = affine[:3, 3]
    return out


def axial_axis(affine: np.ndarray) -> int:
    """The array axis closest to world superior."""
    directions = affine[:3, :3] / np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    return int(np.argmax(np.abs(directions[2])))


def _box_image(data: np.ndarray, affine: np.ndarray, box: tuple[slice, ...]) -> Image:
    shift = np.eye(4)
    shift[:3, 3] = [b.start for b in box]
    return Image(data.astype(np.uint8), affine @ shift)


def _filled_per_slice(mask: np.ndarray, axis: int) -> np.ndarray:
    structure = np.zeros((3, 3, 3), bool)
    plane = [slice(None)] * 3
    plane[axis] = 1
    structure[tuple(plane)] = ndimage.generate_binary_structure(2, 1)
    return ndimage.binary_fill_holes(mask, structure=structure)


def analyse_vertebrae(labels: np.ndarray, affine: np.ndarray) -> list[VertebraGeometry]:
    """Body, canal and sizes of every labelled vertebra, cranial to caudal.

    Args:
        labels: VerSe label array ``(X, Y, Z)``.
        affine: its voxel->world RAS+ affine.
    """
    boxes = {}
    for index, box in enumerate(ndimage.find_objects(labels)):
        if box is not None:
            boxes[index + 1] = tuple(
                slice(max(b.start - 1, 0), min(b.stop + 1, n))
                for b, n in zip(box, labels.shape, strict=True)
            )
    order = sorted(boxes, key=spine_order)
    centroids = {}
    for label in order:
        box = boxes[label]
        ijk = np.argwhere(labels[box] == label) + [b.start for b in box]
        centroids[label] = (ijk @ affine[:3, :3].T + affine[:3, 3]).mean(0)
    spinal = {k: v for k, v in centroids.items() if k in SPINE_ORDER}
    frames = {k: f.axes for k, f in spine_frames(spinal)[1].items()} if spinal else {}
    axis = axial_axis(affine)
    out = []
    for label in order:
        box = boxes[label]
        vertebra = labels[box] == label
        axes = frames.get(label)
        if axes is None:  # sacrum / coccyx: the frame of the nearest vertebra
            near = min(frames, key=lambda k: np.linalg.norm(centroids[k] - centroids[label]))
            axes = (
                frames[near]
                if frames
                else frame_from_tangent(centroids[label], np.array([0, 0, 1.0]), label=1).axes
            )
        out.append(_geometry(label, box, vertebra, affine, axes, centroids[label], axis))
    return out


def _geometry(label, box, vertebra, affine, axes, centroid, axis) -> VertebraGeometry:
    sub = _box_image(vertebra, affine, box)
    if label in SPINE_ORDER:
        body_ijk, _ = body_voxels(sub, 1, subregion_mask=None, frame_axes=axes, origin_mm=centroid)
    else:
        body_ijk = np.argwhere(vertebra)
    body = np.zeros_like(vertebra)
    body[tuple(body_ijk.T)] = True
    body_world = sub.voxel_to_world(body_ijk)
    body_centroid = body_world.mean(0)
    local = (body_world - body_centroid) @ axes
    lo, hi = np.percentile(local[:, :2], [2, 98], axis=0)
    half_width, half_depth = (hi - lo) / 2
    holes = _filled_per_slice(vertebra, axis) & ~vertebra
    hole_ijk = np.argwhere(holes)
    hole_v = (sub.voxel_to_world(hole_ijk) - body_centroid) @ axes[:, 1]
    posterior_cut = lo[1] + 2.0  # canal holes lie behind the body's posterior wall
    canal = np.zeros_like(vertebra)
    keep = hole_ijk[hole_v < posterior_cut]
    canal[tuple(keep.T)] = True
    if len(keep) >= 10:
        canal_mm = sub.voxel_to_world(keep).mean(0)
    else:
        canal_mm = body_centroid - axes[:, 1] * (half_depth + 9.0)
    all_world = sub.voxel_to_world(np.argwhere(vertebra))
    lateral = np.abs((all_world - body_centroid) @ axes[:, 0])
    return VertebraGeometry(
        label=label,
        box=box,
        vertebra=vertebra,
        body=body,
        canal=canal,
        centroid_mm=body_centroid,
        axes=axes,
        half_width_mm=float(max(half_width, 5.0)),
        half_depth_mm=float(max(half_depth, 5.0)),
        canal_mm=canal_mm,
        posterior_reach_mm=float(body_centroid[1] - all_world[:, 1].min()),
        lateral_mm=float(np.percentile(lateral, 99)),
    )


def spine_track(vertebrae: list[VertebraGeometry], z_mm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-vertebra positions and sizes interpolated along world z (mm), each ``z_mm.shape``.

    Keys: ``x``/``y`` body centre, ``a``/``b`` body half width/depth, ``canal_x``/``canal_y``,
    ``posterior`` (smoothed spinous-process line), ``lateral``, ``lumbar`` (0 thoracic .. 1
    lumbar/sacral) and ``psoas`` (0 at L1 .. 1 at L5).
    """
    vs = sorted(vertebrae, key=lambda v: v.centroid_mm[2])
    z = np.array([v.centroid_mm[2] for v in vs])
    keep = np.concatenate([[True], np.diff(z) > 1e-3])
    vs, z = [v for v, k in zip(vs, keep, strict=True) if k], z[keep]
    values = {
        "x": [v.centroid_mm[0] for v in vs],
        "y": [v.centroid_mm[1] for v in vs],
        "a": [v.half_width_mm for v in vs],
        "b": [v.half_depth_mm for v in vs],
        "canal_x": [v.canal_mm[0] for v in vs],
        "canal_y": [v.canal_mm[1] for v in vs],
        "posterior": [v.centroid_mm[1] - v.posterior_reach_mm for v in vs],
        "lateral": [v.lateral_mm for v in vs],
        "lumbar": [float(v.label >= 20 and v.label != 28) for v in vs],
        "psoas": [float(np.clip((v.label - 20) / 4.0, 0, 1)) if v.label >= 20 else 0.0 for v in vs],
    }
    track = {k: np.interp(z_mm, z, np.asarray(val, float)) for k, val in values.items()}
    step = float(np.median(np.diff(z_mm))) if z_mm.size > 1 else 1.0
    track["posterior"] = ndimage.gaussian_filter1d(track["posterior"], 12.0 / max(step, 1e-3))
    return track


def adjacent(upper: int, lower: int) -> bool:
    """Whether two labels are neighbours along the spine (a disc lies between them)."""
    ru, rl = spine_order(upper), spine_order(lower)
    if rl - ru == 1:
        return True
    return (upper, lower) in {(19, 20), (24, SACRUM), (25, SACRUM)}


def disc_masks(
    labels: np.ndarray, affine: np.ndarray, vertebrae: list[VertebraGeometry]
) -> tuple[np.ndarray, np.ndarray]:
    """Disc and nucleus masks between consecutive bodies (boolean, ``labels.shape``)."""
    disc = np.zeros(labels.shape, bool)
    nucleus = np.zeros(labels.shape, bool)
    for upper, lower in zip(vertebrae[:-1], vertebrae[1:], strict=True):
        if not adjacent(upper.label, lower.label):
            continue
        if np.linalg.norm(upper.centroid_mm - lower.centroid_mm) > 70.0:
            continue
        _paint_disc(labels, affine, upper, lower, disc, nucleus)
    return disc, nucleus


def _body_ijk(geo: VertebraGeometry) -> np.ndarray:
    return np.argwhere(geo.body) + [b.start for b in geo.box]


def _paint_disc(labels, affine, upper, lower, disc, nucleus, bin_mm: float = 1.0) -> None:
    w = upper.centroid_mm - lower.centroid_mm
    w /= np.linalg.norm(w)
    frame = frame_from_tangent(lower.centroid_mm, w, label=1).axes
    mid = (upper.centroid_mm + lower.centroid_mm) / 2
    reach = 1.3 * max(upper.half_width_mm, lower.half_width_mm, upper.half_depth_mm) + 4
    n = int(np.ceil(2 * reach / bin_mm))

    def bins(local):
        return np.clip(np.floor((local[:, :2] + reach) / bin_mm).astype(int), 0, n - 1)

    top = np.full((n, n), -np.inf)
    bottom = np.full((n, n), np.inf)
    lo_ijk, up_ijk = _body_ijk(lower), _body_ijk(upper)
    to_local = affine[:3, :3].T @ frame  # voxel index -> local mm (plus an offset)
    offset = (affine[:3, 3] - mid) @ frame
    lo_local = lo_ijk @ to_local + offset
    up_local = up_ijk @ to_local + offset
    b = bins(lo_local)
    np.maximum.at(top, (b[:, 0], b[:, 1]), lo_local[:, 2])
    b = bins(up_local)
    np.minimum.at(bottom, (b[:, 0], b[:, 1]), up_local[:, 2])
    foot = np.isfinite(top) & np.isfinite(bottom) & (bottom - top < 25.0)
    foot = ndimage.binary_fill_holes(ndimage.binary_closing(foot, iterations=2))
    foot = ndimage.binary_opening(foot, iterations=1)
    if foot.sum() < 20:
        return
    defined = np.isfinite(top) & np.isfinite(bottom)
    _, nearest = ndimage.distance_transform_edt(~defined, return_indices=True)
    top, bottom = top[tuple(nearest)], bottom[tuple(nearest)]
    bulge = ndimage.binary_dilation(foot, iterations=1)
    depth = ndimage.distance_transform_edt(foot)
    core = depth > 0.45 * depth.max()
    both = np.concatenate([lo_ijk, up_ijk])
    lo, hi = both.min(0), both.max(0) + 1
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    ijk = np.argwhere(labels[box] == 0) + lo
    local = (ijk @ to_local + offset).astype(np.float32)
    b = bins(local)
    inside = bulge[b[:, 0], b[:, 1]] & np.all(np.abs(local[:, :2]) < reach - bin_mm, axis=1)
    inside &= (local[:, 2] > top[b[:, 0], b[:, 1]] - 0.5) & (
        local[:, 2] < bottom[b[:, 0], b[:, 1]] + 0.5
    )
    hit = ijk[inside]
    disc[tuple(hit.T)] = True
    nucleus[tuple(hit[core[b[inside, 0], b[inside, 1]]].T)] = True

"""Deforming a CT and its vertebra mask so that chosen vertebrae become Genant fractures.

A fracture moves the endplates of each column of the body (:mod:`spinefx.synthesis.body_columns`)
in by ``loss_field(u_rel, v_rel) * H`` (``superior_fraction`` of it at the superior endplate),
compresses the body between them linearly and stretches the two discs between the moved
endplates and the neighbours' endplates, which stay where they are. ``height_loss`` is thus a
fraction of the vertebra's own column heights. Wedge and biconcave losses are 0 at the
posterior wall (``loss_field``), so the posterior elements stay.

The map is a backward map: for each output voxel the source point in the input is found in
world mm, and the CT (linear) and the mask (nearest) are resampled there with one
``scipy.ndimage.map_coordinates`` call each for the whole volume, healthy vertebrae included.
Compressed bone is condensed (its HU raised in proportion to the compression, most below the
collapsed endplate), and stretched discs can get fresh noise so their grain is not drawn out.
Output images keep the input grid and affine exactly.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

from spinefx.conventions import spine_rank
from spinefx.errors import InputError
from spinefx.image import Image, apply_affine
from spinefx.synthesis.body_columns import COLUMN_STEP_MM, BodyColumns, body_columns
from spinefx.synthesis.fractures import FractureTruth, loss_field

CONDENSATION_BAND_MM = 4.0  # decay length of the condensed band below a collapsed endplate
CONDENSATION_CAP_HU = 400.0  # source HU above this is not condensed further (cortex)
SLAB_VOXELS = 2**21  # output voxels resampled at a time (bounds the memory on large scans)


def fracture_displacement(
    columns: BodyColumns, world_mm: np.ndarray, truth: FractureTruth
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward displacement of the fracture at output points, condensation and stretch.

    Args:
        columns: the vertebra's columns (:func:`body_columns`).
        world_mm: ``(N, 3)`` output points, world RAS+ mm (in the input's space).
        truth: the fracture (grade, shape, ``height_loss``, ``superior_fraction``).

    Returns:
        ``(displacement (N, 3) mm, gain (N,), stretch (N,))``: the source point is ``world_mm +
        displacement``; ``gain`` is the relative HU increase of condensed bone (0 outside the
        compressed body); ``stretch`` is ``1 - d(source w)/d(output w)`` where a disc is
        stretched (its noise grain is drawn out along the axis), else 0.
    """
    disp = np.zeros_like(world_mm)
    gain, stretch = np.zeros(len(world_mm)), np.zeros(len(world_mm))
    lam_grid = loss_field(columns.u_rel, columns.v_rel, truth) * columns.fields[4]
    if not np.any(lam_grid > 0):
        return disp, gain, stretch
    local = (world_mm - columns.origin_mm) @ columns.axes
    cu = (local[:, 0] - columns.u_mm[0]) / COLUMN_STEP_MM
    cv = (local[:, 1] - columns.v_mm[0]) / COLUMN_STEP_MM
    near = (
        (cu >= 0)
        & (cu <= len(columns.u_mm) - 1)
        & (cv >= 0)
        & (cv <= len(columns.v_mm) - 1)
        & (local[:, 2] >= columns.fields[2].min() - 1)
        & (local[:, 2] <= columns.fields[3].max() + 1)
    )
    at = np.stack([cu[near], cv[near]])
    fields = np.concatenate([columns.fields[:4], lam_grid[None]])
    b, c, a, d, lam = (ndimage.map_coordinates(f, at, order=1, mode="nearest") for f in fields)
    w = local[near, 2]
    f = float(np.clip(truth.superior_fraction, 0.0, 1.0))
    lam = np.clip(lam, 0.0, 0.95)
    height = np.maximum(c - b, 1.0)
    b2, c2 = b + (1 - f) * lam * height, c - f * lam * height
    lower, upper, in_body = (w >= a) & (w < b2), (w >= c2) & (w <= d), (w >= b2) & (w < c2)
    src = np.where(lower, a + (w - a) * (b - a) / (b2 - a), w)
    src = np.where(in_body, b + (w - b2) / (1 - lam), src)
    src = np.where(upper, c + (w - c2) * (d - c) / (d - c2), src)
    stretch[near] = np.where(
        lower, 1 - (b - a) / (b2 - a), np.where(upper, 1 - (d - c) / (d - c2), 0.0)
    )
    disp[near] = (src - w)[:, None] * columns.axes[:, 2]
    band = f * np.exp(-(c2 - w) / CONDENSATION_BAND_MM) + (1 - f) * np.exp(
        -(w - b2) / CONDENSATION_BAND_MM
    )
    gain[near] = np.where(in_body, lam / (1 - lam) * (0.5 + 1.5 * band), 0.0)
    return disp, gain, stretch


def _check_pair(ct: Image, mask: Image) -> None:
    if ct.shape != mask.shape or not np.allclose(ct.affine, mask.affine, atol=1e-3):
        raise InputError(
            f"the CT {ct} and the vertebra mask {mask} are not on one grid",
            fix="pass the mask made on this CT (same shape and affine)",
        )


def _check_not_adjacent(mask: Image, labels: list[int]) -> None:
    present = sorted((int(x) for x in np.unique(mask.data) if x != 0), key=_rank)
    order = {k: i for i, k in enumerate(present)}
    missing = sorted(set(labels) - set(order))
    if missing:
        raise InputError(f"vertebra labels {missing} are not in the mask", fix="pick present ones")
    chosen = sorted(labels, key=lambda k: order[k])
    for upper, lower in zip(chosen, chosen[1:], strict=False):
        if order[lower] - order[upper] == 1:
            raise ValueError(
                f"vertebrae {upper} and {lower} are adjacent in the mask; fracturing both would "
                "stretch the disc between them twice: fracture at most one of two neighbours"
            )


def _zone_box(
    columns: BodyColumns, grid_to_canvas: np.ndarray, shape: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` output voxel index box (hi exclusive) around a vertebra's deformation zone."""
    f = columns.fields
    box = [
        (columns.u_mm[0], columns.u_mm[-1]),
        (columns.v_mm[0], columns.v_mm[-1]),
        (f[2].min() - 1.0, f[3].max() + 1.0),
    ]
    corners = np.array([[u, v, w] for u in box[0] for v in box[1] for w in box[2]])
    world = columns.origin_mm + corners @ columns.axes.T
    ijk = apply_affine(np.linalg.inv(grid_to_canvas), world)
    lo = np.clip(np.floor(ijk.min(0)).astype(int) - 1, 0, np.asarray(shape))
    hi = np.clip(np.ceil(ijk.max(0)).astype(int) + 2, 0, np.asarray(shape))
    return lo, hi


def _box_in_slab(lo, hi, x0: int, x1: int, shape) -> np.ndarray:
    """Flat indices, within the slab ``x0:x1`` of the first axis, of the box ``lo:hi``."""
    start, stop = max(lo[0], x0), min(hi[0], x1)
    if start >= stop or np.any(hi[1:] <= lo[1:]):
        return np.zeros(0, int)
    ranges = np.meshgrid(
        np.arange(start, stop) - x0,
        *(np.arange(a, b) for a, b in zip(lo[1:], hi[1:], strict=True)),
        indexing="ij",
    )
    return np.ravel_multi_index(tuple(r.ravel() for r in ranges), (x1 - x0, *shape[1:]))


def _rank(label: int) -> int:
    try:
        return spine_rank(label)
    except ValueError:
        return 100 + int(label)  # sacrum / coccyx below the spine


def deform_scan(
    ct: Image,
    mask: Image,
    fractures: Mapping[int, FractureTruth],
    *,
    subregion_mask: Image | None = None,
    transform: np.ndarray | None = None,
    condensation: float = 1.0,
    falloff_mm: float = 6.0,
    axes: Mapping[int, np.ndarray] | None = None,
    noise: np.ndarray | None = None,
    columns: Mapping[int, BodyColumns] | None = None,
) -> tuple[Image, Image]:
    """Fracture the chosen vertebrae of a scan and resample the whole volume once.

    Args:
        ct: CT in HU, any orientation and spacing.
        mask: VerSe-id vertebra mask on the CT's grid.
        fractures: vertebra label -> its fracture; grade 0 entries (and every vertebra not
            named) get zero displacement but go through the same resampling.
        subregion_mask: VerSe sub-region mask on the grid (better body / arch split), optional.
        transform: ``(4, 4)`` world -> world map applied to every output point before the
            fractures (backward: output point x samples the fractured scan at ``transform @ x``),
            e.g. a small random rigid motion; None = identity.
        condensation: strength of the HU increase of compressed bone (0 = none).
        falloff_mm: distance outside the body's cross-section over which the loss fades out.
        axes: vertebra label -> its axis (world, cranial) to use instead of the spine tangent.
        noise: standard-normal field of the CT's shape, drawn by the caller; where a disc is
            stretched, ``noise_sd_hu(ct) * sqrt(stretch) * noise`` is added so its noise grain
            is not drawn out into streaks. None: no noise added.
        columns: label -> :func:`body_columns` already measured on this mask (re-runs).

    Returns:
        ``(ct, mask)`` on the input grid (same shape and affine): float32 HU and the mask dtype.

    Raises:
        InputError: when the CT and mask grids differ or a label is not in the mask.
        ValueError: when two fractured vertebrae are neighbours in the mask, or ``noise`` has
            another shape.
    """
    _check_pair(ct, mask)
    chosen = {int(k): t for k, t in fractures.items() if t.genant_grade > 0 and t.height_loss > 0}
    _check_not_adjacent(mask, list(chosen))
    if noise is not None and np.shape(noise) != ct.shape:
        raise ValueError(f"noise must have the CT's shape {ct.shape}, got {np.shape(noise)}")
    to_canvas = np.eye(4) if transform is None else np.asarray(transform, float)
    grid_to_canvas = to_canvas @ ct.affine  # output voxel -> input world mm
    to_voxel = np.linalg.inv(ct.affine)
    to_grid = np.eye(4) if transform is None else to_voxel @ grid_to_canvas
    zones = []
    for label, truth in chosen.items():
        axis = None if axes is None else axes.get(label)
        cols = (columns or {}).get(label) or body_columns(
            mask, label, subregion_mask=subregion_mask, axis=axis, falloff_mm=falloff_mm
        )
        zones.append((cols, truth, _zone_box(cols, grid_to_canvas, ct.shape)))
    sd = noise_sd_hu(ct) if noise is not None and zones else 0.0
    data, labels_in = np.asarray(ct.data, np.float32), np.asarray(mask.data)
    hu, labels = np.empty(ct.shape, np.float32), np.empty(mask.shape, mask.data.dtype)
    step = max(1, SLAB_VOXELS // (ct.shape[1] * ct.shape[2]))
    for x0 in range(0, ct.shape[0], step):  # slabs of the first axis bound the memory
        x1 = min(x0 + step, ct.shape[0])
        ijk = np.indices((x1 - x0, *ct.shape[1:]), dtype=np.float64).reshape(3, -1)
        ijk[0] += x0
        vox = to_grid[:3, :3] @ ijk + to_grid[:3, 3:]
        gain, stretch = np.zeros(ijk.shape[1]), np.zeros(ijk.shape[1])
        for cols, truth, (lo, hi) in zones:
            sel = _box_in_slab(lo, hi, x0, x1, ct.shape)
            if sel.size:
                world = (grid_to_canvas[:3, :3] @ ijk[:, sel]).T + grid_to_canvas[:3, 3]
                d, g, s = fracture_displacement(cols, world, truth)
                vox[:, sel] += to_voxel[:3, :3] @ d.T
                gain[sel] += g
                stretch[sel] += s
        slab = ndimage.map_coordinates(data, vox, order=1, mode="nearest")
        slab += condensation * gain * np.clip(slab, 0.0, CONDENSATION_CAP_HU)
        if sd > 0:
            slab += sd * np.sqrt(stretch) * np.asarray(noise[x0:x1], np.float32).reshape(-1)
        hu[x0:x1] = slab.reshape(x1 - x0, *ct.shape[1:])
        labels[x0:x1] = ndimage.map_coordinates(labels_in, vox, order=0, cval=0).reshape(
            x1 - x0, *ct.shape[1:]
        )
    return ct.with_data(hu), mask.with_data(labels)


def simulate_fracture(
    ct: Image,
    mask: Image,
    *,
    vertebra_label: int,
    truth: FractureTruth,
    axis: np.ndarray | None = None,
    subregion_mask: Image | None = None,
    condensation: float = 1.0,
    falloff_mm: float = 6.0,
    noise: np.ndarray | None = None,
) -> tuple[Image, Image]:
    """Deform one vertebra of a scan into ``truth``'s fracture (see :func:`deform_scan`).

    Args:
        ct / mask: CT in HU and its VerSe-id vertebra mask, on one grid.
        vertebra_label: the vertebra to fracture.
        truth: grade, shape, ``height_loss`` (fraction of the vertebra's own heights) and
            ``superior_fraction``; a grade-0 truth resamples the scan unchanged.
        axis: the local spine axis (world, cranial); default from the centroids and the wall.
        subregion_mask / condensation / falloff_mm / noise: as :func:`deform_scan`.

    Returns:
        ``(ct, mask)`` on the input grid, as :func:`deform_scan`.
    """
    return deform_scan(
        ct,
        mask,
        {int(vertebra_label): truth},
        subregion_mask=subregion_mask,
        condensation=condensation,
        falloff_mm=falloff_mm,
        axes=None if axis is None else {int(vertebra_label): axis},
        noise=noise,
    )


def noise_sd_hu(ct: Image) -> float:
    """Robust sd of the CT's voxel noise (HU) from first differences inside soft tissue."""
    a = np.moveaxis(np.asarray(ct.data, np.float32), int(np.argmin(ct.spacing_mm)), 0)
    soft = (a > -100) & (a < 150)
    soft = soft[1:] & soft[:-1]
    if soft.sum() < 100:
        return 0.0
    diff = a[1:] - a[:-1]
    d = diff[soft]
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


def random_rigid_transform(
    centre_mm: np.ndarray, rng: np.random.Generator, *, rotation_deg: float, shift_mm: float
) -> np.ndarray:
    """A small random rigid motion about ``centre_mm`` (world -> world ``(4, 4)``).

    Rotation angles about the three world axes are drawn uniformly in ``±rotation_deg``, the
    shift per axis in ``±shift_mm``.
    """
    ax, ay, az = np.radians(rng.uniform(-rotation_deg, rotation_deg, size=3))
    shift = rng.uniform(-shift_mm, shift_mm, size=3)
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    out = np.eye(4)
    out[:3, :3] = rz @ ry @ rx
    centre = np.asarray(centre_mm, float)
    out[:3, 3] = centre - out[:3, :3] @ centre + shift
    return out

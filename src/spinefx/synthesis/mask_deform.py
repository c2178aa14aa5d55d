"""Random affine + elastic deformation of a vertebra label map, sampled onto a supersampled grid.

The deformation is a backward map from output world points ``y`` to source world points
``x = c + M^-1 (y - c) + d(y)``: ``M = R(rotation) diag(scale)`` about the centre ``c`` of the
labelled region, and ``d`` a smooth elastic field (control-point vectors of norm
<= ``elastic_mm``, interpolated linearly, so ``|d| <= elastic_mm`` everywhere). A source point
``x`` therefore lands within ``max(scale) * elastic_mm`` of ``c + M (x - c)``.

Labels are sampled on the output grid and, for drawing the scene, on a *render grid*: the
output grid with thick axes split into sub-slices of about ``RENDER_SPACING_MM`` centred on the
output voxels. The foreground is interpolated linearly (smooth surfaces between thick slices);
the label of a foreground point is its nearest labelled source voxel. With the identity
deformation, sampling on the mask's own grid reproduces the mask exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from spinefx.image import Image

#: Thick output voxels are split into sub-slices about this thick (mm): voxels up to 1.5 mm
#: are rendered as they are, 1.5-2.5 mm ones as two sub-slices, 2.5-3.5 mm as three, ...
RENDER_SPACING_MM = 1.0


@dataclass(frozen=True)
class DeformParams:
    """One drawn deformation (world RAS+ axes).

    Attributes:
        rotation_deg: rotations about world x, y, z, degrees (applied x, then y, then z).
        scale: scale factors along world x, y, z.
        elastic_mm: bound on the elastic displacement, mm (0 = none).
        elastic_spacing_mm: spacing of the elastic control points, mm.
        field_seed: seed of the control-point vectors.
    """

    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    elastic_mm: float = 0.0
    elastic_spacing_mm: float = 50.0
    field_seed: int = 0

    @property
    def matrix(self) -> np.ndarray:
        """Forward linear part ``M`` (3x3): source offsets from the centre -> output offsets."""
        rotation = Rotation.from_euler("xyz", self.rotation_deg, degrees=True).as_matrix()
        return rotation @ np.diag(self.scale)

    def scaled(self, factor: float) -> DeformParams:
        """The same deformation with rotation, scale change and elastic amplitude times factor."""
        return DeformParams(
            rotation_deg=tuple(factor * r for r in self.rotation_deg),  # type: ignore[arg-type]
            scale=tuple(1.0 + factor * (s - 1.0) for s in self.scale),  # type: ignore[arg-type]
            elastic_mm=factor * self.elastic_mm,
            elastic_spacing_mm=self.elastic_spacing_mm,
            field_seed=self.field_seed,
        )

    def bound_mm(self) -> float:
        """How far a point may land from its affine image ``c + M (x - c)``, mm."""
        return float(max(self.scale) * self.elastic_mm)


def labelled_centre_mm(mask: Image) -> np.ndarray:
    """World centre (mm) of the bounding box of the labelled voxels: the deformation centre."""
    nonzero = [
        np.flatnonzero(np.asarray(mask.data).any(axis=tuple(o for o in range(3) if o != a)))
        for a in range(3)
    ]
    if any(len(n) == 0 for n in nonzero):
        return mask.voxel_to_world((np.asarray(mask.shape) - 1) / 2.0)
    return mask.voxel_to_world(np.array([(n[0] + n[-1]) / 2.0 for n in nonzero]))


def render_factors(spacing_mm: np.ndarray) -> tuple[int, int, int]:
    """Sub-slices per output voxel along each axis: ``round(spacing / RENDER_SPACING_MM)``."""
    ratio = np.asarray(spacing_mm, float) / RENDER_SPACING_MM
    return tuple(max(1, int(np.floor(r + 0.5))) for r in ratio)  # type: ignore[return-value]


def render_grid(
    shape: tuple[int, ...], affine: np.ndarray, factors: tuple[int, int, int]
) -> tuple[tuple[int, ...], np.ndarray]:
    """Shape and affine of the render grid: output voxel ``k`` is split into the sub-slices
    ``f k .. f k + f - 1``, centred on it."""
    f = np.asarray(factors, float)
    to_coarse = np.eye(4)
    to_coarse[:3, :3] = np.diag(1.0 / f)
    to_coarse[:3, 3] = -(f - 1) / (2 * f)
    fine = tuple(int(n * k) for n, k in zip(shape, factors, strict=True))
    return fine, np.asarray(affine, float) @ to_coarse


def at_output_voxels(fine: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """Values of a render-grid array at the output voxel centres: the centre sub-slice (odd
    factor) or the mean of the two middle ones (even factor)."""
    out = fine
    for axis, f in enumerate(factors):
        if f == 1:
            continue
        index = [slice(None)] * 3
        index[axis] = slice((f - 1) // 2, None, f)
        middle = out[tuple(index)]
        if f % 2 == 0:
            index[axis] = slice(f // 2, None, f)
            middle = 0.5 * (middle + out[tuple(index)])
        out = middle
    return np.ascontiguousarray(out)


def to_render_grid(coarse: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """Linear interpolation of an output-grid array at the render grid's sub-slice centres
    (inverse of :func:`at_output_voxels` for smooth fields), float32."""
    out = np.asarray(coarse, np.float32)
    for axis, f in enumerate(factors):
        if f == 1:
            continue
        n = out.shape[axis]
        pos = (np.arange(n * f) - (f - 1) / 2.0) / f
        lo = np.clip(np.floor(pos).astype(int), 0, n - 1)
        hi = np.minimum(lo + 1, n - 1)
        shape = [1, 1, 1]
        shape[axis] = -1
        w = np.clip(pos - lo, 0.0, 1.0).astype(np.float32).reshape(shape)
        out = np.take(out, lo, axis=axis) * (1 - w) + np.take(out, hi, axis=axis) * w
    return np.ascontiguousarray(out)


def elastic_field(
    shape: tuple[int, ...], affine: np.ndarray, params: DeformParams, region: tuple[slice, ...]
) -> np.ndarray | None:
    """Elastic displacement (world mm) at the voxels of ``region``, shape ``(3, *region)``.

    Control points form a lattice over the whole grid (``elastic_spacing_mm`` apart along each
    array axis), so the field at a voxel does not depend on ``region``. None when there is none.
    """
    if params.elastic_mm <= 0:
        return None
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    step_vox = np.maximum(params.elastic_spacing_mm / spacing, 1.0)
    n_ctrl = [int(np.ceil((n - 1) / s)) + 2 for n, s in zip(shape, step_vox, strict=True)]
    rng = np.random.default_rng(params.field_seed)
    ctrl = rng.standard_normal((3, *n_ctrl))
    ctrl = ndimage.gaussian_filter(ctrl, (0, 0.7, 0.7, 0.7), mode="wrap")
    ctrl *= 0.6 * params.elastic_mm / (ctrl.std() + 1e-9)
    norm = np.linalg.norm(ctrl, axis=0, keepdims=True)
    ctrl *= np.minimum(1.0, params.elastic_mm / np.maximum(norm, 1e-9))  # |d| <= elastic_mm
    out = ctrl.astype(np.float32)
    for axis in range(3):
        idx = np.arange(shape[axis], dtype=np.float64)[region[axis]] / step_vox[axis]
        k = np.minimum(np.floor(idx).astype(int), n_ctrl[axis] - 2)
        frac = (idx - k).astype(np.float32)
        weights = np.zeros((len(idx), n_ctrl[axis]), np.float32)
        weights[np.arange(len(idx)), k] = 1 - frac
        weights[np.arange(len(idx)), k + 1] = frac
        out = np.moveaxis(np.tensordot(weights, out, axes=([1], [axis + 1])), 0, axis + 1)
    return out


def _forward_box(
    box, mask: Image, shape, affine: np.ndarray, params: DeformParams, centre: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Target-grid index range (lo, hi) that a source box can reach under the deformation."""
    corners = np.array(
        [
            [b.stop - 1 if c else b.start for b, c in zip(box, bits, strict=True)]
            for bits in np.ndindex(2, 2, 2)
        ],
        float,
    )
    world = (mask.voxel_to_world(corners) - centre) @ params.matrix.T + centre
    ijk = (world - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    pad = params.bound_mm() / spacing + 2
    lo = np.maximum(np.floor(ijk.min(0) - pad), 0).astype(int)
    hi = np.minimum(np.ceil(ijk.max(0) + pad) + 1, shape).astype(int)
    return lo, hi


def _sample_region(
    mask: Image, shape, affine: np.ndarray, params: DeformParams, centre: np.ndarray
) -> tuple[tuple[slice, ...], np.ndarray] | None:
    """The target box that can receive labels and, inside it, the voxels that can: the union
    of every label's box mapped forward (a long curved spine fills little of its box)."""
    ranges = [
        _forward_box(box, mask, shape, affine, params, centre)
        for box in ndimage.find_objects(np.asarray(mask.data))
        if box is not None
    ]
    ranges = [(lo, hi) for lo, hi in ranges if np.all(hi > lo)]
    if not ranges:
        return None
    start = np.min([lo for lo, _ in ranges], axis=0)
    stop = np.max([hi for _, hi in ranges], axis=0)
    candidate = np.zeros(tuple(stop - start), bool)
    for lo, hi in ranges:
        candidate[tuple(slice(a, b) for a, b in zip(lo - start, hi - start, strict=True))] = True
    return tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True)), candidate


def sample_labels(
    mask: Image, shape: tuple[int, ...], affine: np.ndarray, params: DeformParams
) -> np.ndarray:
    """Deformed labels of ``mask`` on the grid (``shape``, ``affine``), dtype of the mask.

    Args:
        mask: source label map (any orientation and spacing).
        shape, affine: target grid (e.g. the render grid of :func:`render_grid`).
        params: the deformation; its centre is :func:`labelled_centre_mm` of ``mask``.
    """
    out = np.zeros(shape, np.asarray(mask.data).dtype)
    centre = labelled_centre_mm(mask)
    found = _sample_region(mask, shape, affine, params, centre)
    if found is None:
        return out
    region, candidate = found
    mask = _crop_to_labels(mask)
    labels = np.asarray(mask.data)
    # source index = S (M^-1 (A idx + t - c) + c + d) + s, with (S, s) the source's inverse
    inv_src = np.linalg.inv(mask.affine)
    lin = inv_src[:3, :3] @ np.linalg.inv(params.matrix)
    offset = lin @ (affine[:3, 3] - centre) + inv_src[:3, :3] @ centre + inv_src[:3, 3]
    full = lin @ affine[:3, :3]
    where = np.nonzero(candidate)
    index = [(w + r.start).astype(np.float32) for w, r in zip(where, region, strict=True)]
    disp = elastic_field(shape, affine, params, region)
    moved = [d[where] for d in disp] if disp is not None else None
    coords = np.empty((3, len(where[0])), np.float32)
    for r in range(3):
        c = np.full(len(where[0]), offset[r], np.float32)
        for k in range(3):
            if abs(full[r, k]) > 1e-9:
                c += np.float32(full[r, k]) * index[k]
            if moved is not None and abs(inv_src[r, k]) > 1e-9:
                c += np.float32(inv_src[r, k]) * moved[k]
        coords[r] = c
    fg = ndimage.map_coordinates(
        (labels > 0).astype(np.float32), coords, order=1, mode="grid-constant", cval=0.0
    )
    inside = fg > 0.5
    pts = coords[:, inside]
    nearest = ndimage.map_coordinates(labels, pts, order=0, mode="grid-constant", cval=0)
    missing = nearest == 0
    if missing.any():  # foreground by interpolation, background by rounding: nearest label
        grown = ndimage.grey_dilation(labels, size=(3, 3, 3))
        nearest[missing] = ndimage.map_coordinates(
            grown, pts[:, missing], order=0, mode="grid-constant", cval=0
        )
    hit = tuple(w[inside] + r.start for w, r in zip(where, region, strict=True))
    out[hit] = nearest
    return out


def _crop_to_labels(mask: Image, pad: int = 2) -> Image:
    from spinefx.preprocessing.resample import crop_to

    return crop_to(mask, np.asarray(mask.data) > 0, margin_vox=pad)


def _border_voxels(data: np.ndarray) -> np.ndarray:
    """Per label value, how many of its voxels lie on the six faces of the grid."""
    counts = np.zeros(256, np.int64)
    for axis in range(3):
        for index in (0, -1):
            face = np.take(data, index, axis=axis).ravel().astype(np.int64)
            counts += np.bincount(face, minlength=256)[:256]
    return counts


def labels_survive(
    before: np.ndarray,
    after: np.ndarray,
    *,
    min_fraction: float = 0.6,
    max_border_fraction: float = 0.01,
) -> bool:
    """Whether a deformation kept every label: none lost or new, each with >= ``min_fraction``
    of its voxels, and none that was clear of the grid border pushed into it (more than
    ``max_border_fraction`` of its voxels on the border; a process tip may touch it)."""
    n_before = np.bincount(before.ravel().astype(np.int64), minlength=256)[1:256]
    n_after = np.bincount(after.ravel().astype(np.int64), minlength=256)[1:256]
    present = n_before > 0
    if np.any((n_after > 0) & ~present) or np.any(
        n_after[present] < min_fraction * n_before[present]
    ):
        return False
    clear = present & (_border_voxels(before)[1:] == 0)
    return bool(np.all(_border_voxels(after)[1:][clear] <= max_border_fraction * n_after[clear]))

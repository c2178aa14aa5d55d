"""Spine-aligned vertebra patches and the way back from a patch to its scan.

A patch is an ordinary :class:`Image`: a cube of ``size_vox`` voxels of ``spacing_mm`` whose
axes are the vertebra frame's (x: patient right, y: anterior, z: cranial along the spine),
centred on the centroid, with a patch->world affine. Any map computed on a patch is put back
on the scan by resampling through those affines (:func:`patch_map_to_scan`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from spinefx.conventions import AIR_HU, is_cervical, level_name, spine_rank
from spinefx.image import Image
from spinefx.preprocessing.resample import resample_to_grid, resampled_dtype, sample_grid
from spinefx.preprocessing.sitk_bridge import image_to_sitk
from spinefx.preprocessing.spine import VertebraFrame, spine_frames


def patch_affine(frame: VertebraFrame, *, size_vox: int, spacing_mm: float) -> np.ndarray:
    """The ``(4, 4)`` patch->world affine of a cube centred on ``frame.origin_mm``.

    The cube's centre, continuous voxel index ``(size_vox - 1) / 2`` on every axis, maps to the
    centroid; voxel axis n runs along frame axis n in steps of ``spacing_mm``.
    """
    affine = np.eye(4)
    affine[:3, :3] = frame.axes * float(spacing_mm)
    centre = np.full(3, (int(size_vox) - 1) / 2.0)
    affine[:3, 3] = frame.origin_mm - affine[:3, :3] @ centre
    return affine


def extract_patch(
    scan: Image,
    frame: VertebraFrame,
    *,
    size_vox: int = 96,
    spacing_mm: float = 1.0,
    interpolation: str = "linear",
    fill_hu: float = AIR_HU,
    case_id: str | None = None,
) -> Image:
    """Extract the spine-aligned patch of one vertebra from a CT scan.

    Args:
        scan: CT in HU, any orientation and spacing.
        frame: the vertebra's local frame (see :func:`spinefx.preprocessing.spine_frames`).
        size_vox: edge length of the cubic patch in voxels.
        spacing_mm: patch voxel size in mm.
        interpolation: ``"linear"``, ``"nearest"`` or ``"bspline"``.
        fill_hu: value outside the scan (air).
        case_id: stored in ``meta`` when given.

    Returns:
        float32 HU patch of shape ``(size_vox,) * 3`` with the patch->world affine; ``meta``
        holds ``out_of_view_fraction`` (share of patch voxel centres outside the scan grid),
        ``vertebra_label``, ``level`` and ``case_id``.
    """
    return _extract(
        image_to_sitk(scan), scan, frame, size_vox, spacing_mm, interpolation, fill_hu, case_id
    )


def extract_vertebra_patches(
    scan: Image,
    centroids: Mapping[int, np.ndarray],
    *,
    size_vox: int = 96,
    spacing_mm: float = 1.0,
    include_cervical: bool = False,
    interpolation: str = "linear",
    case_id: str | None = None,
) -> dict[int, Image]:
    """Extract the patch of every vertebra of ``centroids`` (the scan is converted once).

    All centroids (cervical included) shape the spine curve; cervical patches are returned only
    with ``include_cervical``.

    Args:
        scan: CT in HU.
        centroids: VerSe label -> centroid in world RAS+ mm.

    Returns:
        label -> patch (see :func:`extract_patch`), in the order of ``centroids``' labels along
        the spine, cranial first.
    """
    _, frames = spine_frames(centroids)
    source = image_to_sitk(scan)
    patches = {}
    for label in sorted(frames, key=spine_rank):
        if is_cervical(label) and not include_cervical:
            continue
        patches[label] = _extract(
            source, scan, frames[label], size_vox, spacing_mm, interpolation, AIR_HU, case_id
        )
    return patches


def patch_map_to_scan(patch_map: Image, scan: Image, *, interpolation: str = "linear") -> Image:
    """Put a map computed on a patch (any :class:`Image`) back onto the scan's voxel grid.

    Scan voxels whose centre lies outside the patch get 0. Only the scan voxels inside the
    patch's bounding box are interpolated, so the cost is that of the patch, not of the scan.

    Returns:
        an image on ``scan``'s grid (shape and affine), float32 for linear interpolation.
    """
    corners = np.array(np.meshgrid(*[[-0.5, n - 0.5] for n in patch_map.shape], indexing="ij"))
    corners_scan = scan.world_to_voxel(patch_map.voxel_to_world(corners.reshape(3, -1).T))
    start = np.clip(np.floor(corners_scan.min(0)).astype(int), 0, np.array(scan.shape))
    stop = np.clip(np.ceil(corners_scan.max(0)).astype(int) + 1, 0, np.array(scan.shape))
    dtype = resampled_dtype(np.asarray(patch_map.data).dtype, interpolation)
    out = np.zeros(scan.shape, dtype=dtype)
    if np.all(stop > start):
        box_affine = scan.affine.copy()
        box_affine[:3, 3] = scan.voxel_to_world(start.astype(float))
        box = resample_to_grid(
            patch_map,
            shape=tuple(stop - start),
            affine=box_affine,
            interpolation=interpolation,
            fill_value=0.0,
        )
        out[tuple(slice(a, b) for a, b in zip(start, stop, strict=True))] = box.data
    return Image(out, scan.affine.copy(), dict(patch_map.meta))


def out_of_view_fraction(scan: Image, affine: np.ndarray, shape: tuple[int, int, int]) -> float:
    """Fraction of the voxel centres of a grid (``shape``, ``affine``) outside ``scan``'s grid.

    A centre is inside when its continuous scan index lies within ``[-0.5, n - 0.5]`` on every
    axis (the scan's voxel cells). Computed per grid row: along the first grid axis the scan
    index is linear, so the inside part of each row is one interval, found analytically
    (O(Y*Z) instead of O(X*Y*Z) work; hand-written because no library counts this).
    """
    m = np.linalg.inv(scan.affine) @ np.asarray(affine, dtype=np.float64)
    nx, ny, nz = (int(s) for s in shape)
    j = np.arange(ny, dtype=np.float64)[:, None]
    k = np.arange(nz, dtype=np.float64)[None, :]
    lo = np.zeros((ny, nz))
    hi = np.full((ny, nz), nx - 1.0)
    for a, n in enumerate(scan.shape):
        base = m[a, 3] + m[a, 1] * j + m[a, 2] * k  # scan index a at grid index i = 0
        step = m[a, 0]
        low, high = -0.5 - base, n - 0.5 - base  # need low <= step * i <= high
        if abs(step) < 1e-12:
            empty = (low > 0) | (high < 0)
            hi = np.where(empty, -1.0, hi)
            continue
        first, last = (low / step, high / step) if step > 0 else (high / step, low / step)
        lo = np.maximum(lo, first)
        hi = np.minimum(hi, last)
    counts = np.clip(np.floor(hi + 1e-9) - np.ceil(lo - 1e-9) + 1, 0, None)
    return float(1.0 - counts.sum() / (nx * ny * nz))


def _extract(source, scan, frame, size_vox, spacing_mm, interpolation, fill_hu, case_id) -> Image:
    shape = (int(size_vox),) * 3
    affine = patch_affine(frame, size_vox=size_vox, spacing_mm=spacing_mm)
    data = sample_grid(
        source,
        shape=shape,
        affine=affine,
        interpolation=interpolation,
        fill_value=fill_hu,
        output_dtype=np.dtype(np.float32),
    )
    meta = {
        "out_of_view_fraction": out_of_view_fraction(scan, affine, shape),
        "vertebra_label": frame.vertebra_label,
        "level": level_name(frame.vertebra_label),
    }
    if case_id is not None:
        meta["case_id"] = case_id
    return Image(data, affine, meta)

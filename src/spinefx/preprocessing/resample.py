"""Resampling onto another voxel grid (new spacing, another image's grid, any affine).

One engine for every case: SimpleITK's resampler, given the output grid as a shape plus a
RAS+ voxel->world affine. Voxel centres of the output grid are mapped to world mm and the input
is interpolated there, so world positions are preserved by construction. Resampling back onto
the original grid (``resample_like(out, original)``) is the inverse, up to interpolation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spinefx.errors import InputError
from spinefx.image import Image
from spinefx.preprocessing.sitk_bridge import affine_to_sitk_geometry, image_to_sitk

INTERPOLATIONS = ("linear", "nearest", "bspline")


def resample_to_spacing(
    image: Image,
    spacing_mm: float | Sequence[float] = 1.0,
    *,
    interpolation: str = "linear",
    fill_value: float = 0.0,
) -> Image:
    """Resample ``image`` to voxels of ``spacing_mm``, covering the same physical extent.

    The axes keep their directions; the new grid is centred on the old one and has
    ``round(extent / spacing)`` voxels per axis, so e.g. 1 mm -> 0.5 mm -> 1 mm returns to
    exactly the original grid.

    Args:
        image: input image (any orientation).
        spacing_mm: new voxel size in mm, one value or one per array axis.
        interpolation: ``"linear"`` (CT), ``"nearest"`` (label maps, keeps dtype) or
            ``"bspline"`` (cubic).
        fill_value: value of output voxels whose centre maps outside the input grid.

    Returns:
        The resampled image (float32 for linear/bspline, input dtype for nearest).
    """
    new_spacing = _spacing_triplet(spacing_mm)
    old_spacing = image.spacing_mm
    shape_in = np.asarray(image.shape)
    shape_out = np.maximum(1, np.round(shape_in * old_spacing / new_spacing)).astype(int)
    directions = image.affine[:3, :3] / old_spacing
    centre = image.voxel_to_world((shape_in - 1) / 2.0)
    affine = np.eye(4)
    affine[:3, :3] = directions * new_spacing
    affine[:3, 3] = centre - affine[:3, :3] @ ((shape_out - 1) / 2.0)
    return resample_to_grid(
        image,
        shape=tuple(shape_out),
        affine=affine,
        interpolation=interpolation,
        fill_value=fill_value,
    )


def resample_like(
    image: Image,
    reference: Image,
    *,
    interpolation: str = "linear",
    fill_value: float = 0.0,
) -> Image:
    """Resample ``image`` onto the voxel grid (shape and affine) of ``reference``."""
    return resample_to_grid(
        image,
        shape=reference.shape,
        affine=reference.affine,
        interpolation=interpolation,
        fill_value=fill_value,
    )


def resample_to_grid(
    image: Image,
    *,
    shape: Sequence[int],
    affine: np.ndarray,
    interpolation: str = "linear",
    fill_value: float = 0.0,
) -> Image:
    """Resample ``image`` onto the grid of ``shape`` voxels whose voxel->world map is ``affine``.

    Args:
        image: input image.
        shape: output array shape ``(X, Y, Z)``.
        affine: ``(4, 4)`` RAS+ voxel->world affine of the output grid (may be oblique).
        interpolation: ``"linear"``, ``"nearest"`` or ``"bspline"``.
        fill_value: value where the output voxel centre falls outside the input grid.

    Returns:
        An :class:`Image` of ``shape`` with ``affine`` and the input's meta.
    """
    data = sample_grid(
        image_to_sitk(image),
        shape=shape,
        affine=affine,
        interpolation=interpolation,
        fill_value=fill_value,
        output_dtype=resampled_dtype(np.asarray(image.data).dtype, interpolation),
    )
    return Image(data, affine, dict(image.meta))


def sample_grid(
    source,
    *,
    shape: Sequence[int],
    affine: np.ndarray,
    interpolation: str,
    fill_value: float,
    output_dtype: np.dtype,
) -> np.ndarray:
    """Interpolate a ``SimpleITK.Image`` at the voxel centres of a RAS+ grid.

    The low-level engine behind every resampling in this package; callers that sample many
    grids from one volume (patch extraction) convert the volume to SimpleITK once.

    Returns:
        array of ``shape`` (indexed ``(x, y, z)``) and ``output_dtype``.
    """
    import SimpleITK as sitk

    mode = _interpolator(interpolation)
    origin, spacing, direction = affine_to_sitk_geometry(affine)
    size = [int(s) for s in shape]
    if len(size) != 3 or min(size) < 1:
        raise InputError(f"invalid output shape {tuple(shape)}", fix="give three sizes >= 1")
    pixel = sitk.GetImageFromArray(np.zeros((1, 1, 1), dtype=output_dtype)).GetPixelID()
    out = sitk.Resample(
        source,
        size,
        sitk.Transform(),
        mode,
        origin,
        spacing,
        direction,
        float(fill_value),
        pixel,
    )
    data = sitk.GetArrayFromImage(out).transpose(2, 1, 0)
    return data.astype(output_dtype, copy=False)


def _interpolator(interpolation: str) -> int:
    import SimpleITK as sitk

    table = {
        "linear": sitk.sitkLinear,
        "nearest": sitk.sitkNearestNeighbor,
        "bspline": sitk.sitkBSpline,
    }
    if interpolation not in table:
        raise InputError(
            f"unknown interpolation {interpolation!r}", fix=f"use one of {INTERPOLATIONS}"
        )
    return table[interpolation]


def resampled_dtype(dtype: np.dtype, interpolation: str) -> np.dtype:
    """dtype of a resampled image: input dtype for nearest, float32 (float64 kept) otherwise."""
    if interpolation == "nearest":
        if dtype == np.dtype(bool):
            return np.dtype(np.uint8)
        return np.dtype(np.float32) if dtype == np.dtype(np.float16) else dtype
    return np.dtype(np.float64) if dtype == np.dtype(np.float64) else np.dtype(np.float32)


def _spacing_triplet(spacing_mm: float | Sequence[float]) -> np.ndarray:
    spacing = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,)).copy()
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(
            f"invalid spacing_mm {spacing_mm!r}", fix="give a positive voxel size in mm"
        )
    return spacing

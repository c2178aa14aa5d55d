"""The one conversion between :class:`spinefx.image.Image` (RAS+) and SimpleITK images (LPS).

SimpleITK describes geometry by origin, spacing and a direction matrix in LPS millimetres and
stores arrays as ``(z, y, x)``; spinefx uses a single RAS+ affine and ``(x, y, z)`` arrays.
The voxel index ``(i, j, k)`` is the same in both; only the world axes x and y flip sign.
"""

from __future__ import annotations

import numpy as np

from spinefx.image import Image

#: RAS <-> LPS (its own inverse).
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])

#: numpy dtypes SimpleITK cannot hold, and what to hold them as.
_SITK_DTYPE_FIX = {np.dtype(bool): np.uint8, np.dtype(np.float16): np.float32}


def affine_to_sitk_geometry(
    affine: np.ndarray,
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """Split a RAS+ voxel->world affine into SimpleITK ``(origin, spacing, direction)`` (LPS)."""
    linear = RAS_TO_LPS @ np.asarray(affine, dtype=np.float64)[:3, :3]
    spacing = np.sqrt((linear**2).sum(axis=0))
    direction = linear / spacing
    origin = RAS_TO_LPS @ np.asarray(affine, dtype=np.float64)[:3, 3]
    return tuple(origin.tolist()), tuple(spacing.tolist()), tuple(direction.ravel().tolist())


def sitk_geometry_to_affine(origin, spacing, direction) -> np.ndarray:
    """Inverse of :func:`affine_to_sitk_geometry`: a ``(4, 4)`` RAS+ affine."""
    linear = np.asarray(direction, dtype=np.float64).reshape(3, 3) * np.asarray(spacing)
    affine = np.eye(4)
    affine[:3, :3] = RAS_TO_LPS @ linear
    affine[:3, 3] = RAS_TO_LPS @ np.asarray(origin, dtype=np.float64)
    return affine


def image_to_sitk(image: Image):
    """Copy an :class:`Image` into a ``SimpleITK.Image`` with the same world geometry."""
    import SimpleITK as sitk

    data = np.asarray(image.data)
    if data.dtype in _SITK_DTYPE_FIX:
        data = data.astype(_SITK_DTYPE_FIX[data.dtype])
    out = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    origin, spacing, direction = affine_to_sitk_geometry(image.affine)
    out.SetOrigin(origin)
    out.SetSpacing(spacing)
    out.SetDirection(direction)
    return out


def sitk_to_image(sitk_image, **meta) -> Image:
    """Wrap a 3-D ``SimpleITK.Image`` as an :class:`Image` (array transposed to ``(x, y, z)``)."""
    import SimpleITK as sitk

    data = sitk.GetArrayFromImage(sitk_image).transpose(2, 1, 0)
    affine = sitk_geometry_to_affine(
        sitk_image.GetOrigin(), sitk_image.GetSpacing(), sitk_image.GetDirection()
    )
    return Image(data, affine, meta)

"""The one image value type of spinefx: voxel data plus its 4x4 voxel->world affine.

An image never travels without its affine. World space is RAS+ mm, arrays are indexed
``(x, y, z)`` (see :mod:`spinefx.conventions`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spinefx.errors import GeometryError


@dataclass(frozen=True, eq=False)
class Image:
    """A 3-D image in RAS+ world millimetres.

    Attributes:
        data: array of shape ``(X, Y, Z)`` indexed in voxel order.
        affine: ``(4, 4)`` float64 map from voxel index ``(i, j, k, 1)`` to RAS+ mm.
        meta: free-form provenance (source path, modality, ...); never geometry.
    """

    data: np.ndarray
    affine: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise GeometryError(f"affine must be 4x4, got shape {affine.shape}")
        if not np.all(np.isfinite(affine)):
            raise GeometryError("affine contains NaN or infinite values")
        if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise GeometryError("affine is singular (zero voxel size or collinear axes)")
        if np.asarray(self.data).ndim != 3:
            raise GeometryError(f"image data must be 3-D, got shape {np.shape(self.data)}")
        object.__setattr__(self, "affine", affine)

    # --- derived geometry -------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    @property
    def spacing_mm(self) -> np.ndarray:
        """Voxel size along each array axis in mm, shape ``(3,)``."""
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    @property
    def orientation(self) -> str:
        """Axis codes of the array axes, e.g. ``"RAS"`` or ``"PIR"`` (nibabel convention)."""
        import nibabel as nib

        return "".join(nib.aff2axcodes(self.affine))

    @property
    def extent_mm(self) -> np.ndarray:
        """Physical size of the field of view along each array axis, in mm."""
        return self.spacing_mm * np.asarray(self.shape)

    def voxel_to_world(self, ijk: np.ndarray) -> np.ndarray:
        """Map voxel indices ``(..., 3)`` to RAS+ mm ``(..., 3)``."""
        return apply_affine(self.affine, ijk)

    def world_to_voxel(self, xyz: np.ndarray) -> np.ndarray:
        """Map RAS+ mm ``(..., 3)`` to continuous voxel indices ``(..., 3)``."""
        return apply_affine(np.linalg.inv(self.affine), xyz)

    def contains_world(self, xyz: np.ndarray, *, margin_vox: float = 0.5) -> np.ndarray:
        """Whether world points lie inside the voxel grid (within ``margin_vox`` of the edge)."""
        ijk = self.world_to_voxel(np.asarray(xyz, dtype=float))
        upper = np.asarray(self.shape) - 1 + margin_vox
        return np.all((ijk >= -margin_vox) & (ijk <= upper), axis=-1)

    def with_data(self, data: np.ndarray, **meta) -> Image:
        """A new image on the same grid (same affine) holding ``data``."""
        data = np.asarray(data)
        if data.shape[:3] != self.data.shape[:3]:
            raise GeometryError(
                f"new data shape {data.shape} does not match the grid {self.data.shape}"
            )
        return Image(data, self.affine.copy(), {**self.meta, **meta})

    def __repr__(self) -> str:
        sp = "x".join(f"{s:.3g}" for s in self.spacing_mm)
        return (
            f"Image(shape={self.shape}, spacing_mm={sp}, orientation={self.orientation}, "
            f"dtype={self.data.dtype})"
        )


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 affine to points of shape ``(..., 3)``."""
    points = np.asarray(points, dtype=np.float64)
    return points @ affine[:3, :3].T + affine[:3, 3]

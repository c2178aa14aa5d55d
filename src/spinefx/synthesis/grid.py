"""The isotropic build grid of the generator and the local-frame coordinates inside it.

Written by hand: the generator evaluates implicit shapes in each vertebra's own frame, which
needs the world position of every voxel of a sub-box; no library offers this directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class BuildGrid:
    """An axis-aligned RAS grid: ``world = origin_mm + spacing_mm * (i, j, k)``.

    Attributes:
        origin_mm: world position of voxel (0, 0, 0), shape ``(3,)``.
        spacing_mm: isotropic voxel size, mm.
        shape: number of voxels along x, y, z.
    """

    origin_mm: np.ndarray
    spacing_mm: float
    shape: tuple[int, int, int]

    @property
    def affine(self) -> np.ndarray:
        affine = np.diag([self.spacing_mm] * 3 + [1.0])
        affine[:3, 3] = self.origin_mm
        return affine

    def axis_mm(self, axis: int) -> np.ndarray:
        """World coordinates of the voxel centres along one axis, shape ``(shape[axis],)``."""
        return self.origin_mm[axis] + self.spacing_mm * np.arange(self.shape[axis])

    def box_around(
        self, origin_mm: np.ndarray, frame: np.ndarray, lower: np.ndarray, upper: np.ndarray
    ) -> tuple[slice, slice, slice] | None:
        """Voxel slices covering a box given in a local frame, or None if it misses the grid.

        Args:
            origin_mm: local-frame origin, world mm.
            frame: ``(3, 3)`` columns of the local axes.
            lower, upper: box corners in local mm, shape ``(3,)``.
        """
        corners = np.array(
            [
                [x, y, z]
                for x in (lower[0], upper[0])
                for y in (lower[1], upper[1])
                for z in (lower[2], upper[2])
            ]
        )
        world = origin_mm + corners @ frame.T
        lo = np.floor((world.min(0) - self.origin_mm) / self.spacing_mm).astype(int)
        hi = np.ceil((world.max(0) - self.origin_mm) / self.spacing_mm).astype(int) + 1
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, self.shape)
        if np.any(hi <= lo):
            return None
        return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))  # type: ignore[return-value]

    def local_coordinates(
        self, box: tuple[slice, slice, slice], origin_mm: np.ndarray, frame: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Local (u, v, w) mm of every voxel of ``box``, each of the box's shape (float32)."""
        return self.local_box(box, origin_mm, frame).uvw()

    def local_box(
        self, box: tuple[slice, slice, slice], origin_mm: np.ndarray, frame: np.ndarray
    ) -> LocalBox:
        """The voxels of ``box`` seen from a local frame (local coordinates on demand)."""
        axes = tuple((self.axis_mm(a)[box[a]] - origin_mm[a]).astype(np.float32) for a in range(3))
        return LocalBox(axes=axes, frame=np.asarray(frame, np.float32))  # type: ignore[arg-type]


@dataclass(frozen=True)
class LocalBox:
    """A voxel box of the build grid and a local frame: local (u, v, w) mm of any sub-box.

    Shapes drawn in a local frame are usually much smaller than the box that holds all of a
    vertebra; evaluating each one only on the sub-box its local bounds cover saves most of
    the arithmetic.

    Attributes:
        axes: world offsets (mm) of the box's voxel centres from the frame origin, along x, y, z.
        frame: ``(3, 3)`` float32 columns of the local axes.
    """

    axes: tuple[np.ndarray, np.ndarray, np.ndarray]
    frame: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(len(a) for a in self.axes)  # type: ignore[return-value]

    def uvw(
        self, sub: tuple[slice, slice, slice] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Local (u, v, w) mm of every voxel of ``sub`` (default: the whole box), float32."""
        sub = sub or (slice(None),) * 3
        x = self.axes[0][sub[0]][:, None, None]
        y = self.axes[1][sub[1]][None, :, None]
        z = self.axes[2][sub[2]][None, None, :]
        f = self.frame
        return tuple(f[0, c] * x + f[1, c] * y + f[2, c] * z for c in range(3))  # type: ignore[return-value]

    def uvw_at(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Local (u, v, w) mm of the voxels where ``mask`` (of the box's shape) is true, 1-D."""
        i, j, k = np.nonzero(mask)
        x, y, z = self.axes[0][i], self.axes[1][j], self.axes[2][k]
        f = self.frame
        return tuple(f[0, c] * x + f[1, c] * y + f[2, c] * z for c in range(3))  # type: ignore[return-value]

    def sub_box(self, lower: np.ndarray, upper: np.ndarray) -> tuple[slice, slice, slice] | None:
        """Slices of this box covering the local-frame box ``lower..upper`` (mm), or None."""
        corners = np.array(np.meshgrid(*zip(lower, upper, strict=True), indexing="ij"))
        world = self.frame @ corners.reshape(3, -1)
        out = []
        for axis, values in zip(self.axes, world, strict=True):
            lo = int(np.searchsorted(axis, values.min(), side="left"))
            hi = int(np.searchsorted(axis, values.max(), side="right"))
            if hi <= lo:
                return None
            out.append(slice(lo, hi))
        return tuple(out)  # type: ignore[return-value]


def smooth_noise(
    shape: tuple[int, ...], rng: np.random.Generator, *, scale_vox: float | tuple[float, ...]
) -> np.ndarray:
    """Unit-variance-ish noise varying over ``scale_vox`` voxels (coarse noise, upsampled).

    Cheap for large volumes: the noise is drawn on a grid ``scale_vox`` times coarser and
    interpolated linearly, one axis at a time as a matrix product (much faster than
    ``scipy.ndimage.zoom`` or Gaussian-filtering a full-size field). ``scale_vox`` may give
    one scale per axis (an anisotropic field).
    """
    scales = np.broadcast_to(np.asarray(scale_vox, float), (len(shape),))
    coarse_shape = tuple(int(np.ceil(s / c)) + 2 for s, c in zip(shape, scales, strict=True))
    out = rng.standard_normal(coarse_shape).astype(np.float32)
    out = ndimage.gaussian_filter(out, 0.8)
    out /= out.std() + 1e-6
    for axis, (n, c) in enumerate(zip(shape, coarse_shape, strict=True)):
        pos = np.arange(n, dtype=np.float32) / float(scales[axis])
        k = np.floor(pos).astype(int)
        frac = pos - k
        weights = np.zeros((n, c), np.float32)
        weights[np.arange(n), k] = 1 - frac
        weights[np.arange(n), k + 1] = frac
        out = np.moveaxis(np.tensordot(weights, out, axes=([1], [axis])), 0, axis)
    return np.ascontiguousarray(out)

"""Where whole-scan screening runs: a spine region found by a cheap pass before the network.

The voxel classifier's tiles are independent (valid convolutions, no blending), so skipping a
tile changes nothing inside the tiles that run. The region is built on a coarse grid
(``COARSE_MM``) and read back on the network's grid:

* with vertebra centroids (given, or from a mask): a capsule of ``TUBE_RADIUS_MM`` around the
  polyline through them (its round ends reach the discs and half of the next vertebrae);
* without: every place within ``BONE_MARGIN_MM`` of bone (>= ``BONE_HU``): the vertebrae are
  bone, organs, fat and muscle far from bone are not (saves most of an abdominal field of view,
  little in the chest where ribs are everywhere).

Outside the region the maps are background (probability 1), and the patient-level fracture
component can no longer come from outside the spine.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from spinefx.conventions import spine_rank
from spinefx.image import Image

COARSE_MM = 4.0
TUBE_RADIUS_MM = 45.0  # a lumbar body is ~50 mm wide, the canal and posterior arch ~40 mm deep
END_MARGIN_MM = 0.0  # the capsule's caps already reach 45 mm past the first and last centroid
BONE_HU = 200.0
BONE_MARGIN_MM = 20.0


def spine_region(hu: Image, centroids: Mapping[int, np.ndarray] | None = None) -> np.ndarray:
    """Boolean mask on ``hu``'s grid of where the vertebrae can be.

    Args:
        hu: the network's view in HU (any isotropic grid; ``NetworkView.hu_image()``).
        centroids: VerSe label -> world RAS+ mm; None: the bone-based region.

    Returns:
        ``bool`` array of ``hu.shape``.
    """
    from scipy import ndimage

    spacing = float(np.mean(hu.spacing_mm))
    step = max(1, int(round(COARSE_MM / spacing)))
    shape = np.asarray(hu.shape)
    coarse_shape = -(-shape // step)
    if centroids:
        seed = np.zeros(coarse_shape, dtype=bool)
        points = _extended_polyline(centroids)
        # coarse voxel of each point sampled every 1 mm along the polyline
        vox = np.round(hu.world_to_voxel(points) / step).astype(int)
        inside = np.all((vox >= 0) & (vox < coarse_shape), axis=1)
        seed[tuple(vox[inside].T)] = True
        if not seed.any():
            return np.zeros(hu.shape, dtype=bool)
        radius = TUBE_RADIUS_MM / (step * spacing)
    else:
        data = np.asarray(hu.data)
        padded = np.pad(
            data,
            [(0, int(c * step - s)) for c, s in zip(coarse_shape, shape, strict=True)],
            constant_values=-1000,
        )
        blocks = padded.reshape(coarse_shape[0], step, coarse_shape[1], step, coarse_shape[2], step)
        seed = blocks.max(axis=(1, 3, 5)) >= BONE_HU
        if not seed.any():
            return np.zeros(hu.shape, dtype=bool)
        radius = BONE_MARGIN_MM / (step * spacing)
    coarse = ndimage.distance_transform_edt(~seed) <= radius
    index = [np.arange(n) // step for n in shape]
    return coarse[np.ix_(*index)]


def _extended_polyline(centroids: Mapping[int, np.ndarray]) -> np.ndarray:
    """Points every 1 mm along the centroids' polyline, cranial to caudal, with end margins."""
    ordered = np.asarray(
        [np.asarray(centroids[k], float) for k in sorted(centroids, key=spine_rank)]
    )
    if len(ordered) == 1:
        ends = [ordered[0] + [0, 0, END_MARGIN_MM], ordered[0] - [0, 0, END_MARGIN_MM]]
        ordered = np.asarray(ends)
    else:
        head = ordered[0] - ordered[1]
        tail = ordered[-1] - ordered[-2]
        head = ordered[0] + END_MARGIN_MM * head / max(np.linalg.norm(head), 1e-6)
        tail = ordered[-1] + END_MARGIN_MM * tail / max(np.linalg.norm(tail), 1e-6)
        ordered = np.vstack([head, ordered, tail])
    points = []
    for a, b in zip(ordered[:-1], ordered[1:], strict=True):
        n = max(2, int(np.ceil(np.linalg.norm(b - a))) + 1)
        points.append(a + np.linspace(0.0, 1.0, n)[:, None] * (b - a))
    return np.vstack(points)


__all__ = ["spine_region"]

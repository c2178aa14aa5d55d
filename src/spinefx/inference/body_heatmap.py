"""Body-centre heatmaps of a CT and their peaks (the network is
:mod:`spinefx.models.body_heatmap`; :func:`spinefx.inference.ct_localisation.localise_spine`
chains and labels the peaks)."""

from __future__ import annotations

import numpy as np

from spinefx.image import Image
from spinefx.models.body_heatmap import DIVISOR
from spinefx.preprocessing.heatmap_grid import heatmap_grid, scale_hu

#: a heatmap peak at least this high is a body centre
PEAK_THRESHOLD = 0.2
#: at most this many peaks are kept (the highest)
MAX_PEAKS = 60
#: two body centres are at least this far apart, mm (C3-C4 ~14 mm)
PEAK_MIN_DISTANCE_MM = 11.0


def predict_heatmap(net, scan: Image) -> Image:
    """The body-centre heatmap of ``scan`` on :func:`heatmap_grid` (values 0-1).

    The whole scan goes through the network at once (a 400 mm abdominal field of view is
    100x100x125 voxels here), padded with air to :data:`DIVISOR`.
    """
    import torch

    grid = heatmap_grid(scan)
    x = scale_hu(np.asarray(grid.data))
    shape = np.array(x.shape)
    padded = -(-shape // DIVISOR) * DIVISOR
    x = np.pad(x, [(0, int(p - s)) for p, s in zip(padded, shape, strict=True)],
               constant_values=-1.0)  # fmt: skip
    net.eval()
    with torch.no_grad():
        y = torch.sigmoid(net(torch.from_numpy(x)[None, None]))[0, 0].numpy()
    y = y[: shape[0], : shape[1], : shape[2]]
    return grid.with_data(y.astype(np.float32))


def heatmap_peaks(heatmap: Image) -> np.ndarray:
    """``(n, 3)`` world mm of the heatmap's local maxima above :data:`PEAK_THRESHOLD`, at
    least :data:`PEAK_MIN_DISTANCE_MM` apart (the higher one kept), each refined to the centre
    of mass of the heatmap above half its height around it."""
    from scipy import ndimage

    h = np.asarray(heatmap.data, np.float32)
    spacing = np.sqrt((heatmap.affine[:3, :3] ** 2).sum(axis=0))
    size = np.maximum(np.round(PEAK_MIN_DISTANCE_MM / spacing).astype(int) | 1, 3)
    peaks = np.argwhere((h >= PEAK_THRESHOLD) & (h == ndimage.maximum_filter(h, size=size)))
    order = np.argsort(-h[tuple(peaks.T)])[: 20 * MAX_PEAKS]
    kept: list[np.ndarray] = []
    for p in peaks[order]:
        if len(kept) >= MAX_PEAKS:  # a spine has 26; more is a network answering noise
            break
        mm = heatmap.voxel_to_world(p[None].astype(float))[0]
        if all(np.linalg.norm(mm - q) >= PEAK_MIN_DISTANCE_MM for q in kept):
            kept.append(mm)
    out = []
    r = np.maximum(size // 2, 2)  # the half-height hill of a Gaussian of 1.5 voxels
    for mm in kept:
        p = np.round(heatmap.world_to_voxel(mm[None])[0]).astype(int)
        lo, hi = np.maximum(p - r, 0), np.minimum(p + r + 1, h.shape)
        box = h[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        w = np.where(box >= 0.5 * h[tuple(p)], box, 0.0)
        com = np.array(ndimage.center_of_mass(w)) + lo if w.sum() > 0 else p.astype(float)
        out.append(heatmap.voxel_to_world(com[None])[0])
    return np.array(out, float).reshape(-1, 3)

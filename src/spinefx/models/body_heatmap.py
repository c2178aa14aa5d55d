"""Vertebral-body centre heatmap network: a small 3-D U-Net on a coarse RAS+ grid.

The network reads a CT resampled to :data:`HEATMAP_GRID_MM` (RAS+, HU scaled by
:func:`scale_hu`) and returns, per voxel, a heatmap that is 1 at a vertebral body's centre and
falls off as a Gaussian of :data:`HEATMAP_SIGMA_MM` (the target of
:func:`spinefx.training.body_heatmap.heatmap_target`). Its peaks (:func:`heatmap_peaks`) are the
body centres that :func:`spinefx.inference.ct_localisation.localise_spine` labels.

Why a network here at all: the anatomy-only localiser finds the body line from the deepest
solid bone, and on real CT that line leaves the bodies for the posterior elements where the
marrow is as dark as soft tissue (wide lumbar bodies with a thin shell) or for a bright aorta;
a network trained on CTs rendered from real vertebra masks sees a body as a body.

MONAI's ``BasicUNet`` is the network (a maintained implementation; nothing here is hand-written
but the target, the scaling and the peak finder).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spinefx.image import Image

#: working grid of the heatmap network, mm (a lumbar body is ~10 voxels across)
HEATMAP_GRID_MM = 4.0
#: spread of the target around each body centre, mm
HEATMAP_SIGMA_MM = 6.0
#: U-Net features (MONAI ``BasicUNet``: five levels and the last up-sampling)
FEATURES = (8, 16, 32, 64, 64, 8)
#: the network's input sides must be multiples of this (four poolings)
DIVISOR = 16
#: a heatmap peak at least this high is a body centre
PEAK_THRESHOLD = 0.2
#: at most this many peaks are kept (the highest)
MAX_PEAKS = 60
#: two body centres are at least this far apart, mm (C3-C4 ~14 mm)
PEAK_MIN_DISTANCE_MM = 11.0


def build_heatmap_net():
    """The untrained network (``torch.nn.Module``; 1 channel in, 1 out)."""
    from monai.networks.nets import BasicUNet

    return BasicUNet(spatial_dims=3, in_channels=1, out_channels=1, features=FEATURES)


def shipped_heatmap_weights() -> Path:
    """Where the shipped heatmap weights live inside the package (may be absent)."""
    return Path(__file__).resolve().parents[1] / "weights" / "body_heatmap" / "body_heatmap.pt"


def load_heatmap_net(path: str | Path | None = None):
    """The network of a weights file written by
    :func:`spinefx.training.body_heatmap.train_heatmap` (``None``: the shipped weights).

    Raises:
        InputError: the file is missing or is not heatmap weights.
    """
    import torch

    from spinefx.errors import InputError

    path = Path(path) if path is not None else shipped_heatmap_weights()
    if not path.is_file():
        raise InputError(
            "no body-heatmap weights found", path=path,
            fix="train them with 'spinefx train-localiser --out DIR' and pass DIR/body_heatmap.pt",
        )  # fmt: skip
    net = build_heatmap_net()
    try:
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:  # a truncated file, another network's weights
        raise InputError(
            f"not body-heatmap weights ({type(exc).__name__}: {str(exc)[:200]})", path=path,
            fix="pass the body_heatmap.pt that 'spinefx train-localiser' wrote",
        ) from exc  # fmt: skip
    net.eval()
    return net


def scale_hu(hu: np.ndarray) -> np.ndarray:
    """HU to the network's input range: air -1, water 0, dense bone ~1.5 (clipped)."""
    return (np.clip(np.asarray(hu, np.float32), -1000.0, 2000.0) / 1000.0).astype(np.float32)


def heatmap_grid(scan: Image) -> Image:
    """``scan`` on the network's RAS+ grid (:data:`HEATMAP_GRID_MM`, linear, air outside)."""
    from spinefx.preprocessing.orientation import reorient
    from spinefx.preprocessing.resample import resample_to_spacing

    return resample_to_spacing(
        reorient(scan, "RAS"), HEATMAP_GRID_MM, interpolation="linear", fill_value=-1000.0
    )


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
    least :data:`PEAK_MIN_DISTANCE_MM` apart (the higher one kept), each refined to the centre of mass of the heatmap above half its
    height around it."""
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

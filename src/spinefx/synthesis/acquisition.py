"""Acquisition of a synthetic scan: metal streaks, scanner blur, resampling, orientation, noise.

All functions take the isotropic RAS build grid and return arrays; the geometry of the
written file (spacing, orientation) is an ordinary affine, so the scan is an ordinary ``Image``.
"""

from __future__ import annotations

import nibabel.orientations as nio
import numpy as np
from scipy import ndimage

from spinefx.image import Image
from spinefx.synthesis.grid import BuildGrid


def add_metal_streaks(
    hu: np.ndarray, metal: np.ndarray, grid: BuildGrid, rng: np.random.Generator
) -> None:
    """Bright and dark streaks radiating from metal, slice by slice (beam hardening), in place.

    A cheap image-domain model (no projector): a dark band between the two screws of a slice
    and alternating bright/dark rays decaying away from each screw.
    """
    sp = grid.spacing_mm
    x = grid.axis_mm(0)[:, None].astype(np.float32)
    y = grid.axis_mm(1)[None, :].astype(np.float32)
    n_rays = int(rng.integers(6, 12))
    phase = rng.uniform(0, 2 * np.pi)
    amplitude = rng.uniform(150, 300)
    for k in np.flatnonzero(metal.any(axis=(0, 1))):
        ii, jj = np.nonzero(metal[:, :, k])
        px = grid.origin_mm[0] + sp * ii
        py = grid.origin_mm[1] + sp * jj
        split = px.mean()
        centres = [
            (px[sel].mean(), py[sel].mean()) for sel in (px < split, px >= split) if np.any(sel)
        ]
        streak = np.zeros(hu.shape[:2], np.float32)
        for cx, cy in centres:
            r = np.sqrt((x - cx) ** 2 + (y - cy) ** 2) + 1e-3
            theta = np.arctan2(y - cy, x - cx)
            rays = np.cos(n_rays * theta + phase) * np.exp(-r / 45.0) * (r > 4.0)
            streak += amplitude * rays
        if len(centres) == 2:
            (x0, y0), (x1, y1) = centres
            d = np.array([x1 - x0, y1 - y0], np.float32)
            t = np.clip(((x - x0) * d[0] + (y - y0) * d[1]) / float(d @ d + 1e-6), 0, 1)
            dist = np.sqrt((x - x0 - t * d[0]) ** 2 + (y - y0 - t * d[1]) ** 2)
            streak -= 350.0 * np.exp(-dist / 4.0) * (t > 0.05) * (t < 0.95)
        sl = hu[:, :, k]
        sl += np.where(metal[:, :, k], 0.0, streak)


def acquire(
    hu: np.ndarray,
    labels: dict[str, np.ndarray],
    grid: BuildGrid,
    *,
    spacing_mm: tuple[float, float, float],
    blur_mm: float,
    noise_hu: float,
    orientation: str,
    rng: np.random.Generator,
) -> tuple[Image, dict[str, Image]]:
    """Blur, resample to ``spacing_mm`` (x, y, z), add noise and reorient.

    Args:
        hu: float32 HU on the build grid.
        labels: label maps on the build grid (resampled with nearest neighbour).
        grid: the build grid.
        spacing_mm: output voxel size along world x, y, z.
        blur_mm: sd of the scanner point-spread function.
        noise_hu: sd of the added noise.
        orientation: axis codes of the output arrays, e.g. "PIR".
        rng: random generator of the noise.

    Returns:
        The CT (int16 HU) and the label images, all on the same output grid.
    """
    spacing = np.asarray(spacing_mm, float)
    # slice profile: thicker slices integrate over their thickness
    sigma_mm = np.sqrt(blur_mm**2 + (spacing / 2.355) ** 2 * (spacing > grid.spacing_mm))
    smooth = ndimage.gaussian_filter(hu, sigma_mm / grid.spacing_mm, mode="nearest")
    extent = (np.asarray(grid.shape) - 1) * grid.spacing_mm
    out_shape = tuple(int(n) for n in np.floor(extent / spacing) + 1)
    scale = spacing / grid.spacing_mm
    ct = ndimage.affine_transform(smooth, scale, output_shape=out_shape, order=1, mode="nearest")
    noise = rng.standard_normal(out_shape).astype(np.float32)
    noise = ndimage.gaussian_filter(noise, 0.6)
    noise *= noise_hu / (noise.std() + 1e-6)
    ct = np.clip(np.rint(ct + noise), -1024, 3071).astype(np.int16)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = grid.origin_mm
    images = {"ct": ct}
    for name, lab in labels.items():
        images[name] = ndimage.affine_transform(
            lab, scale, output_shape=out_shape, order=0, mode="constant", cval=0
        )
    return _reorient(images, affine, orientation)


def _reorient(arrays: dict[str, np.ndarray], affine: np.ndarray, axcodes: str):
    # exact axis permutation/flip (nibabel's orientation helpers): no interpolation
    current = nio.io_orientation(affine)
    transform = nio.ornt_transform(current, nio.axcodes2ornt(tuple(axcodes)))
    shape = next(iter(arrays.values())).shape
    new_affine = affine @ nio.inv_ornt_aff(transform, shape)
    out = {k: np.ascontiguousarray(nio.apply_orientation(a, transform)) for k, a in arrays.items()}
    ct = Image(out.pop("ct"), new_affine, {"modality": "CT", "units": "HU"})
    return ct, {k: Image(a, new_affine.copy()) for k, a in out.items()}

"""Acquisition of a synthetic scan: metal streaks, blur, resampling, kernel, artefacts, noise.

All functions take the isotropic RAS build grid and return arrays; the geometry of the
written file (spacing, orientation) is an ordinary affine, so the scan is an ordinary ``Image``.
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel.orientations as nio
import numpy as np
from scipy import ndimage

from spinefx.image import Image
from spinefx.synthesis.config import AcquisitionConfig
from spinefx.synthesis.grid import BuildGrid
from spinefx.synthesis.kernels import (
    apply_kernel,
    bias_field,
    correlated_noise,
    cupping,
    lateral_streaks,
    noise_filter_sd_vox,
)


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


@dataclass(frozen=True)
class ScanSpec:
    """Everything drawn about one acquisition (see :class:`AcquisitionConfig` for ranges).

    Attributes:
        spacing_mm: output voxel size along world x, y, z.
        slice_thickness_mm: reconstructed slice thickness (>= the z spacing).
        orientation: axis codes of the written arrays, e.g. "PIR".
        blur_mm: sd of the scanner point-spread function.
        kernel: reconstruction kernel ("soft", "standard", "sharp").
        kernel_blur_mm / kernel_gain / kernel_sigma_mm: its parameters
            (see :func:`spinefx.synthesis.kernels.apply_kernel`).
        noise_hu / noise_grain_mm: sd and correlation length of the noise.
        bias_hu / bias_scale_mm: smooth offset amplitude and length scale.
        cupping_hu: beam-hardening cupping depth.
        streak_hu: amplitude of lateral streaks (0: none).
    """

    spacing_mm: tuple[float, float, float]
    slice_thickness_mm: float
    orientation: str
    blur_mm: float
    kernel: str
    kernel_blur_mm: float
    kernel_gain: float
    kernel_sigma_mm: float
    noise_hu: float
    noise_grain_mm: float
    bias_hu: float
    bias_scale_mm: float
    cupping_hu: float
    streak_hu: float


def sample_scan(config: AcquisitionConfig, rng: np.random.Generator) -> ScanSpec:
    """Draw spacing, orientation, kernel, noise and artefacts of one scan."""
    u = rng.uniform
    inplane = float(u(*config.inplane_spacing_mm_range))
    spacing = (inplane, inplane, float(u(*config.slice_spacing_mm_range)))
    orientation = str(rng.choice(config.orientations))
    blur = float(u(*config.blur_mm_range))
    noise = float(u(*config.noise_hu_range))
    weights = np.asarray(config.kernel_weights, float)
    kernel = str(rng.choice(config.kernels, p=weights / weights.sum()))
    gain_range = config.sharp_gain_range if kernel == "sharp" else config.standard_gain_range
    grain = float(u(*config.noise_grain_mm_range)) * (0.75 if kernel == "sharp" else 1.0)
    if kernel == "sharp":
        noise *= float(u(*config.sharp_noise_factor_range))
    streaks = rng.random() < config.streak_probability
    return ScanSpec(
        spacing_mm=spacing,
        slice_thickness_mm=float(spacing[2] * u(*config.slice_thickness_range)),
        orientation=orientation,
        blur_mm=blur,
        kernel=kernel,
        kernel_blur_mm=float(u(*config.soft_blur_mm_range)) if kernel == "soft" else 0.0,
        kernel_gain=float(u(*gain_range)) if kernel != "soft" else 0.0,
        kernel_sigma_mm=float(u(*config.sharpen_sigma_mm_range)),
        noise_hu=noise,
        noise_grain_mm=grain,
        bias_hu=float(u(*config.bias_hu_range)),
        bias_scale_mm=float(u(*config.bias_scale_mm_range)),
        cupping_hu=float(u(*config.cupping_hu_range)),
        streak_hu=float(u(*config.streak_hu_range)) if streaks else 0.0,
    )


def acquire(
    hu: np.ndarray,
    labels: dict[str, np.ndarray],
    grid: BuildGrid,
    *,
    scan: ScanSpec,
    rng: np.random.Generator,
) -> tuple[Image, dict[str, Image]]:
    """Blur, resample to ``scan.spacing_mm``, reconstruct, add artefacts and noise, reorient.

    Args:
        hu: float32 HU on the build grid (overwritten: used as scratch).
        labels: label maps on the build grid (resampled with nearest neighbour).
        grid: the build grid.
        scan: the drawn acquisition.
        rng: random generator of the noise and artefacts.

    Returns:
        The CT (int16 HU) and the label images, all on the same output grid.
    """
    spacing = np.asarray(scan.spacing_mm, float)
    # slice profile: thicker slices integrate over their thickness
    profile = np.array([spacing[0], spacing[1], scan.slice_thickness_mm])
    sigma_mm = np.sqrt(scan.blur_mm**2 + (profile / 2.355) ** 2 * (profile > grid.spacing_mm))
    ndimage.gaussian_filter(hu, sigma_mm / grid.spacing_mm, mode="nearest", output=hu)
    extent = (np.asarray(grid.shape) - 1) * grid.spacing_mm
    out_shape = tuple(int(n) for n in np.floor(extent / spacing) + 1)
    scale = spacing / grid.spacing_mm
    ct = ndimage.affine_transform(hu, scale, output_shape=out_shape, order=1, mode="nearest")
    ct += cupping(ct, amplitude_hu=scan.cupping_hu)
    ct = apply_kernel(
        ct,
        spacing_mm=scan.spacing_mm,
        kernel=scan.kernel,
        blur_mm=scan.kernel_blur_mm,
        gain=scan.kernel_gain,
        sigma_mm=scan.kernel_sigma_mm,
    )
    ct += bias_field(
        out_shape, rng, amplitude_hu=scan.bias_hu, scale_vox=scan.bias_scale_mm / spacing[0]
    )
    ct += lateral_streaks(ct, rng, amplitude_hu=scan.streak_hu)
    grain = noise_filter_sd_vox(scan.noise_grain_mm, spacing[0])
    ct += correlated_noise(out_shape, rng, sd_hu=scan.noise_hu, grain_vox=grain)
    ct = np.clip(np.rint(ct), -1024, 3071).astype(np.int16)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = grid.origin_mm
    images = {"ct": ct}
    for name, lab in labels.items():
        images[name] = nearest_resample(lab, scale, out_shape)
    return _reorient(images, affine, scan.orientation)


def nearest_resample(labels: np.ndarray, scale: np.ndarray, out_shape) -> np.ndarray:
    """Nearest-neighbour resampling by an axis-aligned ``scale`` (output voxel i reads input
    voxel ``round(i * scale)``): the same as ``scipy.ndimage.affine_transform(order=0)`` for a
    pure scaling, by index selection."""
    index = [
        np.minimum(np.floor(np.arange(n) * s + 0.5).astype(int), labels.shape[axis] - 1)
        for axis, (n, s) in enumerate(zip(out_shape, scale, strict=True))
    ]
    return labels[np.ix_(*index)]


def _reorient(arrays: dict[str, np.ndarray], affine: np.ndarray, axcodes: str):
    # exact axis permutation/flip (nibabel's orientation helpers): no interpolation
    current = nio.io_orientation(affine)
    transform = nio.ornt_transform(current, nio.axcodes2ornt(tuple(axcodes)))
    shape = next(iter(arrays.values())).shape
    new_affine = affine @ nio.inv_ornt_aff(transform, shape)
    out = {k: np.ascontiguousarray(nio.apply_orientation(a, transform)) for k, a in arrays.items()}
    ct = Image(out.pop("ct"), new_affine, {"modality": "CT", "units": "HU"})
    return ct, {k: Image(a, new_affine.copy()) for k, a in out.items()}

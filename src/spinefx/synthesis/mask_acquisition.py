"""Acquisition of a rendered scene: bias field, point-spread function, slices, kernel, noise.

The scene is HU on a render grid (the output grid with thick axes subdivided, see
:mod:`spinefx.synthesis.mask_deform`). The slice profile is a Gaussian of FWHM = slice
thickness along the slice axis, sampled at the output slice centres, so thick slices show
partial volume, not steps. The reconstruction kernel acts in-plane; the noise is correlated
in-plane (Gaussian-filtered white noise scaled to the drawn sd) and nearly white across slices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from spinefx.synthesis.grid import smooth_noise
from spinefx.synthesis.mask_deform import at_output_voxels

HU_LIMITS = (-1024.0, 3071.0)  # int16 CT range as scanners write it


@dataclass(frozen=True)
class AcquisitionParams:
    """Scanner and reconstruction of one scan.

    Attributes:
        inplane_fwhm_mm: FWHM of the in-plane point-spread function.
        slice_thickness_mm: FWHM of the slice profile (at least the slice spacing is used).
        kernel: "soft" (extra blur), "standard" or "bone" (sharpening).
        kernel_amount: soft: extra blur sd (mm); bone: unsharp-mask gain.
        noise_sd_hu: sd of the added noise.
        noise_grain_mm: in-plane correlation length (Gaussian sd) of the noise.
        bias_fraction: amplitude of the smooth multiplicative bias on attenuation (HU + 1000).
        bias_offset_hu: amplitude of the smooth additive bias.
        field_seed: seed of the noise and bias fields.
    """

    inplane_fwhm_mm: float = 1.0
    slice_thickness_mm: float = 1.0
    kernel: str = "standard"
    kernel_amount: float = 0.5
    noise_sd_hu: float = 20.0
    noise_grain_mm: float = 0.6
    bias_fraction: float = 0.0
    bias_offset_hu: float = 0.0
    field_seed: int = 0


def slice_axis(spacing_mm: np.ndarray) -> int:
    """The slice axis of a grid: its thickest axis (the third array axis when tied)."""
    spacing = np.asarray(spacing_mm, float)
    return 2 if spacing[2] >= spacing.max() - 1e-3 else int(np.argmax(spacing))


def acquire(
    hu: np.ndarray, fine_affine: np.ndarray, factors: tuple[int, int, int], p: AcquisitionParams
) -> np.ndarray:
    """Bias, point-spread function, slice sampling, kernel and noise of a render-grid scene.

    Args:
        hu: float32 HU on the render grid.
        fine_affine: the render grid's affine.
        factors: sub-slices per output voxel (see :func:`mask_deform.render_factors`).
        p: the acquisition parameters.

    Returns:
        float32 HU on the output grid, rounded, clipped to the int16 CT range.
    """
    rng = np.random.default_rng(p.field_seed)
    fine_spacing = np.sqrt((fine_affine[:3, :3] ** 2).sum(axis=0))
    spacing = fine_spacing * np.asarray(factors)
    axis = slice_axis(spacing)
    scale_vox = 120.0 / float(fine_spacing.mean())
    if p.bias_fraction or p.bias_offset_hu:
        gain = smooth_noise(hu.shape, rng, scale_vox=scale_vox)
        offset = smooth_noise(hu.shape, rng, scale_vox=scale_vox)
        hu = (hu + 1000.0) * (1.0 + p.bias_fraction * gain) - 1000.0 + p.bias_offset_hu * offset
    fwhm = np.full(3, p.inplane_fwhm_mm)
    fwhm[axis] = max(p.slice_thickness_mm, spacing[axis])
    if p.kernel == "soft":
        fwhm = np.sqrt(fwhm**2 + (2.355 * p.kernel_amount) ** 2 * (np.arange(3) != axis))
    blurred = ndimage.gaussian_filter(hu, fwhm / 2.355 / fine_spacing, mode="nearest")
    ct = at_output_voxels(blurred, factors)
    inplane = np.arange(3) != axis
    if p.kernel == "bone":
        smooth = ndimage.gaussian_filter(ct, inplane * 0.9 / spacing, mode="nearest")
        ct = ct + p.kernel_amount * (ct - smooth)
    if p.noise_sd_hu > 0:
        grain = p.noise_grain_mm * (0.7 if p.kernel == "bone" else 1.0)
        noise = rng.standard_normal(ct.shape, dtype=np.float32)
        sigma = np.where(inplane, grain / spacing, 0.3)
        noise = ndimage.gaussian_filter(noise, sigma, mode="wrap")
        ct = ct + noise * np.float32(p.noise_sd_hu / (noise.std() + 1e-9))
    return np.clip(np.rint(ct), *HU_LIMITS).astype(np.float32)

"""Reconstruction kernels and scanner artefacts of a synthetic CT, on the output grid.

Pure functions on float32 HU volumes indexed ``(x, y, z)`` with z the slice axis:

* :func:`apply_kernel`: soft kernels blur in-plane; standard and sharp (bone) kernels add an
  unsharp mask, which overshoots at edges (the bright rim and dark halo of bone kernels);
* :func:`correlated_noise`: Gaussian noise with a band-pass noise power spectrum in-plane
  (a difference of Gaussians: the ramp-times-window shape of filtered back-projection) and a
  little correlation between neighbouring slices;
* :func:`cupping`: beam hardening darkens the middle of the body on every slice;
* :func:`bias_field`: a smooth low-frequency additive offset;
* :func:`lateral_streaks`: mild photon-starvation streaks along the longest (lateral) path.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from spinefx.synthesis.grid import smooth_noise

#: Voxels above this HU count as inside the body (cupping, streaks).
BODY_HU = -500.0


def apply_kernel(
    ct: np.ndarray,
    *,
    spacing_mm: tuple[float, float, float],
    kernel: str,
    blur_mm: float = 0.0,
    gain: float = 0.0,
    sigma_mm: float = 1.0,
) -> np.ndarray:
    """The image as reconstructed with ``kernel`` ("soft", "standard" or "sharp").

    Args:
        ct: float32 HU, ``(x, y, z)``.
        spacing_mm: voxel size along x, y, z.
        kernel: kernel name.
        blur_mm: extra in-plane Gaussian blur (sd, mm) of the soft kernel.
        gain: unsharp-mask gain of the standard / sharp kernel (0: none).
        sigma_mm: width (sd, mm) of the unsharp mask.
    """
    sx, sy = spacing_mm[0], spacing_mm[1]
    if kernel == "soft":
        if blur_mm <= 0:
            return ct
        sigma = (blur_mm / sx, blur_mm / sy, 0.0)
    elif gain <= 0:
        return ct
    else:
        sigma = (sigma_mm / sx, sigma_mm / sy, 0.0)
    out = np.empty_like(ct)
    for sl in _slice_chunks(ct.shape[2]):  # in-plane filters: slabs of slices at a time
        low = ndimage.gaussian_filter(ct[:, :, sl], sigma, mode="nearest")
        if kernel == "soft":
            out[:, :, sl] = low
        else:
            out[:, :, sl] = ct[:, :, sl] + gain * (ct[:, :, sl] - low)
    return out


def _slice_chunks(n: int, size: int = 32):
    for k in range(0, n, size):
        yield slice(k, min(k + size, n))


def noise_filter_sd_vox(grain_mm: float, spacing_mm: float) -> float:
    """In-plane low-pass sd (voxels) of the noise filter; at least 0.6 voxel."""
    return max(grain_mm / spacing_mm, 0.6)


def correlated_noise(
    shape: tuple[int, int, int],
    rng: np.random.Generator,
    *,
    sd_hu: float,
    grain_vox: float,
    slice_sd_vox: float = 0.5,
) -> np.ndarray:
    """Stationary noise of sd ``sd_hu`` with a band-pass in-plane power spectrum, float32.

    The filter is ``G(grain) - 0.5 G(2.5 grain)`` in-plane (its spectrum rises from a low
    value at zero frequency to a peak and falls off like the apodised ramp of filtered
    back-projection) and ``G(slice_sd_vox)`` across slices.
    """
    noise = rng.standard_normal(shape, dtype=np.float32)
    ndimage.gaussian_filter(noise, (grain_vox, grain_vox, slice_sd_vox), output=noise)
    wide = np.sqrt((2.5 * grain_vox) ** 2 - grain_vox**2)
    for sl in _slice_chunks(shape[2]):
        noise[:, :, sl] -= 0.5 * ndimage.gaussian_filter(noise[:, :, sl], (wide, wide, 0.0))
    noise *= sd_hu / (float(noise.std()) + 1e-6)
    return noise


def cupping(ct: np.ndarray, *, amplitude_hu: float) -> np.ndarray:
    """Additive beam-hardening offset: ``-amplitude`` at the body's centre, 0 at its edge.

    The body of each slice (voxels above :data:`BODY_HU`) is approximated by the ellipse of
    its second moments.
    """
    if amplitude_hu <= 0:
        return np.zeros(ct.shape, np.float32)
    body = ct > BODY_HU
    centre, radius = [], []
    for axis, other in ((0, 1), (1, 0)):
        profile = body.sum(axis=other).astype(np.float64)  # (n_axis, nz)
        pos = np.arange(ct.shape[axis], dtype=np.float64)[:, None]
        n = profile.sum(axis=0) + 1e-6
        mean = (profile * pos).sum(axis=0) / n
        var = (profile * pos**2).sum(axis=0) / n - mean**2
        centre.append(mean.astype(np.float32))
        radius.append((2.0 * np.sqrt(np.maximum(var, 1.0))).astype(np.float32))
    i = np.arange(ct.shape[0], dtype=np.float32)[:, None, None]
    j = np.arange(ct.shape[1], dtype=np.float32)[None, :, None]
    offset = np.empty(ct.shape, np.float32)
    for sl in _slice_chunks(ct.shape[2]):
        rho2 = ((i - centre[0][sl]) / radius[0][sl]) ** 2 + (
            (j - centre[1][sl]) / radius[1][sl]
        ) ** 2
        np.clip(1.0 - rho2, 0.0, 1.0, out=rho2)
        offset[:, :, sl] = (-amplitude_hu * rho2) * body[:, :, sl]
    return offset


def bias_field(
    shape: tuple[int, int, int], rng: np.random.Generator, *, amplitude_hu: float, scale_vox: float
) -> np.ndarray:
    """A smooth additive offset of sd about ``amplitude_hu`` varying over ``scale_vox``."""
    if amplitude_hu <= 0:
        return np.zeros(shape, np.float32)
    field = smooth_noise(shape, rng, scale_vox=max(scale_vox, 2.0))
    field *= amplitude_hu
    return field


def lateral_streaks(ct: np.ndarray, rng: np.random.Generator, *, amplitude_hu: float) -> np.ndarray:
    """Thin bright/dark bands running laterally (along x) through the body, per slice."""
    if amplitude_hu <= 0:
        return np.zeros(ct.shape, np.float32)
    bands = ndimage.gaussian_filter(
        rng.standard_normal(ct.shape[1:]).astype(np.float32), (0.7, 0.8)
    )
    bands /= bands.std() + 1e-6
    envelope = ndimage.gaussian_filter1d(rng.random(ct.shape[2]).astype(np.float32), 3.0)
    envelope = np.clip((envelope - envelope.min()) / (np.ptp(envelope) + 1e-6), 0, 1)
    bands *= amplitude_hu * envelope[None, :]
    return (ct > BODY_HU) * bands[None, :, :]

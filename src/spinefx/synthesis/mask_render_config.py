"""Typed ranges of mask-driven rendering (SynthSeg-style domain randomisation).

Every scan draws its deformation, tissue HU and acquisition from these ranges (uniformly, in
:func:`spinefx.synthesis.mask_render.sample_render_params`); the defaults are physically
plausible CT values. A dataset is a :class:`MaskRenderConfig` plus a seed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from spinefx.synthesis.config import COMMON_ORIENTATIONS

KERNELS: tuple[str, ...] = ("soft", "standard", "bone")

# lower / upper limits a range may not leave (physics or common sense), per *_range field
_LIMITS: dict[str, tuple[float, float]] = {
    "scale_range": (0.5, 2.0),
    "elastic_mm_range": (0.0, 20.0),
    "elastic_spacing_mm_range": (10.0, 500.0),
    "cortical_hu_range": (100.0, 2500.0),
    "cortical_mm_range": (0.3, 5.0),
    "trabecular_hu_range": (-100.0, 1000.0),
    "posterior_extra_hu_range": (0.0, 800.0),
    "texture_sd_hu_range": (0.0, 400.0),
    "texture_mm_range": (0.2, 5.0),
    "texture_anisotropy_range": (0.5, 6.0),
    "disc_hu_range": (0.0, 200.0),
    "csf_hu_range": (-20.0, 60.0),
    "muscle_hu_range": (0.0, 120.0),
    "fat_hu_range": (-200.0, -20.0),
    "organ_hu_range": (0.0, 150.0),
    "tissue_sd_hu_range": (0.0, 50.0),
    "aorta_hu_range": (0.0, 100.0),
    "contrast_aorta_hu_range": (80.0, 700.0),
    "organ_fraction_range": (0.0, 1.0),
    "gas_fraction_range": (0.0, 0.5),
    "muscle_fat_fraction_range": (0.0, 0.9),
    "body_half_width_mm_range": (60.0, 300.0),
    "body_half_depth_mm_range": (50.0, 250.0),
    "back_mm_range": (5.0, 150.0),
    "subcutaneous_fat_mm_range": (1.0, 80.0),
    "diaphragm_mm_range": (-100.0, 100.0),
    "inplane_fwhm_mm_range": (0.2, 5.0),
    "slice_thickness_mm_range": (0.3, 10.0),
    "kernel_amount_range": (0.0, 2.0),
    "noise_sd_hu_range": (0.0, 200.0),
    "noise_grain_mm_range": (0.1, 5.0),
    "inplane_spacing_mm_range": (0.3, 5.0),
    "slice_spacing_mm_range": (0.3, 10.0),
}


@dataclass(frozen=True)
class MaskRenderConfig:
    """Ranges drawn per rendered scan; each ``*_range`` is ``(low, high)``, drawn uniformly.

    Deformation of the label map: ``rotation_deg_max`` (about each world axis, +-),
    ``scale_range`` (per world axis), ``elastic_mm_range`` (bound on the elastic displacement)
    and ``elastic_spacing_mm_range`` (control-point spacing).

    Bone: ``cortical_hu_range``, ``cortical_mm_range`` (shell thickness of the bodies),
    ``trabecular_hu_range`` (osteoporotic to dense), ``posterior_extra_hu_range``,
    ``vertebra_sd`` (relative HU spread between vertebrae), ``texture_*`` (trabecular texture
    sd, in-plane correlation length, vertical / horizontal ratio).

    Soft tissue: disc, CSF, muscle, fat, organ and aorta HU (``contrast_probability`` of an
    enhanced aorta in ``contrast_aorta_hu_range``), ``tissue_sd_hu_range`` (smooth spread
    within a tissue), organ / bowel-gas / intramuscular-fat fractions, and the habitus:
    body outline semi-axes, skin-to-spine distance, subcutaneous fat, diaphragm height.

    Acquisition: in-plane point-spread FWHM, slice thickness (never below the slice spacing),
    reconstruction ``kernels`` (soft = extra blur, bone = sharpening by ``kernel_amount``),
    noise sd and grain (correlation length), multiplicative bias on attenuation
    (``bias_fraction_max``) and additive bias (``bias_offset_hu_max``).

    Dataset writer: ``margin_mm`` around the vertebrae when cropping, ``resample_probability``
    of rendering on a new grid of ``inplane_spacing_mm_range`` / ``slice_spacing_mm_range``
    (slices along the third array axis) in one of ``orientations``.
    """

    rotation_deg_max: float = 10.0
    scale_range: tuple[float, float] = (0.9, 1.1)
    elastic_mm_range: tuple[float, float] = (0.0, 4.0)
    elastic_spacing_mm_range: tuple[float, float] = (40.0, 80.0)
    cortical_hu_range: tuple[float, float] = (400.0, 1200.0)
    cortical_mm_range: tuple[float, float] = (0.8, 1.6)
    trabecular_hu_range: tuple[float, float] = (80.0, 350.0)
    posterior_extra_hu_range: tuple[float, float] = (50.0, 200.0)
    vertebra_sd: float = 0.05
    texture_sd_hu_range: tuple[float, float] = (50.0, 140.0)
    texture_mm_range: tuple[float, float] = (0.6, 1.2)
    texture_anisotropy_range: tuple[float, float] = (1.5, 3.0)
    disc_hu_range: tuple[float, float] = (60.0, 120.0)
    csf_hu_range: tuple[float, float] = (0.0, 30.0)
    muscle_hu_range: tuple[float, float] = (30.0, 70.0)
    fat_hu_range: tuple[float, float] = (-130.0, -60.0)
    organ_hu_range: tuple[float, float] = (25.0, 65.0)
    tissue_sd_hu_range: tuple[float, float] = (3.0, 12.0)
    aorta_hu_range: tuple[float, float] = (30.0, 60.0)
    contrast_probability: float = 0.4
    contrast_aorta_hu_range: tuple[float, float] = (150.0, 350.0)
    organ_fraction_range: tuple[float, float] = (0.4, 0.8)
    gas_fraction_range: tuple[float, float] = (0.0, 0.12)
    muscle_fat_fraction_range: tuple[float, float] = (0.02, 0.35)
    body_half_width_mm_range: tuple[float, float] = (120.0, 190.0)
    body_half_depth_mm_range: tuple[float, float] = (85.0, 140.0)
    back_mm_range: tuple[float, float] = (20.0, 70.0)
    subcutaneous_fat_mm_range: tuple[float, float] = (5.0, 45.0)
    diaphragm_mm_range: tuple[float, float] = (-30.0, 40.0)
    inplane_fwhm_mm_range: tuple[float, float] = (0.6, 1.6)
    slice_thickness_mm_range: tuple[float, float] = (1.0, 3.5)
    kernels: tuple[str, ...] = KERNELS
    kernel_amount_range: tuple[float, float] = (0.3, 1.0)
    noise_sd_hu_range: tuple[float, float] = (10.0, 40.0)
    noise_grain_mm_range: tuple[float, float] = (0.4, 1.0)
    bias_fraction_max: float = 0.04
    bias_offset_hu_max: float = 10.0
    margin_mm: float = 30.0
    resample_probability: float = 0.5
    inplane_spacing_mm_range: tuple[float, float] = (0.8, 1.2)
    slice_spacing_mm_range: tuple[float, float] = (1.0, 3.0)
    orientations: tuple[str, ...] = COMMON_ORIENTATIONS

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name.endswith("_range"):
                _check_range(f.name, getattr(self, f.name))
        _check_scalar("rotation_deg_max", self.rotation_deg_max, 0.0, 45.0)
        _check_scalar("vertebra_sd", self.vertebra_sd, 0.0, 0.5)
        _check_scalar("contrast_probability", self.contrast_probability, 0.0, 1.0)
        _check_scalar("bias_fraction_max", self.bias_fraction_max, 0.0, 0.5)
        _check_scalar("bias_offset_hu_max", self.bias_offset_hu_max, 0.0, 100.0)
        _check_scalar("margin_mm", self.margin_mm, 0.0, 500.0)
        _check_scalar("resample_probability", self.resample_probability, 0.0, 1.0)
        if not self.kernels or any(k not in KERNELS for k in self.kernels):
            raise ValueError(f"kernels must be a non-empty subset of {KERNELS}, got {self.kernels}")
        if not self.orientations or not all(_is_axcodes(o) for o in self.orientations):
            raise ValueError(
                f"orientations must be three-letter axis codes like 'RAS', got {self.orientations}"
            )


def _is_axcodes(codes) -> bool:
    return (
        isinstance(codes, str)
        and len(codes) == 3
        and all(len(set(codes.upper()) & set(pair)) == 1 for pair in ("LR", "AP", "SI"))
    )


def _check_range(name: str, value) -> None:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair of numbers, got {value!r}") from None
    lo_limit, hi_limit = _LIMITS.get(name, (-math.inf, math.inf))
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"{name} must be finite with low <= high, got {value!r}")
    if low < lo_limit or high > hi_limit:
        raise ValueError(f"{name} = {value!r} leaves the plausible range [{lo_limit}, {hi_limit}]")


def _check_scalar(name: str, value: float, low: float, high: float) -> None:
    if not (isinstance(value, int | float) and low <= value <= high):
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")

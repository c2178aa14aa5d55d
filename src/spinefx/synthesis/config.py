"""Typed configuration of the synthetic spine CT generator, with named presets.

A dataset is a :class:`SynthesisConfig` plus a seed. Every random choice of a case is drawn from
these ranges with an explicit ``numpy.random.Generator``; the drawn values are then applied
deterministically.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from spinefx.errors import InputError

#: Orientations written by the ``default`` preset (all common ones seen in VerSe / clinical data).
COMMON_ORIENTATIONS: tuple[str, ...] = ("RAS", "LPS", "PIR", "LAS", "RPI", "PIL", "ASL", "IPR")


def _validate(config) -> None:
    """Reject inverted ranges, probabilities outside [0, 1] and empty choices (any config)."""
    name = type(config).__name__
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name.endswith("_range"):
            if len(value) != 2 or value[0] > value[1]:
                raise InputError(
                    f"{name}.{f.name} must be a (low, high) pair with low <= high, got {value!r}",
                    fix="swap or correct the two bounds",
                )
        elif f.name.endswith("_probability") and not 0.0 <= value <= 1.0:
            raise InputError(
                f"{name}.{f.name} must be a probability in [0, 1], got {value!r}",
                fix="use a value between 0 and 1",
            )
        elif f.name.endswith("_weights") and (min(value) < 0 or sum(value) <= 0):
            raise InputError(
                f"{name}.{f.name} must be non-negative weights with a positive sum, got {value!r}",
                fix="give every choice a weight >= 0, at least one > 0",
            )


@dataclass(frozen=True)
class AnatomyConfig:
    """Patient anatomy ranges (spine shape, bone model, ribs).

    Attributes:
        size_scale_range: overall vertebra size factor of a patient.
        height_variation_sd: sd of the i.i.d. per-vertebra height factor (normal variation).
        kyphosis_deg_range: total thoracic kyphosis (T1-T12 tangent change), degrees.
        lordosis_deg_range: total lumbar lordosis (L1-L5), degrees.
        scoliosis_probability: chance of a mild scoliosis.
        scoliosis_deg_range: maximal lateral tangent angle of a scoliotic curve, degrees.
        trabecular_hu_range: mean trabecular HU, osteoporotic (low end) to young (high end).
        osteoporosis_probability: chance that a patient is osteoporotic (low trabecular HU and a
            higher fracture prevalence).
        cortical_hu_range: HU of compact cortical bone (before partial volume).
        trabecular_sd_hu_range: sd of the trabecular texture, HU (larger when osteoporotic).
        trabecular_grain_mm_range: size of the trabecular texture grain across the vertebral
            axis, mm (coarser when osteoporotic); along the axis it is 2-4 times longer.
        cortical_thickness_mm_range: thickness of the body's side walls and the posterior
            elements' cortex, mm.
        endplate_thickness_mm_range: thickness of the dense endplates, mm.
        basivertebral_probability: chance per vertebra of a visible basivertebral vein.
        contrast_probability: chance of an intravenous contrast phase (else unenhanced).
        schmorl_probability: chance per vertebra of a Schmorl's node (hard negative, grade 0).
        degeneration_probability: chance per patient of degenerative changes (osteophytes,
            narrowed discs) at some lumbar / lower thoracic levels.
        ribs: draw rib arcs at thoracic levels.
        costal_cartilage_probability: chance that the ribs continue as costal cartilage.
    """

    size_scale_range: tuple[float, float] = (0.9, 1.1)
    height_variation_sd: float = 0.025
    kyphosis_deg_range: tuple[float, float] = (25.0, 50.0)
    lordosis_deg_range: tuple[float, float] = (25.0, 50.0)
    scoliosis_probability: float = 0.15
    scoliosis_deg_range: tuple[float, float] = (3.0, 10.0)
    trabecular_hu_range: tuple[float, float] = (60.0, 300.0)
    osteoporosis_probability: float = 0.3
    cortical_hu_range: tuple[float, float] = (500.0, 1200.0)
    trabecular_sd_hu_range: tuple[float, float] = (25.0, 60.0)
    trabecular_grain_mm_range: tuple[float, float] = (0.7, 1.2)
    cortical_thickness_mm_range: tuple[float, float] = (0.7, 1.2)
    endplate_thickness_mm_range: tuple[float, float] = (1.2, 2.2)
    basivertebral_probability: float = 0.85
    contrast_probability: float = 0.4
    schmorl_probability: float = 0.05
    degeneration_probability: float = 0.35
    ribs: bool = True
    costal_cartilage_probability: float = 0.5

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True)
class TissueConfig:
    """Soft-tissue intensities and body habitus, drawn per scan (SynthSeg-style).

    Each tissue's mean HU is drawn per scan from its range, and its spread (texture sd) from
    ``texture_sd_hu_range``; contrast-enhanced scans add ``organ_enhancement_hu_range`` to
    the parenchymal organs and draw blood from ``contrast_blood_hu_range``.

    Attributes:
        fat_hu_range / muscle_hu_range / viscera_hu_range / blood_hu_range / lung_hu_range /
            disc_hu_range / csf_hu_range: unenhanced mean HU ranges (viscera: liver, spleen,
            heart wall, bowel wall; kidneys are drawn 10 HU lower).
        contrast_blood_hu_range: blood (aorta, heart, veins) in a contrast phase.
        organ_enhancement_hu_range: HU added to the liver (kidneys 2.5x, spleen 1.2x) with contrast.
        texture_sd_hu_range: spread of a soft tissue's texture, HU.
        body_half_width_mm_range / body_half_depth_mm_range: body outline semi-axes, mm.
        fat_thickness_mm_range: subcutaneous fat thickness, mm.
        bowel_gas_range: fraction of the bowel filled with gas.
        aortic_calcification_probability: chance of calcified plaques in the aortic wall.
    """

    fat_hu_range: tuple[float, float] = (-120.0, -70.0)
    muscle_hu_range: tuple[float, float] = (35.0, 65.0)
    viscera_hu_range: tuple[float, float] = (40.0, 70.0)
    blood_hu_range: tuple[float, float] = (35.0, 50.0)
    contrast_blood_hu_range: tuple[float, float] = (150.0, 400.0)
    organ_enhancement_hu_range: tuple[float, float] = (20.0, 60.0)
    lung_hu_range: tuple[float, float] = (-900.0, -750.0)
    disc_hu_range: tuple[float, float] = (60.0, 110.0)
    csf_hu_range: tuple[float, float] = (0.0, 25.0)
    texture_sd_hu_range: tuple[float, float] = (3.0, 12.0)
    body_half_width_mm_range: tuple[float, float] = (125.0, 185.0)
    body_half_depth_mm_range: tuple[float, float] = (105.0, 150.0)
    fat_thickness_mm_range: tuple[float, float] = (5.0, 40.0)
    bowel_gas_range: tuple[float, float] = (0.05, 0.35)
    aortic_calcification_probability: float = 0.3

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True)
class FractureConfig:
    """Genant fracture sampling.

    Attributes:
        prevalence: probability that a vertebra of a non-osteoporotic patient is fractured.
        osteoporotic_prevalence: the same for an osteoporotic patient.
        run_probability: chance that a fracture extends to the next vertebra (runs of fractures).
        grade_weights: relative frequency of grades 1, 2, 3 among fractures.
        shape_weights: relative frequency of wedge, biconcave, crush.
        severe_max_loss: upper limit of a severe (grade 3) height loss.
        boundary_margin: height losses are drawn this far inside a grade's range so the
            intended grade is unambiguous (fraction, 0.005 = 0.5 %).
    """

    prevalence: float = 0.08
    osteoporotic_prevalence: float = 0.3
    run_probability: float = 0.3
    grade_weights: tuple[float, float, float] = (0.3, 0.45, 0.25)
    shape_weights: tuple[float, float, float] = (0.5, 0.3, 0.2)
    severe_max_loss: float = 0.6
    boundary_margin: float = 0.01

    def __post_init__(self) -> None:
        _validate(self)


#: Reconstruction kernels the generator draws from (see :mod:`spinefx.synthesis.kernels`).
KERNEL_NAMES: tuple[str, ...] = ("soft", "standard", "sharp")


@dataclass(frozen=True)
class AcquisitionConfig:
    """Scanner and reconstruction ranges.

    Attributes:
        n_levels_range: number of vertebrae (T1..L5) in the field of view, inclusive range.
        fov_xy_mm_range: in-plane field of view (square), mm.
        inplane_spacing_mm_range: in-plane voxel size, mm.
        slice_spacing_mm_range: slice spacing (along the body axis), mm.
        slice_thickness_range: slice thickness as a multiple of the slice spacing.
        orientations: axis codes of the written files, drawn per case.
        noise_hu_range: sd of the image noise, HU (of a soft or standard kernel).
        sharp_noise_factor_range: sharp kernels amplify the noise by this factor.
        noise_grain_mm_range: in-plane correlation length of the noise, mm (the noise power
            spectrum is a band-pass peaking near ``1 / (2 pi grain)``; sharp kernels use 0.75x).
        blur_mm_range: sd of the Gaussian point-spread function, mm.
        kernels: reconstruction kernels drawn per case (names of :data:`KERNEL_NAMES`).
        kernel_weights: relative frequency of ``kernels``.
        soft_blur_mm_range: extra in-plane blur of the soft kernel, mm.
        standard_gain_range / sharp_gain_range: unsharp-mask gain (edge overshoot) of the
            standard and sharp kernels.
        sharpen_sigma_mm_range: width of the unsharp mask, mm.
        bias_hu_range: amplitude of a smooth additive low-frequency offset, HU.
        bias_scale_mm_range: length scale of that offset, mm.
        cupping_hu_range: beam-hardening cupping (centre of the body darker), HU.
        streak_probability: chance of mild lateral photon-starvation streaks.
        streak_hu_range: their amplitude, HU.
        screw_probability: chance that a case carries pedicle screws.
        build_spacing_mm: voxel size of the internal isotropic build grid.
    """

    n_levels_range: tuple[int, int] = (6, 17)
    fov_xy_mm_range: tuple[float, float] = (150.0, 200.0)
    inplane_spacing_mm_range: tuple[float, float] = (0.6, 1.0)
    slice_spacing_mm_range: tuple[float, float] = (1.0, 3.0)
    slice_thickness_range: tuple[float, float] = (1.0, 1.5)
    orientations: tuple[str, ...] = COMMON_ORIENTATIONS
    noise_hu_range: tuple[float, float] = (15.0, 40.0)
    sharp_noise_factor_range: tuple[float, float] = (1.3, 2.5)
    noise_grain_mm_range: tuple[float, float] = (0.6, 1.1)
    blur_mm_range: tuple[float, float] = (0.4, 0.8)
    kernels: tuple[str, ...] = KERNEL_NAMES
    kernel_weights: tuple[float, ...] = (0.3, 0.4, 0.3)
    soft_blur_mm_range: tuple[float, float] = (0.3, 0.7)
    standard_gain_range: tuple[float, float] = (0.0, 0.35)
    sharp_gain_range: tuple[float, float] = (0.5, 1.0)
    sharpen_sigma_mm_range: tuple[float, float] = (0.7, 1.3)
    bias_hu_range: tuple[float, float] = (0.0, 20.0)
    bias_scale_mm_range: tuple[float, float] = (60.0, 150.0)
    cupping_hu_range: tuple[float, float] = (0.0, 20.0)
    streak_probability: float = 0.3
    streak_hu_range: tuple[float, float] = (5.0, 25.0)
    screw_probability: float = 0.1
    build_spacing_mm: float = 1.0

    def __post_init__(self) -> None:
        _validate(self)
        unknown = sorted(set(self.kernels) - set(KERNEL_NAMES))
        if unknown or len(self.kernels) != len(self.kernel_weights):
            raise InputError(
                f"AcquisitionConfig.kernels must name kernels of {KERNEL_NAMES} with one weight "
                f"each, got {self.kernels!r} with weights {self.kernel_weights!r}",
                fix="correct the kernel names or give as many weights as kernels",
            )


@dataclass(frozen=True)
class SynthesisConfig:
    """Everything the generator draws from; a dataset is this config plus a seed."""

    anatomy: AnatomyConfig = field(default_factory=AnatomyConfig)
    tissue: TissueConfig = field(default_factory=TissueConfig)
    fractures: FractureConfig = field(default_factory=FractureConfig)
    acquisition: AcquisitionConfig = field(default_factory=AcquisitionConfig)
    splits: tuple[float, float, float] = (0.6, 0.2, 0.2)


def _small() -> SynthesisConfig:
    # Tests and demo: 5-7 levels, 1.25 mm build grid, small FOV, about 1 s a case.
    return SynthesisConfig(
        fractures=FractureConfig(prevalence=0.2, osteoporotic_prevalence=0.35),
        acquisition=AcquisitionConfig(
            n_levels_range=(5, 7),
            fov_xy_mm_range=(120.0, 130.0),
            inplane_spacing_mm_range=(1.25, 1.25),
            slice_spacing_mm_range=(1.25, 1.5),
            screw_probability=0.15,
            build_spacing_mm=1.25,
        ),
    )


def _thoracolumbar() -> SynthesisConfig:
    # Benchmark reference: the whole T1-L5 spine at 1 mm isotropic, 160 mm FOV.
    return SynthesisConfig(
        acquisition=AcquisitionConfig(
            n_levels_range=(17, 17),
            fov_xy_mm_range=(160.0, 160.0),
            inplane_spacing_mm_range=(1.0, 1.0),
            slice_spacing_mm_range=(1.0, 1.0),
            orientations=("RAS",),
        ),
    )


def _clean() -> SynthesisConfig:
    # No acquisition variety: RAS, 1 mm, low noise, one standard kernel, no bias field, cupping,
    # streaks or screws; for checks of the anatomy itself.
    return SynthesisConfig(
        acquisition=AcquisitionConfig(
            inplane_spacing_mm_range=(1.0, 1.0),
            slice_spacing_mm_range=(1.0, 1.0),
            slice_thickness_range=(1.0, 1.0),
            orientations=("RAS",),
            noise_hu_range=(10.0, 10.0),
            kernels=("standard",),
            kernel_weights=(1.0,),
            standard_gain_range=(0.0, 0.0),
            bias_hu_range=(0.0, 0.0),
            cupping_hu_range=(0.0, 0.0),
            streak_probability=0.0,
            screw_probability=0.0,
        ),
    )


_PRESETS = {
    "default": SynthesisConfig,
    "small": _small,
    "thoracolumbar": _thoracolumbar,
    "clean": _clean,
}

#: Names accepted by :func:`preset`.
PRESET_NAMES: tuple[str, ...] = tuple(_PRESETS)


def preset(name: str = "default", **overrides) -> SynthesisConfig:
    """A named preset, optionally with top-level fields replaced.

    Raises:
        InputError: for an unknown preset name.
    """
    if name not in _PRESETS:
        raise InputError(f"unknown synthesis preset {name!r}", fix=f"use one of {PRESET_NAMES}")
    config = _PRESETS[name]()
    return dataclasses.replace(config, **overrides) if overrides else config

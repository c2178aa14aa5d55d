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


@dataclass(frozen=True)
class AnatomyConfig:
    """Patient anatomy ranges.

    Attributes:
        size_scale_range: overall vertebra size factor of a patient.
        height_variation_sd: sd of the i.i.d. per-vertebra height factor (normal variation).
        kyphosis_deg_range: total thoracic kyphosis (T1-T12 tangent change), degrees.
        lordosis_deg_range: total lumbar lordosis (L1-L5), degrees.
        scoliosis_probability: chance of a mild scoliosis.
        scoliosis_deg_range: maximal lateral tangent angle of a scoliotic curve, degrees.
        trabecular_hu_range: mean trabecular HU of a normal patient (young to old).
        osteoporosis_probability: chance that a patient is osteoporotic (low trabecular HU and a
            higher fracture prevalence).
        cortical_hu_range: cortical shell HU.
        contrast_probability: chance of a contrast-filled aorta (else soft-tissue HU).
        schmorl_probability: chance per vertebra of a Schmorl's node (hard negative, grade 0).
        degeneration_probability: chance per patient of degenerative changes (osteophytes,
            narrowed discs) at some lumbar / lower thoracic levels.
        ribs: draw rib stubs at thoracic levels.
    """

    size_scale_range: tuple[float, float] = (0.9, 1.1)
    height_variation_sd: float = 0.025
    kyphosis_deg_range: tuple[float, float] = (25.0, 50.0)
    lordosis_deg_range: tuple[float, float] = (25.0, 50.0)
    scoliosis_probability: float = 0.15
    scoliosis_deg_range: tuple[float, float] = (3.0, 10.0)
    trabecular_hu_range: tuple[float, float] = (120.0, 280.0)
    osteoporosis_probability: float = 0.3
    cortical_hu_range: tuple[float, float] = (500.0, 900.0)
    contrast_probability: float = 0.4
    schmorl_probability: float = 0.05
    degeneration_probability: float = 0.35
    ribs: bool = True


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


@dataclass(frozen=True)
class AcquisitionConfig:
    """Scanner and reconstruction ranges.

    Attributes:
        n_levels_range: number of vertebrae (T1..L5) in the field of view, inclusive range.
        fov_xy_mm_range: in-plane field of view (square), mm.
        inplane_spacing_mm_range: in-plane voxel size, mm.
        slice_spacing_mm_range: slice spacing (along the body axis), mm.
        orientations: axis codes of the written files, drawn per case.
        noise_hu_range: sd of the image noise, HU.
        blur_mm_range: sd of the Gaussian point-spread function, mm.
        screw_probability: chance that a case carries pedicle screws.
        build_spacing_mm: voxel size of the internal isotropic build grid.
    """

    n_levels_range: tuple[int, int] = (6, 17)
    fov_xy_mm_range: tuple[float, float] = (150.0, 200.0)
    inplane_spacing_mm_range: tuple[float, float] = (0.6, 1.0)
    slice_spacing_mm_range: tuple[float, float] = (1.0, 3.0)
    orientations: tuple[str, ...] = COMMON_ORIENTATIONS
    noise_hu_range: tuple[float, float] = (15.0, 40.0)
    blur_mm_range: tuple[float, float] = (0.4, 0.8)
    screw_probability: float = 0.1
    build_spacing_mm: float = 1.0


@dataclass(frozen=True)
class SynthesisConfig:
    """Everything the generator draws from; a dataset is this config plus a seed."""

    anatomy: AnatomyConfig = field(default_factory=AnatomyConfig)
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
    # No acquisition variety: RAS, 1 mm, no screws; for checks of the anatomy itself.
    return SynthesisConfig(
        acquisition=AcquisitionConfig(
            inplane_spacing_mm_range=(1.0, 1.0),
            slice_spacing_mm_range=(1.0, 1.0),
            orientations=("RAS",),
            noise_hu_range=(10.0, 10.0),
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

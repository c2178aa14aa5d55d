"""One CT rendered from a vertebra label map: draw every parameter, then render.

:func:`sample_render_params` draws every random choice of a scan into a frozen
:class:`RenderParams` (TorchIO's ``get_params``); :func:`render_ct` then renders
deterministically:

1. the label map is deformed (affine + elastic, :mod:`spinefx.synthesis.mask_deform`) onto a
   render grid with thick output slices subdivided (smooth bone surfaces between slices);
   a deformation that would lose a vertebra or push one into the border is halved until none
   does (at worst the identity), so every label and its grade survive;
2. tissues get HU (:mod:`spinefx.synthesis.mask_tissue`);
3. acquisition (:mod:`spinefx.synthesis.mask_acquisition`): bias field on attenuation,
   anisotropic point-spread function with the slice profile, reconstruction kernel,
   spatially correlated noise.

The CT and the deformed label map are returned on the output grid (by default the mask's own:
same shape, same affine).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spinefx.image import Image
from spinefx.synthesis.mask_acquisition import AcquisitionParams, acquire
from spinefx.synthesis.mask_deform import (
    DeformParams,
    labels_survive,
    render_factors,
    render_grid,
    sample_labels,
)
from spinefx.synthesis.mask_render_config import MaskRenderConfig
from spinefx.synthesis.mask_tissue import TissueParams, render_tissue

_SEED_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class RenderParams:
    """Everything random about one rendered scan."""

    deform: DeformParams = field(default_factory=DeformParams)
    tissue: TissueParams = field(default_factory=TissueParams)
    acquisition: AcquisitionParams = field(default_factory=AcquisitionParams)


def sample_render_params(
    rng: np.random.Generator, config: MaskRenderConfig | None = None
) -> RenderParams:
    """Draw one scan's deformation, tissue HU and acquisition from ``config``'s ranges.

    Args:
        rng: the scan's random generator (the only source of randomness).
        config: the ranges; default :class:`MaskRenderConfig()`.
    """
    c = config or MaskRenderConfig()
    return RenderParams(
        deform=_draw_deformation(rng, c),
        tissue=_draw_tissue(rng, c),
        acquisition=_draw_acquisition(rng, c),
    )


def _uniform(rng: np.random.Generator, pair) -> float:
    return float(rng.uniform(*pair))


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, _SEED_LIMIT))


def _draw_deformation(rng: np.random.Generator, c: MaskRenderConfig) -> DeformParams:
    rot = c.rotation_deg_max
    return DeformParams(
        rotation_deg=tuple(float(a) for a in rng.uniform(-rot, rot, 3)),  # type: ignore[arg-type]
        scale=tuple(float(s) for s in rng.uniform(*c.scale_range, 3)),  # type: ignore[arg-type]
        elastic_mm=_uniform(rng, c.elastic_mm_range),
        elastic_spacing_mm=_uniform(rng, c.elastic_spacing_mm_range),
        field_seed=_seed(rng),
    )


def _draw_tissue(rng: np.random.Generator, c: MaskRenderConfig) -> TissueParams:
    def u(pair) -> float:
        return _uniform(rng, pair)

    contrast = bool(rng.random() < c.contrast_probability)
    aorta = u(c.contrast_aorta_hu_range if contrast else c.aorta_hu_range)
    muscle, organ = u(c.muscle_hu_range), u(c.organ_hu_range)
    harmonics = rng.uniform(-1, 1, 3) * [0.06, 0.03, 0.02]
    return TissueParams(
        cortical_hu=u(c.cortical_hu_range),
        trabecular_hu=u(c.trabecular_hu_range),
        cortical_mm=u(c.cortical_mm_range),
        posterior_extra_hu=u(c.posterior_extra_hu_range),
        vertebra_sd=c.vertebra_sd,
        texture_sd_hu=u(c.texture_sd_hu_range),
        texture_mm=u(c.texture_mm_range),
        texture_anisotropy=u(c.texture_anisotropy_range),
        disc_hu=u(c.disc_hu_range),
        nucleus_delta_hu=u((-20.0, 0.0)),
        csf_hu=u(c.csf_hu_range),
        cord_hu=u((28.0, 40.0)),
        epidural_fat_hu=u((-100.0, -40.0)),
        muscle_hu=muscle,
        fat_hu=u(c.fat_hu_range),
        organ_hu=organ,
        tissue_sd_hu=u(c.tissue_sd_hu_range),
        muscle_fat_fraction=u(c.muscle_fat_fraction_range),
        aorta_hu=aorta,
        cava_hu=0.5 * (aorta + organ) if contrast else aorta,  # venous: less enhanced
        organ_fraction=u(c.organ_fraction_range),
        gas_fraction=u(c.gas_fraction_range),
        body_half_width_mm=u(c.body_half_width_mm_range),
        body_half_depth_mm=u(c.body_half_depth_mm_range),
        back_mm=u(c.back_mm_range),
        subcutaneous_fat_mm=u(c.subcutaneous_fat_mm_range),
        outline_harmonics=tuple(float(a) for a in harmonics),  # type: ignore[arg-type]
        diaphragm_mm=u(c.diaphragm_mm_range),
        field_seed=_seed(rng),
    )


def _draw_acquisition(rng: np.random.Generator, c: MaskRenderConfig) -> AcquisitionParams:
    return AcquisitionParams(
        inplane_fwhm_mm=_uniform(rng, c.inplane_fwhm_mm_range),
        slice_thickness_mm=_uniform(rng, c.slice_thickness_mm_range),
        kernel=str(rng.choice(c.kernels)),
        kernel_amount=_uniform(rng, c.kernel_amount_range),
        noise_sd_hu=_uniform(rng, c.noise_sd_hu_range),
        noise_grain_mm=_uniform(rng, c.noise_grain_mm_range),
        bias_fraction=_uniform(rng, (-c.bias_fraction_max, c.bias_fraction_max)),
        bias_offset_hu=_uniform(rng, (-c.bias_offset_hu_max, c.bias_offset_hu_max)),
        field_seed=_seed(rng),
    )


def render_ct(
    mask: Image,
    params: RenderParams,
    *,
    grid: tuple[tuple[int, int, int], np.ndarray] | None = None,
) -> tuple[Image, Image]:
    """Render a CT from a vertebra label map with drawn parameters (deterministic).

    Args:
        mask: VerSe-id vertebra label map (any orientation, anisotropic spacing allowed).
        params: from :func:`sample_render_params`.
        grid: ``(shape, affine)`` of the output grid; default the mask's own grid.

    Returns:
        ``(ct, labels)`` on the output grid (same shape, same affine): the CT in HU (float32,
        whole numbers in the int16 range, ``meta["deform_factor"]`` = the share of the drawn
        deformation applied) and the deformed label map (the mask's dtype). Every label of
        the mask is in ``labels``.
    """
    shape, affine = grid if grid is not None else (mask.shape, mask.affine)
    shape = tuple(int(n) for n in shape)
    affine = np.asarray(affine, float)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    factors = render_factors(spacing)
    fine_shape, fine_affine = render_grid(shape, affine, factors)
    reference = (
        np.asarray(mask.data)
        if grid is None
        else sample_labels(mask, shape, affine, DeformParams())
    )
    applied = 1.0
    for applied in (1.0, 0.5, 0.25, 0.0):
        deform = params.deform.scaled(applied)
        labels = sample_labels(mask, shape, affine, deform)
        if applied == 0.0 or labels_survive(reference, labels):
            break
    fine_labels = labels
    if factors != (1, 1, 1):  # the scene is drawn on thinner sub-slices
        fine_labels = sample_labels(mask, fine_shape, fine_affine, deform)
    hu = render_tissue(fine_labels, fine_affine, params.tissue, factors=factors)
    ct = acquire(hu, fine_affine, factors, params.acquisition)
    meta = {"modality": "CT", "units": "HU", "deform_factor": applied}
    return Image(ct, affine.copy(), meta), Image(labels, affine.copy())

"""Synthetic spine CT with Genant-graded fractures: the embedded default dataset of spinefx.

``generate_case(config, rng)`` makes one scan in memory; ``generate_dataset(out_dir, n_scans=,
seed=, preset=)`` writes a VerSe-layout dataset that :func:`spinefx.io.load_dataset` reads.
Mask-driven rendering (real vertebra masks rendered into CT, :mod:`.mask_render`) is imported
lazily: ``sample_render_params``, ``render_ct``, ``generate_mask_render_dataset``; so is the
fracture simulation on real tissue (:mod:`.real_fractures`): ``simulate_fracture``,
``deform_scan``, ``deform_to_genant``, ``make_real_fracture_case``,
``generate_real_fracture_dataset``.
"""

from spinefx.lazy_exports import lazy_exports
from spinefx.synthesis.config import (
    PRESET_NAMES,
    AcquisitionConfig,
    AnatomyConfig,
    FractureConfig,
    SynthesisConfig,
    TissueConfig,
    preset,
)
from spinefx.synthesis.dataset import case_id, case_rng, generate_dataset
from spinefx.synthesis.fractures import FractureTruth
from spinefx.synthesis.generator import SyntheticCase, SyntheticVertebra, generate_case
from spinefx.synthesis.spine import nominal_size

#: flat-API name of :func:`preset` (``spinefx.synthesis_preset("small")``)
synthesis_preset = preset

#: lazily imported names (mask-driven rendering pulls in morphometry and the real sources)
_LAZY: dict[str, str] = {
    "MaskRenderConfig": "spinefx.synthesis.mask_render_config",
    "RenderParams": "spinefx.synthesis.mask_scan",
    "sample_render_params": "spinefx.synthesis.mask_scan",
    "render_ct": "spinefx.synthesis.mask_scan",
    "generate_mask_render_dataset": "spinefx.synthesis.mask_render",
    # fracture simulation on real tissue
    "simulate_fracture": "spinefx.synthesis.deformation",
    "deform_scan": "spinefx.synthesis.deformation",
    "RealFractureConfig": "spinefx.synthesis.real_fracture_case",
    "RealFractureCase": "spinefx.synthesis.real_fracture_case",
    "deform_to_genant": "spinefx.synthesis.genant_deformation",
    "make_real_fracture_case": "spinefx.synthesis.real_fracture_case",
    "generate_real_fracture_dataset": "spinefx.synthesis.real_fractures",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = [
    "PRESET_NAMES",
    "AcquisitionConfig",
    "AnatomyConfig",
    "FractureConfig",
    "FractureTruth",
    "MaskRenderConfig",
    "RealFractureCase",
    "RealFractureConfig",
    "RenderParams",
    "SynthesisConfig",
    "TissueConfig",
    "SyntheticCase",
    "SyntheticVertebra",
    "case_id",
    "case_rng",
    "deform_scan",
    "deform_to_genant",
    "generate_case",
    "generate_dataset",
    "generate_mask_render_dataset",
    "generate_real_fracture_dataset",
    "make_real_fracture_case",
    "nominal_size",
    "preset",
    "render_ct",
    "sample_render_params",
    "simulate_fracture",
    "synthesis_preset",
]

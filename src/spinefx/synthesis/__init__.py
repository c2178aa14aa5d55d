"""Synthetic spine CT with Genant-graded fractures: the embedded default dataset of spinefx.

``generate_case(config, rng)`` makes one scan in memory; ``generate_dataset(out_dir, n_scans=,
seed=, preset=)`` writes a VerSe-layout dataset that :func:`spinefx.io.load_dataset` reads.
"""

from spinefx.synthesis.config import (
    PRESET_NAMES,
    AcquisitionConfig,
    AnatomyConfig,
    FractureConfig,
    SynthesisConfig,
    preset,
)
from spinefx.synthesis.dataset import case_id, case_rng, generate_dataset
from spinefx.synthesis.fractures import FractureTruth
from spinefx.synthesis.generator import SyntheticCase, SyntheticVertebra, generate_case
from spinefx.synthesis.spine import nominal_size

#: flat-API name of :func:`preset` (``spinefx.synthesis_preset("small")``)
synthesis_preset = preset

__all__ = [
    "PRESET_NAMES",
    "AcquisitionConfig",
    "AnatomyConfig",
    "FractureConfig",
    "FractureTruth",
    "SynthesisConfig",
    "SyntheticCase",
    "SyntheticVertebra",
    "case_id",
    "case_rng",
    "generate_case",
    "generate_dataset",
    "nominal_size",
    "preset",
    "synthesis_preset",
]

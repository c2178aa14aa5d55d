"""spinefx.models: the networks (torch only), built from typed configs by one factory.

Public names:
    build_model: the factory (dispatches on the config type).
    PatchClassifierConfig, PATCH_PRESETS, PatchClassifier: the Engstler et al. patch classifier.
    DISSECTABLE_LAYERS: model kind -> names of layers network dissection may read
        (``dict(model.named_modules())[name]``'s forward output).
"""

from __future__ import annotations

from spinefx.models.factory import build_model, config_from_record, config_to_record
from spinefx.models.patch_classifier import (
    DISSECTED_LAYER,
    PatchClassifier,
    PatchClassifierConfig,
    count_parameters,
)
from spinefx.models.patch_classifier import PRESETS as PATCH_PRESETS

#: model kind -> dissectable layer names, the default (the paper's) first.
DISSECTABLE_LAYERS: dict[str, tuple[str, ...]] = {
    "patch_classifier": (
        DISSECTED_LAYER,
        "encoder.level3",
        "encoder.level2",
        "encoder.level1",
        "head.convs.3",
    ),
}

__all__ = [
    "DISSECTABLE_LAYERS",
    "DISSECTED_LAYER",
    "PATCH_PRESETS",
    "PatchClassifier",
    "PatchClassifierConfig",
    "build_model",
    "config_from_record",
    "config_to_record",
    "count_parameters",
]

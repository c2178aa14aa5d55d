"""spinefx.interpretation: network dissection in 3D, concept atlas, unit relevance, Grad-CAM.

Public names (imported lazily so ``import spinefx.interpretation`` does not import torch):
    dissect, Dissection: thresholds, correlations and top samples of any layer of any model.
    exact_upper_quantiles: exact streaming per-unit thresholds in bounded memory.
    dissect_run, DissectionResult: a run directory + prepared data -> atlas, exports, index.
    relevance_for_input, UnitRelevance, grad_cam: why the model decided for one input.
    load_atlas, save_atlas, set_unit_concept: the concept atlas file.
"""

from __future__ import annotations

from spinefx.lazy_exports import lazy_exports

_EXPORTS = {
    "dissect": "spinefx.interpretation.dissection",
    "Dissection": "spinefx.interpretation.dissection",
    "unit_correlations": "spinefx.interpretation.dissection",
    "rank_units": "spinefx.interpretation.dissection",
    "exact_upper_quantiles": "spinefx.interpretation.quantiles",
    "LayerRecorder": "spinefx.interpretation.activations",
    "collate_samples": "spinefx.interpretation.activations",
    "dissect_run": "spinefx.interpretation.runs",
    "DissectionResult": "spinefx.interpretation.runs",
    "relevance_for_input": "spinefx.interpretation.relevance",
    "UnitRelevance": "spinefx.interpretation.relevance",
    "grad_cam": "spinefx.interpretation.relevance",
    "load_atlas": "spinefx.interpretation.atlas",
    "save_atlas": "spinefx.interpretation.atlas",
    "set_unit_concept": "spinefx.interpretation.atlas",
    "concept_regions": "spinefx.interpretation.concepts",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

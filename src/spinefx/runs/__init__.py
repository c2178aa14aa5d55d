"""spinefx.runs: the run directory of both methods (below training, above models).

Its layout (:mod:`~spinefx.runs.layout`), checkpoints (:mod:`~spinefx.runs.checkpoint`), the
training configs and presets of both methods (:mod:`~spinefx.runs.configs`) and the one loader
of trained runs (:func:`~spinefx.runs.trained.load_trained`). Names are imported lazily.
"""

from __future__ import annotations

from spinefx.lazy_exports import lazy_exports

_EXPORTS = {
    "RunPaths": "spinefx.runs.layout",
    "trial_dirs": "spinefx.runs.layout",
    "RUN_RECORD_KEYS": "spinefx.runs.layout",
    "save_checkpoint": "spinefx.runs.checkpoint",
    "load_checkpoint": "spinefx.runs.checkpoint",
    "PatchTrainingConfig": "spinefx.runs.configs",
    "VoxelTrainingConfig": "spinefx.runs.configs",
    "load_preset": "spinefx.runs.configs",
    "load_training_config": "spinefx.runs.configs",
    "voxel_preset": "spinefx.runs.configs",
    "TrainedRun": "spinefx.runs.trained",
    "load_trained": "spinefx.runs.trained",
    "read_operating_point": "spinefx.runs.trained",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

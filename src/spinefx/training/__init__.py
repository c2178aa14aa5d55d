"""spinefx.training: training loops (Lightning), checkpoints, run directories.

Names are imported lazily so ``import spinefx.training`` does not import Lightning.
"""

from __future__ import annotations

from spinefx.lazy_exports import lazy_exports

_EXPORTS = {
    "PatchTrainingConfig": "spinefx.training.patch_config",
    "load_training_config": "spinefx.training.patch_config",
    "LaunchOptions": "spinefx.training.patch_training",
    "train_patch_classifier": "spinefx.training.patch_training",
    "trial_dirs": "spinefx.training.patch_training",
    "save_checkpoint": "spinefx.training.patch_checkpoint",
    "load_checkpoint": "spinefx.training.patch_checkpoint",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

"""spinefx.training: training loops (Lightning), checkpoints, run directories.

Names are imported lazily so ``import spinefx.training`` does not import Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

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


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'spinefx.training' has no attribute {name!r}")

"""spinefx.training: training loops of both methods (Lightning for the patch classifier).

Run directories, checkpoints and configs live one stage below, in :mod:`spinefx.runs`.

Names are imported lazily so ``import spinefx.training`` does not import Lightning.
"""

from __future__ import annotations

from spinefx.lazy_exports import lazy_exports

_EXPORTS = {
    "LaunchOptions": "spinefx.training.patch_training",
    "train_patch_classifier": "spinefx.training.patch_training",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

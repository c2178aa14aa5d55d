"""One factory that builds every model of spinefx from its config.

Registration is by config type: each model family adds one line to ``_REGISTRY`` mapping its
config dataclass ``kind`` to ``"module:builder"`` (imported lazily), so importing the factory
never imports a model it does not build.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from spinefx.config import from_dict, to_dict

#: config kind -> ("module:ConfigClass", "module:builder function or class").
_REGISTRY: dict[str, tuple[str, str]] = {
    "patch_classifier": (
        "spinefx.models.patch_classifier:PatchClassifierConfig",
        "spinefx.models.patch_classifier:PatchClassifier",
    ),
    "voxel_classifier": (
        "spinefx.models.voxel_classifier:VoxelClassifierConfig",
        "spinefx.models.voxel_classifier:build_voxel_classifier",
    ),
}


def _load(ref: str) -> Any:
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def model_kinds() -> tuple[str, ...]:
    """The model kinds the factory can build."""
    return tuple(_REGISTRY)


def config_class(kind: str) -> type:
    """The config dataclass of a model kind (e.g. ``"patch_classifier"``)."""
    if kind not in _REGISTRY:
        raise ValueError(f"unknown model kind {kind!r}; known: {sorted(_REGISTRY)}")
    return _load(_REGISTRY[kind][0])


def build_model(config: Any) -> nn.Module:
    """Build the model described by ``config`` (its type selects the model family).

    Args:
        config: a registered model config dataclass instance, e.g. ``PatchClassifierConfig``.

    Returns:
        The freshly initialised ``nn.Module`` (train mode).
    """
    kind = getattr(type(config), "kind", None)
    if kind not in _REGISTRY or not isinstance(config, config_class(kind)):
        raise TypeError(f"no model registered for config type {type(config).__name__}")
    return _load(_REGISTRY[kind][1])(config)


def config_to_record(config: Any) -> dict[str, Any]:
    """A model config as plain data with its kind (for checkpoints and YAML)."""
    return {"kind": type(config).kind, **to_dict(config)}


def config_from_record(record: dict[str, Any]) -> Any:
    """Inverse of :func:`config_to_record`."""
    values = dict(record)
    kind = values.pop("kind", "patch_classifier")
    return from_dict(config_class(kind), values, where=f"model config ({kind})")

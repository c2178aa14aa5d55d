"""Checkpoints of both methods: a plain dict of tensors + config, ``weights_only``-loadable.

``checkpoint.pt`` = ``{"format", "model" (kind + config values), "state_dict", "epoch",
"seed", "threshold", "val_metrics"}``. Only tensors, strings, numbers, lists and dicts, so
``torch.load(path, weights_only=True)`` loads it without executing any pickled code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spinefx.atomic import atomic_path
from spinefx.errors import InputError

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = "spinefx-checkpoint-v1"


def save_checkpoint(
    path: str | Path,
    model: Any,
    model_config: Any,
    *,
    epoch: int,
    seed: int,
    threshold: float,
    val_metrics: dict[str, float],
) -> None:
    """Write the model's weights and config atomically to ``path``."""
    import torch

    from spinefx.models import config_to_record

    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": config_to_record(model_config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "epoch": int(epoch),
        "seed": int(seed),
        "threshold": float(threshold),
        "val_metrics": {k: float(v) for k, v in val_metrics.items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Load ``checkpoint.pt`` into a fresh model in eval mode.

    Returns:
        (model in ``eval()`` mode on CPU, the checkpoint dict without its state dict).

    Raises:
        InputError: the file is missing or not a spinefx checkpoint.
    """
    import torch

    from spinefx.models import build_model, config_from_record

    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint not found", path=path, fix="train a model with spinefx train")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle / zip errors of many kinds
        raise InputError(f"cannot load checkpoint ({exc})", path=path, fix="re-train") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise InputError(
            "not a spinefx checkpoint", path=path, fix="pass a run directory made by spinefx train"
        )
    model = build_model(config_from_record(payload["model"]))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    info = {k: v for k, v in payload.items() if k != "state_dict"}
    return model, info

"""The ``last.ckpt`` of a run: training state written after every epoch, read by ``--resume``.

Both trainers write it the same way: atomically (a temporary file in the run directory,
flushed to disk, then ``os.replace``), so a run killed at any moment, even with ``kill -9``
in the middle of a write, leaves either the previous epoch's ``last.ckpt`` or the new one,
never a truncated file. ``--resume`` then continues with the epoch after the last completed
one. What it holds differs: the patch classifier's is Lightning's full training state (see
:mod:`spinefx.training.patch_module`), the voxel classifier's a plain dict (see
:mod:`spinefx.training.voxel`); both carry the random-number generator states, so a resumed
run draws what an uninterrupted one would have drawn (the tests check this on the CPU).

Everything here loads with ``torch.load(weights_only=True)``: tensors, numbers, strings,
lists, tuples and dicts only. torch is imported lazily (this module is imported by the CLI).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from spinefx.atomic import atomic_path
from spinefx.errors import InputError


def save_state_atomic(state: Any, path: str | Path) -> None:
    """``torch.save(state, path)`` atomically and durably (fsync before the rename)."""
    import torch

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())


def remove_stale_parts(path: str | Path) -> None:
    """Delete temporary files that writes of ``path`` cut short by a ``kill -9`` left behind.

    Their names are those of :func:`spinefx.atomic.atomic_path`: ``.<stem>.<random>.part<ext>``.
    Call it only when nothing is writing ``path``, i.e. before training starts.
    """
    path = Path(path)
    for stale in path.parent.glob(f".{path.stem}.*.part{''.join(path.suffixes)}"):
        stale.unlink(missing_ok=True)


def load_state(path: str | Path, *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a ``last.ckpt`` on the CPU, or raise an :class:`InputError` that says what to do.

    Args:
        path: the file.
        required: keys the state must have (a file that lacks one is not this trainer's).

    Raises:
        InputError: the file is truncated, corrupt, not a training state, or lacks a key.
    """
    import torch

    path = Path(path)
    fix = (
        f"delete {path.name} to train this run from scratch, or train without --resume "
        "(into a new --out folder to keep this one)"
    )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip, pickle and EOF errors of many kinds
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"the training state to resume from is corrupt or truncated ({reason})",
            path=path,
            fix=fix,
        ) from exc
    missing = [k for k in required if not isinstance(state, dict) or k not in state]
    if missing:
        raise InputError(
            f"not a spinefx training state to resume from (no {', '.join(missing)})",
            path=path,
            fix=fix,
        )
    return state


def check_same_network(path: str | Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Raise an :class:`InputError` when the saved state dict is not the current network's.

    ``--resume`` with a changed model config would otherwise fail deep inside
    ``load_state_dict`` with a list of tensor names.
    """
    differs = set(saved) != set(current) or any(
        tuple(saved[k].shape) != tuple(current[k].shape) for k in current
    )
    if differs:
        raise InputError(
            "the training state to resume from holds a different network than the config "
            "describes (the model settings changed since it was written)",
            path=path,
            fix=f"resume with the config the run was trained with, or delete {Path(path).name} "
            "(or train without --resume) to start again",
        )


def capture_rng_state() -> dict[str, Any]:
    """The global random-number generator states of torch (CPU, CUDA) and Python.

    NumPy's legacy global generator is not among them: spinefx draws from explicit
    ``np.random.Generator``s only (ruff's NPY002), which the trainers seed or save themselves.
    """
    import torch

    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any] | None) -> None:
    """Restore what :func:`capture_rng_state` captured (missing parts are left alone)."""
    import torch

    if not state:
        return
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)

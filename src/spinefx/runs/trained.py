"""Load a trained run of either method: one loader, one ensemble rule, one operating point.

:func:`load_trained` is the only way spinefx turns a run directory into models: prediction,
screening, reports, the app and dissection all call it, so a multi-trial run means the same
thing everywhere:

* **ensemble rule**: the fracture probability of a run is the mean of its trials'
  probabilities (:meth:`TrainedRun.ensemble`); dissection and Grad-CAM explain the first
  trial (:attr:`TrainedRun.model`), the model whose units the concept atlas describes.
* **operating point**: ``operating_point.json`` in the run directory (written by
  ``spinefx crossval --apply-to RUN``) when present; otherwise the patch classifier falls back
  to its training threshold and the voxel classifier has none (its ``flagged`` column then
  stays empty and :attr:`TrainedRun.operating_point_note` says why).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from spinefx.errors import InputError
from spinefx.runs.layout import RunPaths, trial_dirs

#: checkpoint model kind -> run kind
RUN_KINDS = {"patch_classifier": "patch", "voxel_classifier": "voxel"}
#: what to do with a run of each kind (for wrong-kind errors)
_USE = {
    "patch": "spinefx predict SCAN --model RUN (patch classifier)",
    "voxel": "spinefx detect SCAN --model RUN (voxel classifier)",
}


@dataclass(frozen=True)
class TrainedRun:
    """A loaded run directory of either method.

    Attributes:
        run_dir: the run directory.
        kind: ``patch`` (Engstler et al.) or ``voxel`` (Nicolaes et al.).
        config: the training config (``PatchTrainingConfig`` / ``VoxelTrainingConfig``).
        models: one eval-mode CPU model per trial.
        trial_dirs: the folder of each trial (the run itself for a single-trial run).
        threshold: vertebra decision threshold on the ensemble probability, or None.
        threshold_source: where ``threshold`` comes from (a file, or ``training config``).
        operating_point: the cross-validated operating point, or None.
        operating_point_note: why there is none ("" when there is one).
        training_data: origin of the training data recorded in ``run.json``
            (:func:`spinefx.datasets.provenance.training_data_origin`), or None.
    """

    run_dir: Path
    kind: str
    config: Any
    models: tuple[Any, ...] = field(repr=False)
    trial_dirs: tuple[Path, ...]
    threshold: float | None
    threshold_source: str
    operating_point: dict | None
    operating_point_note: str = ""
    training_data: dict | None = None

    @property
    def training_note(self) -> str:
        """ "Trained only on simulated data ..." for such a model, else ""; every report says it."""
        from spinefx.datasets.provenance import describe_origin

        return describe_origin(self.training_data)

    @property
    def model(self) -> Any:
        """The first trial's model: the one dissection, the atlas and Grad-CAM explain."""
        return self.models[0]

    @property
    def patch_size_vox(self) -> int:
        return int(self.config.model.patch_size_vox)

    @property
    def spacing_mm(self) -> float:
        if self.kind == "voxel":
            return float(self.config.model.input_spacing_mm)
        return float(self.config.model.spacing_mm)

    @staticmethod
    def ensemble(per_trial: Sequence[np.ndarray]) -> np.ndarray:
        """The run's probability from its trials' probabilities: their mean."""
        return np.mean(np.stack([np.asarray(p, float) for p in per_trial]), axis=0)

    def flag(self, probability: float) -> bool | None:
        """``probability >= threshold``; None when the run has no threshold."""
        return None if self.threshold is None else bool(probability >= self.threshold)


def load_trained(run_dir: str | Path, *, expect: str | None = None) -> TrainedRun:
    """Load a run directory of either method (cached per path and checkpoint time).

    Args:
        run_dir: a run written by ``spinefx train`` (or a recipe / the demo).
        expect: ``patch`` or ``voxel`` when the caller needs that kind.

    Raises:
        InputError: no run there, a damaged checkpoint, or a run of the other kind.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise InputError(
            "run directory not found",
            path=path,
            fix="pass a folder made by `spinefx train --model patch|voxel`",
        )
    dirs = trial_dirs(path)
    stamp = tuple(RunPaths(d).checkpoint.stat().st_mtime_ns for d in dirs)
    op = RunPaths(path).operating_point
    stamp += (op.stat().st_mtime_ns if op.is_file() else 0,)
    run = _load_cached(str(path.resolve()), stamp)
    if expect is not None and run.kind != expect:
        raise InputError(
            f"this is a {run.kind}-classifier run, not a {expect}-classifier run",
            path=path,
            fix=f"use {_USE[run.kind]}, or pass a {expect}-classifier run",
        )
    return run


@lru_cache(maxsize=8)
def _load_cached(run_dir: str, stamp: tuple) -> TrainedRun:
    from spinefx.config import load_config
    from spinefx.runs.checkpoint import load_checkpoint
    from spinefx.runs.configs import CONFIG_CLASSES

    path = Path(run_dir)
    dirs = trial_dirs(path)
    loaded = [load_checkpoint(RunPaths(d).checkpoint) for d in dirs]
    kinds = {RUN_KINDS.get(info["model"].get("kind"), "?") for _, info in loaded}
    if len(kinds) != 1 or "?" in kinds:
        raise InputError(
            f"the trials hold models of kinds {sorted(kinds)}", path=path, fix="re-train"
        )
    kind = kinds.pop()
    config_file = RunPaths(path).config
    config_file = config_file if config_file.is_file() else RunPaths(dirs[0]).config
    if config_file.is_file():
        config = load_config(config_file, CONFIG_CLASSES[kind])
    else:  # weights without a training config (e.g. shipped weights): the model's own config
        config = CONFIG_CLASSES[kind](model=loaded[0][0].config)
    op_file = RunPaths(path).operating_point
    op = read_operating_point(op_file) if op_file.is_file() else None
    note = ""
    if op is not None and op.get("vertebra_threshold") is not None:
        threshold, source = float(op["vertebra_threshold"]), str(op_file)
    elif kind == "patch":
        threshold, source = float(loaded[0][1].get("threshold", 0.5)), "training config"
    else:
        threshold, source = None, ""
        note = (
            f"no operating point in {path} (vertebrae are not flagged): run "
            f"`spinefx crossval --model voxel DATA --out DIR --apply-to {path}`"
        )
    return TrainedRun(
        run_dir=path,
        kind=kind,
        config=config,
        models=tuple(m for m, _ in loaded),
        trial_dirs=tuple(dirs),
        threshold=threshold,
        threshold_source=source,
        operating_point=op,
        operating_point_note=note,
        training_data=_recorded_origin(dirs[0]),
    )


def _recorded_origin(run_dir: Path) -> dict | None:
    """``training_data`` of the run's ``run.json`` (None when absent or unreadable)."""
    try:
        values = json.loads(RunPaths(run_dir).provenance.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    origin = values.get("training_data") if isinstance(values, dict) else None
    return origin if isinstance(origin, dict) else None


def read_operating_point(path: str | Path) -> dict:
    """An ``operating_point.json`` (cross-validation output or a run's copy), validated.

    Raises:
        InputError: unreadable or truncated JSON, not a mapping, or a threshold that is not a
            number in [0, 1] (``vertebra_threshold`` may be null or NaN: then None).
    """
    import math

    path = Path(path)
    fix = "re-run spinefx crossval (and --apply-to RUN), or delete the file"
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the operating point ({exc})", path=path, fix=fix) from exc
    if not isinstance(values, dict):
        raise InputError("the operating point is not a JSON object", path=path, fix=fix)
    if isinstance(values.get("vertebra_threshold"), float) and math.isnan(
        values["vertebra_threshold"]
    ):
        values["vertebra_threshold"] = None  # cross-validation without both classes: none
    for key in ("probability_threshold", "vertebra_threshold"):
        value = values.get(key)
        if value is None:
            continue
        if not isinstance(value, int | float) or not (math.isfinite(value) and 0 <= value <= 1):
            raise InputError(f"{key} must be a number in [0, 1], got {value!r}", path=path, fix=fix)
    noise = values.get("noise_threshold_vox")
    if noise is not None and (not isinstance(noise, int | float) or noise < 0):
        raise InputError(f"noise_threshold_vox must be >= 0, got {noise!r}", path=path, fix=fix)
    return values


def clear_cache() -> None:
    """Forget loaded runs (after re-training into the same folder in-process)."""
    _load_cached.cache_clear()

"""The run directory contract: what a trained run holds, by name.

A run directory is the single source of truth of one trained model (both methods)::

    config.yaml           the training config (PatchTrainingConfig / VoxelTrainingConfig)
    checkpoint.pt         best weights + model config (``torch.load(weights_only=True)``)
    metrics.json          the run record (:data:`RUN_RECORD_KEYS` + method-specific metrics)
    history.csv           one row per epoch
    splits.json           the cases of each split
    run.json              provenance (data folder, seed, code version)
    last.ckpt             training state after the last completed epoch, for ``--resume``
                          (rewritten atomically after every epoch; both methods)
    operating_point.json  decision thresholds chosen by cross-validation (optional)
    trial-<i>/            one sub-run per trial of a multi-trial run (each with the files above)
    log.txt               the training log (patch classifier)
    errors.csv            scans skipped by training, with the reason (voxel classifier)
    dissection/           network dissection outputs (concept atlas)

Everything that reads or writes a run names its files through :class:`RunPaths`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spinefx.errors import InputError

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.yaml"
METRICS = "metrics.json"
HISTORY = "history.csv"
SPLITS = "splits.json"
PROVENANCE = "run.json"
#: written after every epoch (atomically: a kill never leaves half a file), read by --resume;
#: Lightning's state for the patch classifier, a plain dict for the voxel classifier
LAST_STATE = "last.ckpt"
OPERATING_POINT = "operating_point.json"
DISSECTION = "dissection"
LOG = "log.txt"
ERRORS = "errors.csv"

#: keys every run's ``metrics.json`` holds, for both methods (one run-record schema); in a
#: multi-trial run ``best_epoch`` and ``epochs_trained`` are lists, one value per trial
RUN_RECORD_KEYS = ("kind", "seed", "best_epoch", "epochs_trained", "train_seconds", "parameters")


@dataclass(frozen=True)
class RunPaths:
    """Named paths of one run directory (or of one trial folder of it)."""

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def checkpoint(self) -> Path:
        return self.root / CHECKPOINT

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def history(self) -> Path:
        return self.root / HISTORY

    @property
    def splits(self) -> Path:
        return self.root / SPLITS

    @property
    def provenance(self) -> Path:
        return self.root / PROVENANCE

    @property
    def last_state(self) -> Path:
        return self.root / LAST_STATE

    @property
    def operating_point(self) -> Path:
        return self.root / OPERATING_POINT

    @property
    def log(self) -> Path:
        return self.root / LOG

    @property
    def errors(self) -> Path:
        """Scans a training run skipped, with the reason (``case_id,problem``)."""
        return self.root / ERRORS

    @property
    def dissection(self) -> Path:
        return self.root / DISSECTION

    def trial(self, index: int) -> RunPaths:
        return RunPaths(self.root / f"trial-{index}")


def trial_dirs(run_dir: str | Path) -> list[Path]:
    """The trained model folders of a run: ``run_dir`` itself or its ``trial-<i>`` folders.

    Raises:
        InputError: the folder holds no checkpoint.
    """
    run_dir = Path(run_dir)
    if RunPaths(run_dir).checkpoint.is_file():
        return [run_dir]
    trials = sorted(
        (p for p in run_dir.glob("trial-*") if RunPaths(p).checkpoint.is_file()),
        key=lambda p: int(p.name.split("-")[1]),
    )
    if not trials:
        raise InputError(
            f"no {CHECKPOINT} in the run directory or its trial-* folders",
            path=run_dir,
            fix="pass a run directory made by `spinefx train --model patch|voxel`",
        )
    return trials

"""Train the patch classifier into a run directory (one or several seeded trials).

Run directory (``run_dir``; with ``trials > 1`` each trial is ``run_dir/trial-<i>/`` and
``run_dir`` holds the shared config, splits and the aggregate):

* ``config.yaml``: the :class:`PatchTrainingConfig`; ``run.json``: data folder, seeds, devices;
* ``splits.json``: how the split was made, case ids and counts per split, exclusion counts;
* ``checkpoint.pt``: best model (plain state dict + config, ``torch.load(weights_only=True)``);
* ``last.ckpt``: Lightning's training state, rewritten atomically after every epoch (after its
  validation): ``resume=True`` (``spinefx train --resume``) continues a run killed at any
  point with the epoch after the last completed one, with optimizer, early-stopping,
  best-checkpoint and random-number state restored; a corrupt one is an ``InputError``;
* ``history.csv``: one row per epoch (rows past the resumed epoch are dropped on resume);
* ``metrics.json``: best epoch and its validation metrics, wall time, parameter count;
* ``log.txt``: the log of the run.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spinefx.atomic import write_text_atomic
from spinefx.config import save_config
from spinefx.datasets.patch_manifest import read_patch_manifest, usable_vertebrae
from spinefx.datasets.provenance import training_data_origin
from spinefx.datasets.splits import assign_splits
from spinefx.errors import InputError
from spinefx.runs.configs import PatchTrainingConfig
from spinefx.runs.layout import RunPaths

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LaunchOptions:
    """How Lightning runs: accelerator ("cpu", "gpu", "auto"), devices, nodes (DDP when > 1)."""

    accelerator: str = "cpu"
    devices: int | str = 1
    num_nodes: int = 1


def split_vertebrae(
    prepared_dir: str | Path, config: PatchTrainingConfig, *, seed: int
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Usable vertebrae of a prepared folder with a ``split`` column, and the splits record."""
    table = read_patch_manifest(prepared_dir)
    kept, counts = usable_vertebrae(
        table,
        include_cervical=config.include_cervical,
        manifest_path=Path(prepared_dir) / "manifest.csv",
    )
    if kept.empty:
        raise InputError(
            "no usable (graded, metal-free) vertebrae in the manifest",
            path=prepared_dir,
            fix="check the grades given to prepare",
        )
    split, record = assign_splits(
        kept, val_fraction=config.val_fraction, test_fraction=config.test_fraction, seed=seed
    )
    kept = kept.assign(split=split.to_numpy())
    record["excluded"] = counts.as_dict()
    record["data_dir"] = str(Path(prepared_dir).resolve())
    return kept, record


def _dataset(rows: pd.DataFrame, config: PatchTrainingConfig, *, augment: bool):
    from spinefx.datasets.patch_augmentation import PatchAugmenter
    from spinefx.datasets.patch_dataset import PatchDataset

    augmenter = None
    if augment and config.augmentation.enabled:
        augmenter = PatchAugmenter(config.augmentation, spacing_mm=config.model.spacing_mm)
    return PatchDataset(
        rows["abs_path"].tolist(),
        rows["fractured"].astype(int).tolist(),
        patch_size_vox=config.model.patch_size_vox,
        spacing_mm=config.model.spacing_mm,
        augment=augmenter,
        cache=config.cache_patches,
    )


def make_loaders(table: pd.DataFrame, config: PatchTrainingConfig, *, seed: int, trainer: Any):
    """Balanced, augmented train loader and plain validation loader (sharded for DDP)."""
    from torch.utils.data import DataLoader, DistributedSampler

    from spinefx.datasets.balanced_sampler import BalancedEpochSampler

    train = table[table["split"] == "train"].reset_index(drop=True)
    val = table[table["split"] == "val"].reset_index(drop=True)
    for name, rows in (("train", train), ("val", val)):
        if rows.empty or rows["fractured"].nunique() < 2:
            raise InputError(
                f"the {name} split needs fractured and normal vertebrae; it has "
                f"{int(rows['fractured'].sum())} fractured of {len(rows)}",
                fix="use more scans or other split fractions",
            )
    sampler = BalancedEpochSampler(
        train["fractured"].astype(int).tolist(),
        epoch_size=config.epoch_size,
        seed=seed,
        rank=trainer.global_rank,
        world_size=trainer.world_size,
    )
    common = {"batch_size": config.batch_size, "num_workers": config.num_workers}
    # Drop a ragged last batch (a batch of 1 breaks BatchNorm statistics), but never the
    # only batch: with few fractures the balanced epoch can be smaller than one batch.
    drop_last = len(sampler) > config.batch_size
    train_loader = DataLoader(
        _dataset(train, config, augment=True), sampler=sampler, drop_last=drop_last, **common
    )
    val_set = _dataset(val, config, augment=False)
    val_sampler = (
        DistributedSampler(val_set, trainer.world_size, trainer.global_rank, shuffle=False)
        if trainer.world_size > 1
        else None
    )
    val_loader = DataLoader(val_set, sampler=val_sampler, shuffle=False, **common)
    return train_loader, val_loader


class _NoAdverts(logging.Filter):
    """Drops third-party adverts ("💡 Tip: ... try installing ...") from Lightning's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).lstrip().startswith("💡")


_NO_ADVERTS = _NoAdverts()
#: warnings of our dependencies about their own internals, not actionable for a user
_DEPENDENCY_NOISE = (r".*isinstance\(treespec, LeafSpec\).*", r".*does not have many workers.*")


def _quiet_lightning() -> None:
    """Lightning's lines once (through spinefx's logging when the application set it up), no
    adverts. Written here because Lightning installs its own console handler on import."""
    names = ("lightning", "lightning.pytorch", "lightning.fabric")
    for name in (*names, "lightning.pytorch.utilities.rank_zero"):
        logger = logging.getLogger(name)
        for h in list(logger.handlers):
            h.addFilter(_NO_ADVERTS)
            if (
                logging.getLogger().handlers
                and isinstance(h, logging.StreamHandler)
                and not (isinstance(h, logging.FileHandler))
            ):
                logger.removeHandler(h)  # the root handler prints it; twice otherwise
        if _NO_ADVERTS not in logger.filters:
            logger.addFilter(_NO_ADVERTS)


def _log_to_file(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    for name in ("spinefx", "lightning"):
        logging.getLogger(name).addHandler(handler)
        if (
            logging.getLogger(name).level in (logging.NOTSET,)
            or logging.getLogger(name).level > logging.INFO
        ):
            logging.getLogger(name).setLevel(logging.INFO)
    return handler


def train_one(
    config: PatchTrainingConfig,
    prepared_dir: str | Path,
    run_dir: str | Path,
    *,
    seed: int = 0,
    split_seed: int | None = None,
    resume: bool = False,
    launch: LaunchOptions | None = None,
) -> dict[str, Any]:
    """Train one seeded model into ``run_dir`` and return its ``metrics.json`` content.

    Args:
        config: the experiment.
        prepared_dir: a folder made by ``spinefx prepare`` (``manifest.csv`` + patches).
        run_dir: output folder (created).
        seed: seeds weights, sampling and augmentation (``lightning.seed_everything``).
        split_seed: seed of the patient split when the manifest has none (default ``seed``).
        resume: continue from ``run_dir/last.ckpt`` when it exists, with the epoch after the
            last completed one (a run that early stopping had ended trains no further).
        launch: accelerator / devices / nodes for Lightning.

    Raises:
        InputError: bad data, or (``resume``) a ``last.ckpt`` that is corrupt or truncated
            or holds another network.
    """
    import lightning.pytorch as pl

    _quiet_lightning()

    from spinefx.training.patch_module import (
        BestCheckpoint,
        PatchClassifierModule,
    )

    launch = launch or LaunchOptions()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = _log_to_file(RunPaths(run_dir).log)
    started = time.perf_counter()
    quiet = warnings.catch_warnings()
    quiet.__enter__()
    for pattern in _DEPENDENCY_NOISE:
        warnings.filterwarnings("ignore", message=pattern)
    try:
        table, record = split_vertebrae(
            prepared_dir, config, seed=seed if split_seed is None else split_seed
        )
        _write_run_record(config, run_dir, record, prepared_dir, seed, split_seed, launch)
        pl.seed_everything(seed, workers=True, verbose=False)
        if config.cpu_threads:
            import torch

            torch.set_num_threads(int(config.cpu_threads))
        module = PatchClassifierModule(config)
        best = BestCheckpoint(run_dir, seed=seed)
        last = RunPaths(run_dir).last_state
        resumed = None
        if resume and last.is_file():
            resumed = _resume_point(last, module, config)
        elif resume:
            log.warning("%s: no last.ckpt to resume from; training from scratch", run_dir)
        max_epochs = config.max_epochs
        if resumed is not None and resumed.stopped_early:
            max_epochs = min(max_epochs, resumed.epochs_completed)  # nothing left to train
        trainer = _make_trainer(config, launch, run_dir, best, max_epochs)
        train_loader, val_loader = make_loaders(table, config, seed=seed, trainer=trainer)
        ckpt_path = None if resumed is None else str(last)
        trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path)
        metrics = _run_metrics(
            config, seed, table, record, trainer, best, module, resumed, started, run_dir
        )
        if trainer.is_global_zero:
            write_text_atomic(RunPaths(run_dir).metrics, json.dumps(metrics, indent=2))
        return metrics
    finally:
        quiet.__exit__(None, None, None)
        for name in ("spinefx", "lightning"):
            logging.getLogger(name).removeHandler(handler)
        handler.close()


def _write_run_record(config, run_dir, record, prepared_dir, seed, split_seed, launch) -> None:
    """config.yaml, splits.json and run.json of a run, before training starts."""
    save_config(config, RunPaths(run_dir).config)
    write_text_atomic(RunPaths(run_dir).splits, json.dumps(record, indent=2))
    write_text_atomic(
        RunPaths(run_dir).provenance,
        json.dumps(
            {
                "data_dir": record["data_dir"],
                "seed": seed,
                "split_seed": seed if split_seed is None else split_seed,
                "launch": launch.__dict__,
                "training_data": training_data_origin(prepared_dir),
            },
            indent=2,
        ),
    )


def _make_trainer(config, launch, run_dir: Path, best, max_epochs: int):
    """The Lightning trainer: best checkpoint, history, early stopping, per-epoch last.ckpt."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import EarlyStopping

    from spinefx.progress import progress_enabled
    from spinefx.training.patch_module import (
        MONITOR,
        AtomicCheckpointIO,
        EpochHistory,
        LastState,
    )

    multi = launch.num_nodes > 1 or str(launch.devices) not in ("1", "auto")
    return pl.Trainer(
        accelerator=launch.accelerator,
        devices=launch.devices,
        num_nodes=launch.num_nodes,
        strategy="ddp" if multi else "auto",
        # SyncBatchNorm is GPU-only in torch; CPU DDP keeps per-process statistics
        sync_batchnorm=multi and config.model.norm == "batch" and launch.accelerator != "cpu",
        max_epochs=max_epochs,
        callbacks=[
            best,
            EpochHistory(run_dir),
            EarlyStopping(
                monitor=MONITOR,
                mode="max",
                patience=config.patience_epochs,
                check_on_train_epoch_end=False,
            ),
            LastState(run_dir),  # after EpochHistory: the epoch's row is written first
        ],
        plugins=[AtomicCheckpointIO()],
        enable_checkpointing=False,  # no ModelCheckpoint: LastState writes last.ckpt
        logger=False,
        enable_progress_bar=progress_enabled(),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        deterministic="warn",
        default_root_dir=run_dir,
    )


def _run_metrics(
    config, seed, table, record, trainer, best, module, resumed, started, run_dir
) -> dict[str, Any]:
    """The run-record schema shared with the voxel classifier (``runs.layout``)."""
    from spinefx.models import count_parameters

    counts = {
        name: {
            "vertebrae": int((table["split"] == name).sum()),
            "fractured": int(table.loc[table["split"] == name, "fractured"].sum()),
        }
        for name in ("train", "val", "test")
    }
    return {
        "kind": config.kind,
        "seed": seed,
        "best_epoch": best.best_epoch,
        "best_val_score": best.best_score,
        "epochs_trained": int(trainer.current_epoch),
        "stopped_early": bool(
            (trainer.should_stop or (resumed is not None and resumed.stopped_early))
            and trainer.current_epoch < config.max_epochs
        ),
        "train_seconds": round(time.perf_counter() - started, 2),
        "parameters": count_parameters(module.model),
        "counts": counts,
        "excluded": record["excluded"],
        "best_val_metrics": _best_val_metrics(run_dir),
    }


@dataclass(frozen=True)
class ResumePoint:
    """Where a ``last.ckpt`` leaves a run: epochs completed, and whether it had stopped early."""

    epochs_completed: int
    stopped_early: bool


def _resume_point(path: Path, module: Any, config: PatchTrainingConfig) -> ResumePoint:
    """Check that ``last.ckpt`` loads and fits the network, and log where training continues.

    Loaded once more here, before Lightning loads it, so a file cut short by a kill (of an
    older spinefx, or a copy) or a changed model config is an ``InputError`` naming the file,
    not a traceback from inside ``trainer.fit``.

    Raises:
        InputError: the file is corrupt or truncated, or holds a different network.
    """
    from spinefx.training.last_state import check_same_network, load_state
    from spinefx.training.patch_module import RESUME_KEY

    state = load_state(path, required=("state_dict", "optimizer_states", "loops"))
    check_same_network(path, state["state_dict"], module.state_dict())
    info = state.get(RESUME_KEY) or {}
    # last.ckpt of older versions was written when training ended: "epoch" is then the count
    done = int(info.get("epochs_completed", state.get("epoch", 0)))
    point = ResumePoint(epochs_completed=done, stopped_early=bool(info.get("stopped_early")))
    if point.stopped_early:
        log.info(
            "resuming from %s: early stopping had ended this run after %d epoch(s); "
            "nothing left to train",
            path,
            done,
        )
    else:
        log.info(
            "resuming from %s: %d epoch(s) completed; continuing with epoch %d "
            "(0-based, as in history.csv) of max_epochs %d",
            path,
            done,
            done,
            config.max_epochs,
        )
    return point


def _best_val_metrics(run_dir: Path) -> dict[str, float]:
    import torch

    path = RunPaths(run_dir).checkpoint
    if not path.is_file():
        return {}
    return dict(torch.load(path, map_location="cpu", weights_only=True)["val_metrics"])


def train_patch_classifier(
    config: PatchTrainingConfig,
    prepared_dir: str | Path,
    run_dir: str | Path,
    *,
    seed: int = 0,
    trials: int = 1,
    resume: bool = False,
    launch: LaunchOptions | None = None,
) -> dict[str, Any]:
    """Train ``trials`` models (seeds ``seed .. seed+trials-1``) on one patient split.

    With one trial the run directory is the trial; with several, each trial trains into
    ``run_dir/trial-<i>/`` on the split made with ``seed``, and ``run_dir/metrics.json``
    aggregates their best validation metrics (mean +- std).

    Returns:
        The content of ``run_dir/metrics.json``.
    """
    if trials < 1:
        raise InputError(f"--trials must be >= 1, got {trials}", fix="use --trials 1 or more")
    if trials == 1:
        return train_one(config, prepared_dir, run_dir, seed=seed, resume=resume, launch=launch)
    run_dir = Path(run_dir)
    per_trial = []
    for i in range(trials):
        trial_dir = run_dir / f"trial-{i}"
        if (
            resume
            and RunPaths(trial_dir).metrics.is_file()
            and not RunPaths(trial_dir).last_state.is_file()
        ):
            per_trial.append(json.loads(RunPaths(trial_dir).metrics.read_text()))
            continue
        log.info("trial %d/%d (seed %d)", i + 1, trials, seed + i)
        per_trial.append(
            train_one(
                config,
                prepared_dir,
                trial_dir,
                seed=seed + i,
                split_seed=seed,
                resume=resume,
                launch=launch,
            )
        )
    save_config(config, RunPaths(run_dir).config)
    RunPaths(run_dir).splits.write_bytes(RunPaths(run_dir / "trial-0").splits.read_bytes())
    aggregate = {
        "kind": config.kind,
        "seed": seed,
        "trials": trials,
        "seeds": [m["seed"] for m in per_trial],
        "best_epoch": [m["best_epoch"] for m in per_trial],
        "epochs_trained": [m["epochs_trained"] for m in per_trial],
        "train_seconds": float(np.sum([m["train_seconds"] for m in per_trial])),
        "parameters": per_trial[0]["parameters"],
        "best_val_metrics": {
            key: _mean_std([m["best_val_metrics"].get(key, np.nan) for m in per_trial])
            for key in ("f1", "auc", "ap", "accuracy")
        },
        "per_trial": per_trial,
    }
    write_text_atomic(RunPaths(run_dir).metrics, json.dumps(aggregate, indent=2))
    return aggregate


def _mean_std(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return {"mean": float("nan"), "std": float("nan")}
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0}

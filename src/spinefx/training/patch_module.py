"""Lightning wiring of the patch classifier: the LightningModule and the run-dir callbacks.

Lightning is imported here at module level: import this module lazily (the CLI and
``spinefx.training`` do) so ``spinefx --help`` stays instant.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.plugins import TorchCheckpointIO

from spinefx.atomic import write_text_atomic
from spinefx.models import build_model
from spinefx.runs.checkpoint import save_checkpoint
from spinefx.runs.configs import PatchTrainingConfig
from spinefx.runs.layout import RunPaths
from spinefx.training.last_state import (
    capture_rng_state,
    remove_stale_parts,
    restore_rng_state,
    save_state_atomic,
)

log = logging.getLogger(__name__)

#: What early stopping and best-checkpoint selection monitor: validation F1 (the paper's
#: criterion), ties broken by validation AUC (F1 saturates on small validation sets).
MONITOR = "val/score"
TIE_BREAK_WEIGHT = 1e-3


def validation_scores(
    y_true: np.ndarray, y_prob: np.ndarray, *, threshold: float
) -> dict[str, float]:
    """F1, AUC, AP and accuracy of fracture probabilities (NaN where undefined).

    Computed here rather than with ``spinefx.evaluation`` so training does not import a later
    pipeline stage; ``tests/training`` checks both agree.
    """
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

    y_true = np.asarray(y_true).astype(int)
    pred = (np.asarray(y_prob) >= threshold).astype(int)
    two_classes = len(np.unique(y_true)) == 2
    return {
        "f1": float(f1_score(y_true, pred, zero_division=np.nan)) if len(y_true) else math.nan,
        "auc": float(roc_auc_score(y_true, y_prob)) if two_classes else math.nan,
        "ap": float(average_precision_score(y_true, y_prob)) if y_true.any() else math.nan,
        "accuracy": float(np.mean(pred == y_true)) if len(y_true) else math.nan,
    }


class PatchClassifierModule(pl.LightningModule):
    """Training/validation steps: BCE with logits, Adam, validation metrics over the whole set."""

    def __init__(self, config: PatchTrainingConfig) -> None:
        super().__init__()
        self.config = config
        self.model = build_model(config.model)
        self._val_probs: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []
        self.val_metrics: dict[str, float] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self.model(batch["image"])
        loss = F.binary_cross_entropy_with_logits(logits, batch["label"])
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(logits))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self.model(batch["image"])
        loss = F.binary_cross_entropy_with_logits(logits, batch["label"])
        self.log("val/loss", loss, on_step=False, on_epoch=True, batch_size=len(logits))
        self._val_probs.append(torch.sigmoid(logits).detach())
        self._val_labels.append(batch["label"].detach())

    def on_validation_epoch_end(self) -> None:
        probs = torch.cat(self._val_probs) if self._val_probs else torch.zeros(0)
        labels = torch.cat(self._val_labels) if self._val_labels else torch.zeros(0)
        self._val_probs.clear()
        self._val_labels.clear()
        if self.trainer.world_size > 1:  # every rank scores the full validation set
            probs = self.all_gather(probs).reshape(-1)
            labels = self.all_gather(labels).reshape(-1)
        metrics = validation_scores(
            labels.cpu().numpy(), probs.float().cpu().numpy(), threshold=self.config.threshold
        )
        f1 = 0.0 if math.isnan(metrics["f1"]) else metrics["f1"]
        auc = 0.0 if math.isnan(metrics["auc"]) else metrics["auc"]
        self.val_metrics = {k: float(metrics[k]) for k in ("f1", "auc", "ap", "accuracy")}
        self.log("val/F1", f1, sync_dist=False)
        self.log("val/AUC", auc, sync_dist=False)
        self.log("val/AP", float(np.nan_to_num(metrics["ap"])), sync_dist=False)
        self.log("val/accuracy", float(np.nan_to_num(metrics["accuracy"])), sync_dist=False)
        self.log(MONITOR, f1 + TIE_BREAK_WEIGHT * auc, sync_dist=False)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            self.model.parameters(),
            lr=self.config.learning_rate,
            weight_decay=self.config.weight_decay,
        )


class BestCheckpoint(pl.Callback):
    """Writes ``checkpoint.pt`` (plain state dict + config) whenever the monitor improves."""

    def __init__(self, run_dir: Path, *, seed: int) -> None:
        self.run_dir = Path(run_dir)
        self.seed = seed
        self.best_score = -math.inf
        self.best_epoch = -1

    def on_validation_end(self, trainer: pl.Trainer, module: PatchClassifierModule) -> None:
        if trainer.sanity_checking or MONITOR not in trainer.callback_metrics:
            return
        score = float(trainer.callback_metrics[MONITOR])
        if score > self.best_score:
            self.best_score, self.best_epoch = score, int(trainer.current_epoch)
            if trainer.is_global_zero:
                save_checkpoint(
                    RunPaths(self.run_dir).checkpoint,
                    module.model,
                    module.config.model,
                    epoch=trainer.current_epoch,
                    seed=self.seed,
                    threshold=module.config.threshold,
                    val_metrics=module.val_metrics,
                )

    def state_dict(self) -> dict:
        return {"best_score": self.best_score, "best_epoch": self.best_epoch}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best_score = state_dict["best_score"]
        self.best_epoch = state_dict["best_epoch"]


HISTORY_FIELDS = (
    "epoch",
    "train_loss",
    "val_loss",
    "val_f1",
    "val_auc",
    "val_ap",
    "val_accuracy",
    "seconds",
)


class EpochHistory(pl.Callback):
    """One row per epoch in ``history.csv``, truncated to the resumed epoch on resume.

    The whole file is rewritten atomically after every epoch (it is small), so a killed run
    never leaves a torn last line.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = RunPaths(Path(run_dir)).history
        self._start = time.perf_counter()
        self._rows: list[dict[str, Any]] = []

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        # after a resume ``current_epoch`` is the number of epochs in last.ckpt: rows of later
        # epochs (run after it was written, before the run was killed) are dropped
        self._rows = [r for r in self._read() if r["epoch"] < trainer.current_epoch]
        self._write()

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        m = trainer.callback_metrics

        def value(key: str) -> str:
            return f"{float(m[key]):.6g}" if key in m else ""

        row = {
            "epoch": trainer.current_epoch,
            "train_loss": value("train/loss"),
            "val_loss": value("val/loss"),
            "val_f1": value("val/F1"),
            "val_auc": value("val/AUC"),
            "val_ap": value("val/AP"),
            "val_accuracy": value("val/accuracy"),
            "seconds": f"{time.perf_counter() - self._start:.2f}",
        }
        self._rows.append(row)
        self._write()
        log.info(
            "epoch %d: train loss %s, val loss %s, val F1 %s, val AUC %s",
            row["epoch"],
            row["train_loss"],
            row["val_loss"],
            row["val_f1"],
            row["val_auc"],
        )

    def _read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        rows = []
        with self.path.open(newline="") as f:
            for r in csv.DictReader(f):
                try:
                    epoch = int(r["epoch"])
                except (KeyError, TypeError, ValueError):
                    continue  # a torn line (older versions appended in place)
                rows.append({**{k: r.get(k) or "" for k in HISTORY_FIELDS}, "epoch": epoch})
        return rows

    def _write(self) -> None:
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        writer.writerows(self._rows)
        write_text_atomic(self.path, text.getvalue())


#: top-level key of last.ckpt with spinefx's own resume information (see :class:`LastState`)
RESUME_KEY = "spinefx"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic in the run directory itself.

    Lightning's own ``_atomic_save`` writes through an fsspec transaction whose temporary
    file is created by ``tempfile.mkstemp()`` in the *system* temporary folder and then
    ``shutil.move``-d into place: when ``/tmp`` is another file system than the run directory
    (tmpfs, a scratch or network volume) that move is a plain copy into ``last.ckpt``, so a
    kill during it leaves a truncated file; nothing is fsynced either. Here the temporary
    file sits next to the target and is fsynced, then ``os.replace``-d (atomic on POSIX).
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        save_state_atomic(checkpoint, path)


class LastState(pl.Callback):
    """Writes ``last.ckpt`` (Lightning's full training state) at the end of every epoch.

    Saved in ``on_train_epoch_end``, which Lightning calls after the epoch's validation: by
    then :class:`BestCheckpoint` and early stopping have seen the epoch's score, and it is
    listed after :class:`EpochHistory`, so ``history.csv`` already has the epoch's row. A
    resume therefore restarts at the next epoch with weights, optimizer, early-stopping and
    best-checkpoint state, and the history, of the same epoch. The file also holds
    ``RESUME_KEY``: epochs completed, whether early stopping had ended the run, and the
    random-number generator states (restored on load, so dropout draws continue too).

    Not ``ModelCheckpoint(save_last=True)``: with ``save_top_k=0`` it writes ``last.ckpt``
    only when training ends, its version counter writes ``last-v1.ckpt`` beside a
    ``last.ckpt`` of an earlier run, and its writes are not atomic across file systems
    (see :class:`AtomicCheckpointIO`, which the trainer must be given as a plugin).
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = RunPaths(Path(run_dir)).last_state
        self._saving = False

    def on_fit_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            remove_stale_parts(self.path)

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._saving = True
        try:  # every rank calls it (strategies may gather state); global rank zero writes
            trainer.save_checkpoint(self.path, weights_only=False)  # + optimizer, loops
        finally:
            self._saving = False

    def on_save_checkpoint(
        self, trainer: pl.Trainer, module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._saving:
            checkpoint[RESUME_KEY] = {
                "epochs_completed": int(trainer.current_epoch) + 1,
                "stopped_early": bool(trainer.should_stop),
                "rng": capture_rng_state(),
            }

    def on_load_checkpoint(
        self, trainer: pl.Trainer, module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        restore_rng_state((checkpoint.get(RESUME_KEY) or {}).get("rng"))

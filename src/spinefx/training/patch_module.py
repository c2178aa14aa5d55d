"""Lightning wiring of the patch classifier: the LightningModule and the run-dir callbacks.

Lightning is imported here at module level: import this module lazily (the CLI and
``spinefx.training`` do) so ``spinefx --help`` stays instant.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F

from spinefx.models import build_model
from spinefx.runs.checkpoint import save_checkpoint
from spinefx.runs.configs import PatchTrainingConfig
from spinefx.runs.layout import RunPaths

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
    """Appends one row per epoch to ``history.csv`` (truncated to the resumed epoch on resume)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = RunPaths(Path(run_dir)).history
        self._start = time.perf_counter()

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        rows = []
        if self.path.is_file():
            with self.path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < trainer.current_epoch]
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
            writer.writeheader()
            writer.writerows(rows)

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
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=HISTORY_FIELDS).writerow(row)
        log.info(
            "epoch %d: train loss %s, val loss %s, val F1 %s, val AUC %s",
            row["epoch"],
            row["train_loss"],
            row["val_loss"],
            row["val_f1"],
            row["val_auc"],
        )

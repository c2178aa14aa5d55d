"""Typed configuration of a patch-classifier training run (saved as ``config.yaml``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from spinefx.config import load_config
from spinefx.datasets.patch_augmentation import PatchAugmentationConfig
from spinefx.errors import InputError
from spinefx.models.patch_classifier import PatchClassifierConfig


@dataclass(frozen=True)
class PatchTrainingConfig:
    """Everything that defines a patch-classifier experiment, besides the seed and the data.

    Attributes:
        model: architecture and input geometry.
        augmentation: training augmentation.
        batch_size: patches per optimisation step (16 as the authors).
        learning_rate: Adam learning rate (1e-3, no weight decay, no schedule).
        weight_decay: Adam weight decay (0 as the paper).
        max_epochs: upper bound on epochs.
        patience_epochs: early stopping when validation F1 has not improved for this long.
        epoch_size: patches per balanced epoch; None for 2 x the number of training fractures.
        threshold: probability threshold of the fracture decision (F1, accuracy, ...).
        val_fraction, test_fraction: patient fractions of the stratified split (used only when
            the manifest has no train/val/test split column).
        include_cervical: keep C1-C7 (excluded as in the paper).
        num_workers: DataLoader worker processes (0 = load in the main process).
        cache_patches: keep patches in memory (fine for the cpu preset).
        cpu_threads: torch intra-op threads on CPU (None = torch's default, all cores); 1 is
            faster than 2 on a CPU shared with other jobs.
    """

    model: PatchClassifierConfig = field(default_factory=PatchClassifierConfig)
    augmentation: PatchAugmentationConfig = field(default_factory=PatchAugmentationConfig)
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    max_epochs: int = 1000
    patience_epochs: int = 50
    epoch_size: int | None = None
    threshold: float = 0.5
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    include_cervical: bool = False
    num_workers: int = 0
    cache_patches: bool = False
    cpu_threads: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2 (BatchNorm needs two samples)")
        if self.max_epochs < 1 or self.patience_epochs < 1:
            raise ValueError("max_epochs and patience_epochs must be >= 1")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")

    def replace(self, **changes) -> PatchTrainingConfig:
        return dataclasses.replace(self, **changes)


PRESET_NAMES = ("cpu", "paper")


def load_training_config(source: str | Path) -> PatchTrainingConfig:
    """Load a preset name (``cpu``, ``paper``) or a YAML file into a training config."""
    if str(source) in PRESET_NAMES:
        ref = resources.files("spinefx.configs").joinpath(f"patch_{source}.yaml")
        with resources.as_file(ref) as path:
            return load_config(path, PatchTrainingConfig)
    path = Path(source)
    if not path.is_file():
        raise InputError(
            f"{source!r} is neither a preset nor a config file",
            fix=f"use --preset {'/'.join(PRESET_NAMES)} or a YAML file path",
        )
    return load_config(path, PatchTrainingConfig)

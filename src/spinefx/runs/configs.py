"""Typed training configurations of both methods (saved as a run's ``config.yaml``) and presets.

One preset mechanism for both: a preset is a YAML file ``spinefx/configs/<kind>_<name>.yaml``
(``patch_cpu``, ``patch_paper``, ``voxel_cpu``, ``voxel_paper``) loaded into the kind's config
dataclass; :func:`load_preset` also takes a YAML file path and keyword overrides. Every bad
setting is an :class:`~spinefx.errors.InputError`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from spinefx.config import from_dict, load_config, to_dict
from spinefx.datasets.patch_augmentation import PatchAugmentationConfig
from spinefx.datasets.voxel_labels import EllipsoidOptions
from spinefx.errors import InputError
from spinefx.models.patch_classifier import PatchClassifierConfig
from spinefx.models.voxel_classifier import VoxelClassifierConfig


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

    kind = "patch"

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
            raise InputError(
                f"batch_size must be >= 2, got {self.batch_size}",
                fix="use 2 or more (BatchNorm needs two samples)",
            )
        if self.max_epochs < 1 or self.patience_epochs < 1:
            raise InputError(
                f"max_epochs and patience_epochs must be >= 1, got {self.max_epochs} and "
                f"{self.patience_epochs}",
                fix="train for at least one epoch",
            )
        if not 0.0 < self.threshold < 1.0:
            raise InputError(
                f"threshold must be in (0, 1), got {self.threshold}", fix="use e.g. 0.5"
            )
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise InputError(
                f"cpu_threads must be >= 1, got {self.cpu_threads}",
                fix="use a positive thread count, or leave it unset for torch's default",
            )

    def replace(self, **changes) -> PatchTrainingConfig:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class VoxelTrainingConfig:
    """Everything that defines a voxel-classifier training run (plus the seed).

    Attributes:
        model: architecture.
        data: dataset root or CSV (``spinefx.io.load_dataset``); empty when cases are passed in.
        epochs: training epochs (paper: 35).
        subepochs: sampling rounds per epoch (DeepMedic: 20).
        segments_per_subepoch: training segments per round (DeepMedic: 1000).
        batch_size: segments per optimiser step (DeepMedic: 10).
        val_segments: fixed validation segments (class-weighted, no augmentation).
        learning_rate, rho, eps: RMSprop settings (DeepMedic defaults).
        l1, l2: weight penalties added to the loss.
        lr_factor, lr_patience_epochs: learning-rate annealing when validation stalls.
        class_proportions: share of segment centres per class (background, normal, fractured).
        augment: options of ``spinefx.datasets.voxel_sampling.draw_augmentation``.
        validation_fraction: share of training scans held out for early stopping.
        ellipsoid: label ellipsoid shape.
        include_cervical: also train on C1-C7.
        seed: seed of splits, sampling, augmentation and initialisation.
        time_limit_minutes: stop after the epoch that passes this much training time (0 = no
            limit); the best checkpoint so far is kept, and ``metrics.json`` records the
            epochs run. For fixed compute budgets (benchmarks, shared GPUs).
    """

    kind = "voxel"

    model: VoxelClassifierConfig = field(default_factory=VoxelClassifierConfig)
    data: str = ""
    epochs: int = 35
    subepochs: int = 20
    segments_per_subepoch: int = 1000
    batch_size: int = 10
    val_segments: int = 500
    learning_rate: float = 1e-3
    rho: float = 0.9
    eps: float = 1e-4
    l1: float = 1e-6
    l2: float = 1e-4
    lr_factor: float = 0.5
    lr_patience_epochs: int = 3
    class_proportions: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)
    augment: dict = field(
        default_factory=lambda: {"flip_probability": 0.5, "shift_std": 0.1, "noise_std": 0.05}
    )
    validation_fraction: float = 0.15
    ellipsoid: EllipsoidOptions = field(default_factory=EllipsoidOptions)
    include_cervical: bool = False
    seed: int = 0
    time_limit_minutes: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.subepochs < 1 or self.segments_per_subepoch < 1:
            raise InputError(
                "epochs, subepochs and segments_per_subepoch must be >= 1, got "
                f"{self.epochs}, {self.subepochs}, {self.segments_per_subepoch}",
                fix="train for at least one epoch of one segment",
            )
        if self.batch_size < 2:
            raise InputError(
                f"batch_size must be >= 2, got {self.batch_size}",
                fix="use 2 or more (BatchNorm needs two samples)",
            )
        if not 0.0 < self.validation_fraction < 1.0:
            raise InputError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction}",
                fix="use e.g. 0.15",
            )

    def replace(self, **changes) -> VoxelTrainingConfig:
        return dataclasses.replace(self, **changes)


#: run kind -> its training-config dataclass
CONFIG_CLASSES: dict[str, type] = {"patch": PatchTrainingConfig, "voxel": VoxelTrainingConfig}
PRESET_NAMES = ("cpu", "paper")


def load_preset(kind: str, source: str | Path = "cpu", **overrides):
    """A training config of ``kind`` from a preset name or a YAML file, with overrides.

    Args:
        kind: ``patch`` or ``voxel``.
        source: preset name (``cpu``, ``paper``) or a YAML config file.
        overrides: top-level fields replaced (nested configs as dicts merge into the preset).

    Raises:
        InputError: unknown kind or preset, missing file, or a bad setting.
    """
    if kind not in CONFIG_CLASSES:
        raise InputError(f"unknown model kind {kind!r}", fix="use patch or voxel")
    cls = CONFIG_CLASSES[kind]
    if str(source) in PRESET_NAMES:
        ref = resources.files("spinefx.configs").joinpath(f"{kind}_{source}.yaml")
        with resources.as_file(ref) as path:
            config = load_config(path, cls)
        where = f"{kind} preset {source}"
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError(
                f"{str(source)!r} is neither a {kind} preset nor a config file",
                fix=f"use --preset {'/'.join(PRESET_NAMES)} or a YAML file path",
            )
        config, where = load_config(path, cls), path.name
    if not overrides:
        return config
    values = to_dict(config)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return from_dict(cls, values, where=where)


def load_training_config(source: str | Path) -> PatchTrainingConfig:
    """The patch-classifier config of a preset name or YAML file (:func:`load_preset`)."""
    return load_preset("patch", source)


def voxel_preset(name: str, **overrides) -> VoxelTrainingConfig:
    """The voxel-classifier config of a preset name, with overrides (:func:`load_preset`)."""
    return load_preset("voxel", name, **overrides)

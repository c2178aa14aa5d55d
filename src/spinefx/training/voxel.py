"""Training loop of the dual-pathway voxel classifier (Nicolaes et al. 2019 / DeepMedic regime).

Per epoch, ``subepochs`` rounds each sample ``segments_per_subepoch`` class-weighted segments
(equal shares of background / normal / fractured centres) from the training scans, with
intensity shift/scale/noise and random flips along every axis; cross-entropy ignoring label
255 plus L1 (1e-6) and L2 (1e-4) penalties; RMSprop (rho 0.9, eps 1e-4, lr 1e-3); the learning
rate is halved when the validation loss has not improved for ``lr_patience_epochs`` epochs.
The checkpoint of the lowest validation loss is kept (early stopping on the 15 % split).

Run directory: ``config.yaml``, ``checkpoint.pt`` (``torch.load(weights_only=True)``),
``history.csv``, ``metrics.json``, ``splits.json``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spinefx.atomic import write_text_atomic
from spinefx.config import save_config
from spinefx.datasets.voxel_labels import FRACTURED, IGNORE_LABEL, NORMAL, EllipsoidOptions
from spinefx.errors import InputError
from spinefx.models.voxel_classifier import VoxelClassifierConfig
from spinefx.training.voxel_data import VoxelCase, sample_segments

log = logging.getLogger(__name__)


@dataclass
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


#: Named presets: the paper's regime and a small CPU one for tests and demos.
VOXEL_PRESETS: dict[str, dict] = {
    "paper": {},
    # 2 mm voxels and 6,000 training segments (~4 min on 2 CPU cores): on 48 `small`
    # synthetic scans this reaches a held-out vertebra AUC of ~0.99 (bench_voxel_crossval.py).
    "cpu": {
        "epochs": 10,
        "subepochs": 3,
        "segments_per_subepoch": 200,
        "batch_size": 10,
        "val_segments": 150,
        "lr_patience_epochs": 1,
        # fixed CT intensity scaling: per-scan z-scoring (the paper's) shifts bone contrast with
        # the field of view, and real spine crops hold little air (bench_real_ct.py)
        "model": {"input_spacing_mm": 2.0, "intensity_normalisation": "ct"},
    },
}


def voxel_preset(name: str, **overrides) -> VoxelTrainingConfig:
    """A preset training config (``paper`` or ``cpu``) with keyword overrides."""
    from spinefx.config import from_dict, to_dict

    if name not in VOXEL_PRESETS:
        raise InputError(
            f"unknown voxel preset {name!r}", fix=f"use one of {sorted(VOXEL_PRESETS)}"
        )
    values = {**to_dict(VoxelTrainingConfig()), **VOXEL_PRESETS[name], **overrides}
    return from_dict(VoxelTrainingConfig, values, where=f"voxel preset {name}")


def weight_penalty(model, *, l1: float, l2: float):
    """``l1 * sum|w| + l2 * sum w^2`` over conv weights (DeepMedic regularises weights only)."""
    import torch

    total = torch.zeros((), device=next(model.parameters()).device)
    for name, p in model.named_parameters():
        if name.endswith("weight") and p.ndim == 5:
            total = total + l1 * p.abs().sum() + l2 * (p**2).sum()
    return total


def dice_scores(pred, target) -> dict[str, float]:
    """Dice of the vertebra (normal+fractured) and fractured classes, ignoring label 255."""
    valid = target != IGNORE_LABEL
    out = {}
    for name, classes in (("dsc_vertebra", (NORMAL, FRACTURED)), ("dsc_fractured", (FRACTURED,))):
        p = np.isin(pred, classes) & valid
        t = np.isin(target, classes) & valid
        denom = p.sum() + t.sum()
        out[name] = float(2 * (p & t).sum() / denom) if denom else float("nan")
    return out


def _evaluate(model, data, *, batch_size: int) -> dict[str, float]:
    import torch

    model.eval()
    device = next(model.parameters()).device
    high, low, target = data
    losses, preds = [], []
    with torch.inference_mode():
        for i in range(0, len(high), batch_size):
            logits = model(
                torch.from_numpy(high[i : i + batch_size, None]).to(device),
                torch.from_numpy(low[i : i + batch_size, None]).to(device),
            )
            t = torch.from_numpy(target[i : i + batch_size]).to(device)
            loss = torch.nn.functional.cross_entropy(
                logits, t, ignore_index=IGNORE_LABEL, reduction="sum"
            )
            losses.append(float(loss))
            preds.append(logits.argmax(1).cpu().numpy())
    n_valid = max(int((target != IGNORE_LABEL).sum()), 1)
    return {"val_loss": sum(losses) / n_valid, **dice_scores(np.concatenate(preds), target)}


def train_voxel_classifier(
    config: VoxelTrainingConfig,
    run_dir: str | Path,
    *,
    train_cases: list[VoxelCase],
    val_cases: list[VoxelCase],
    device: str | None = None,
) -> dict[str, float]:
    """Train on prepared cases and write the run directory.

    Args:
        config: training config (saved as ``config.yaml``).
        run_dir: output folder (created).
        train_cases: prepared training scans.
        val_cases: prepared validation scans (early stopping, LR annealing).
        device: torch device of the network (``"cpu"``, ``"cuda"``, ``"cuda:1"``); None picks
            CUDA when available. Segments are sampled on the CPU either way; the checkpoint
            is device-neutral.

    Returns:
        metrics of the kept (best validation loss) checkpoint.
    """
    import torch

    from spinefx.models import build_model
    from spinefx.models.voxel_classifier import count_parameters, training_geometry
    from spinefx.progress import progress
    from spinefx.training.patch_checkpoint import save_checkpoint

    if not train_cases or not val_cases:
        raise InputError(
            f"need training and validation scans, got {len(train_cases)} and {len(val_cases)}",
            fix="provide at least 2 annotated scans",
        )
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    splits = {"train": [c.case_id for c in train_cases], "val": [c.case_id for c in val_cases]}
    write_text_atomic(run_dir / "splits.json", json.dumps(splits, indent=2))
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = resolve_device(device)
    model = build_model(config.model).to(device)
    geometry = training_geometry(config.model)
    log.info(
        "voxel classifier %s: %d parameters, on %s",
        config.model.variant,
        count_parameters(model),
        device,
    )
    val_data = sample_segments(
        val_cases,
        config.val_segments,
        geometry,
        rng=np.random.default_rng(config.seed + 1),
        class_proportions=config.class_proportions,
        augment=None,
    )
    opt = torch.optim.RMSprop(
        model.parameters(), lr=config.learning_rate, alpha=config.rho, eps=config.eps
    )
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=config.lr_factor, patience=config.lr_patience_epochs
    )
    history, best = [], None
    started = time.monotonic()
    for epoch in progress(range(config.epochs), desc="voxel epochs", total=config.epochs):
        train_loss = _train_epoch(model, opt, train_cases, geometry, config, rng)
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "lr": opt.param_groups[0]["lr"],
            **_evaluate(model, val_data, batch_size=config.batch_size),
        }
        sched.step(row["val_loss"])
        history.append(row)
        log.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in row.items()})
        if best is None or row["val_loss"] < best["val_loss"]:
            best = row
            save_checkpoint(
                run_dir / "checkpoint.pt",
                model,
                config.model,
                epoch=epoch,
                seed=config.seed,
                threshold=0.5,
                val_metrics={k: v for k, v in row.items() if k != "epoch"},
            )
        _write_history(run_dir / "history.csv", history)
        minutes = (time.monotonic() - started) / 60
        if config.time_limit_minutes and minutes >= config.time_limit_minutes:
            log.info("time limit: stopping after epoch %d (%.1f min)", epoch, minutes)
            break
    metrics = {
        "best_epoch": best["epoch"],
        "epochs_run": len(history),
        "train_minutes": (time.monotonic() - started) / 60,
        **{k: v for k, v in best.items() if k != "epoch"},
        "n_parameters": count_parameters(model),
        "n_train": len(train_cases),
        "n_val": len(val_cases),
    }
    write_text_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    return metrics


def _train_epoch(model, opt, cases, geometry, config: VoxelTrainingConfig, rng) -> float:
    import torch

    device = next(model.parameters()).device
    losses = []
    for _ in range(config.subepochs):
        high, low, target = sample_segments(
            cases,
            config.segments_per_subepoch,
            geometry,
            rng=rng,
            class_proportions=config.class_proportions,
            augment=config.augment,
        )
        order = rng.permutation(len(high))
        model.train()
        for i in range(0, len(order), config.batch_size):
            idx = order[i : i + config.batch_size]
            if len(idx) < 2:  # BatchNorm needs more than one sample
                continue
            logits = model(
                torch.from_numpy(high[idx, None]).to(device),
                torch.from_numpy(low[idx, None]).to(device),
            )
            loss = torch.nn.functional.cross_entropy(
                logits, torch.from_numpy(target[idx]).to(device), ignore_index=IGNORE_LABEL
            )
            total = loss + weight_penalty(model, l1=config.l1, l2=config.l2)
            opt.zero_grad()
            total.backward()
            opt.step()
            losses.append(loss.item())
    return float(np.mean(losses)) if losses else float("nan")


def _write_history(path: Path, rows: list[dict]) -> None:
    keys = list(rows[0])
    lines = [",".join(keys)] + [",".join(f"{r[k]:.6g}" for k in keys) for r in rows]
    write_text_atomic(path, "\n".join(lines) + "\n")


def split_validation(
    cases: list[VoxelCase], *, fraction: float, seed: int
) -> tuple[list[VoxelCase], list[VoxelCase]]:
    """Hold out ``fraction`` of the scans (at least 1), stratified by patient fracture status."""
    rng = np.random.default_rng(seed)
    pos = [c for c in cases if c.fractured]
    neg = [c for c in cases if not c.fractured]
    n_val = max(1, round(fraction * len(cases)))
    n_pos = min(len(pos), max(0, round(n_val * len(pos) / max(len(cases), 1))))
    n_neg = min(len(neg), n_val - n_pos)
    val_ids = {c.case_id for c in [*rng.permutation(pos)[:n_pos], *rng.permutation(neg)[:n_neg]]}
    if not val_ids:
        val_ids = {cases[0].case_id}
    train = [c for c in cases if c.case_id not in val_ids]
    val = [c for c in cases if c.case_id in val_ids]
    return train, val


def resolve_device(device: str | None = None):
    """The torch device to use: ``device`` if given, else CUDA when available, else the CPU."""
    import torch

    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def load_voxel_model(run_dir: str | Path, *, device: str | None = "cpu"):
    """The trained voxel classifier of a run directory (eval mode) and its checkpoint info.

    Args:
        run_dir: run directory with ``checkpoint.pt``.
        device: where to put the model; None picks CUDA when available (:func:`resolve_device`).
    """
    from spinefx.training.patch_checkpoint import load_checkpoint

    path = Path(run_dir) / "checkpoint.pt"
    model, info = load_checkpoint(path)
    if info["model"].get("kind") != "voxel_classifier":
        raise InputError(
            f"run holds a {info['model'].get('kind')} model, not a voxel classifier",
            path=run_dir,
            fix="pass a run directory made by the voxel classifier training",
        )
    return model.to(resolve_device(device)), info


def train_voxel_run(
    config: VoxelTrainingConfig,
    run_dir: str | Path,
    *,
    cases: list | None = None,
    device: str | None = None,
) -> dict[str, float]:
    """Train from a dataset: load ``config.data`` (or ``cases``), hold out 15 %, train.

    Args:
        config: training config; ``config.data`` is read with ``spinefx.io.load_dataset`` when
            ``cases`` is None.
        run_dir: output run directory.
        cases: :class:`~spinefx.records.Case` list or prepared ``VoxelCase`` list.
        device: torch device (None: CUDA when available).

    Returns:
        metrics of the kept checkpoint; problems with skipped scans go to ``errors.csv``.
    """
    from spinefx.training.voxel_data import load_voxel_cases

    if cases is None:
        if not config.data:
            raise InputError("no training data", fix="set `data` in the config or pass --train")
        from spinefx.io import load_dataset

        cases = load_dataset(config.data)
    problems: list[tuple[str, str]] = []
    if cases and not isinstance(cases[0], VoxelCase):
        cases, problems = load_voxel_cases(
            cases,
            include_cervical=config.include_cervical,
            ellipsoid=config.ellipsoid,
            spacing_mm=config.model.input_spacing_mm,
            normalisation=config.model.intensity_normalisation,
        )
    if problems:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        lines = ["case_id,problem"] + [f'{c},"{m}"' for c, m in problems]
        write_text_atomic(Path(run_dir) / "errors.csv", "\n".join(lines) + "\n")
    train, val = split_validation(cases, fraction=config.validation_fraction, seed=config.seed)
    return train_voxel_classifier(config, run_dir, train_cases=train, val_cases=val, device=device)

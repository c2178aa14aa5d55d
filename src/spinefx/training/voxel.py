"""Training loop of the dual-pathway voxel classifier (Nicolaes et al. 2019 / DeepMedic regime).

Per epoch, ``subepochs`` rounds each sample ``segments_per_subepoch`` class-weighted segments
(equal shares of background / normal / fractured centres) from the training scans, with
intensity shift/scale/noise and random flips along every axis; cross-entropy ignoring label
255 plus L1 (1e-6) and L2 (1e-4) penalties; RMSprop (rho 0.9, eps 1e-4, lr 1e-3); the learning
rate is halved when the validation loss has not improved for ``lr_patience_epochs`` epochs.
The checkpoint of the lowest validation loss is kept (early stopping on the 15 % split).

Run directory: ``config.yaml``, ``checkpoint.pt`` (``torch.load(weights_only=True)``),
``history.csv``, ``metrics.json``, ``splits.json``, and ``last.ckpt``: the training state
(:data:`VOXEL_STATE_FORMAT`: weights, optimizer, LR schedule, history, best epoch, elapsed
time and random-number states), rewritten atomically after every epoch. ``resume=True``
(``spinefx train --model voxel --resume``) continues a killed run with the epoch after the
last completed one, drawing the segments an uninterrupted run would have drawn.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from spinefx.atomic import write_text_atomic
from spinefx.config import save_config
from spinefx.datasets.provenance import origin_of_scans
from spinefx.datasets.voxel_cases import VoxelCase, sample_segments
from spinefx.datasets.voxel_labels import FRACTURED, IGNORE_LABEL, NORMAL
from spinefx.errors import InputError
from spinefx.runs.configs import VoxelTrainingConfig
from spinefx.runs.layout import RunPaths

log = logging.getLogger(__name__)

#: ``format`` of the voxel classifier's ``last.ckpt``, a plain ``weights_only`` dict:
#: ``epochs_completed, stopped, model, optimizer, scheduler, history, best, splits,
#: train_seconds, rng`` (``sampling``: the segment sampler's generator, ``global``: torch's
#: and Python's generators)
VOXEL_STATE_FORMAT = "spinefx-voxel-state-v1"
_STATE_KEYS = (
    "format",
    "epochs_completed",
    "stopped",
    "model",
    "optimizer",
    "scheduler",
    "history",
    "best",
    "splits",
    "train_seconds",
    "rng",
)


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
    resume: bool = False,
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
        resume: continue from ``run_dir/last.ckpt`` when it exists, with the epoch after the
            last completed one (``config.epochs`` may have been raised since); the time
            limit and ``train_seconds`` count the earlier sessions too, and a run that stopped
            at its time limit trains no further.

    Returns:
        metrics of the kept (best validation loss) checkpoint.

    Raises:
        InputError: too few scans, or (``resume``) a ``last.ckpt`` that is corrupt,
            truncated, of another network or of other scans.
    """
    import torch

    from spinefx.models import build_model
    from spinefx.models.voxel_classifier import count_parameters, training_geometry
    from spinefx.progress import progress
    from spinefx.training.last_state import capture_rng_state, remove_stale_parts

    if not train_cases or not val_cases:
        raise InputError(
            f"need training and validation scans, got {len(train_cases)} and {len(val_cases)}",
            fix="provide at least 2 annotated scans",
        )
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = RunPaths(run_dir)
    save_config(config, paths.config)
    splits = {"train": [c.case_id for c in train_cases], "val": [c.case_id for c in val_cases]}
    write_text_atomic(paths.splits, json.dumps(splits, indent=2))
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
    state = _resume_state(paths.last_state, model, splits) if resume else None
    remove_stale_parts(paths.last_state)
    history, best, start, stopped, seconds_before = _restore(
        state, model, opt, sched, rng, paths, config
    )
    started = time.monotonic() - seconds_before
    epochs = range(start, start if stopped else max(start, config.epochs))
    for epoch in progress(epochs, desc="voxel epochs", total=len(epochs)):
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
            _keep_best(paths.checkpoint, model, config, row)
        _write_history(paths.history, history)
        minutes = (time.monotonic() - started) / 60
        stopped = bool(config.time_limit_minutes and minutes >= config.time_limit_minutes)
        # after checkpoint.pt and history.csv, so a resume never repeats a recorded epoch
        _save_state(
            paths.last_state,
            epochs_completed=epoch + 1,
            stopped=stopped,
            model=model,
            opt=opt,
            sched=sched,
            history=history,
            best=best,
            splits=splits,
            train_seconds=time.monotonic() - started,
            rng={"sampling": rng.bit_generator.state, "global": capture_rng_state()},
        )
        if stopped:
            log.info("time limit: stopping after epoch %d (%.1f min)", epoch, minutes)
            break
    metrics = {  # the run-record schema shared with the patch classifier (runs.layout)
        "kind": config.kind,
        "seed": config.seed,
        "best_epoch": best["epoch"],
        "epochs_trained": len(history),
        "train_seconds": round(time.monotonic() - started, 2),
        "parameters": count_parameters(model),
        **{k: v for k, v in best.items() if k != "epoch"},
        "n_train": len(train_cases),
        "n_val": len(val_cases),
    }
    write_text_atomic(paths.metrics, json.dumps(metrics, indent=2))
    return metrics


def _keep_best(path: Path, model, config: VoxelTrainingConfig, row: dict) -> None:
    """Write ``checkpoint.pt`` for the epoch of ``row`` (the best validation loss so far)."""
    from spinefx.runs.checkpoint import save_checkpoint

    save_checkpoint(
        path,
        model,
        config.model,
        epoch=row["epoch"],
        seed=config.seed,
        threshold=0.5,
        val_metrics={k: v for k, v in row.items() if k != "epoch"},
    )


def _restore(state, model, opt, sched, rng, paths: RunPaths, config):
    """Apply a resume state (or none) to the training objects; return
    ``(history, best, epochs_completed, stopped, train_seconds_before)``."""
    from spinefx.training.last_state import restore_rng_state

    if state is None:
        return [], None, 0, False, 0.0
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    history, best = list(state["history"]), state["best"]
    start, stopped = int(state["epochs_completed"]), bool(state["stopped"])
    seconds_before = float(state["train_seconds"])
    rng.bit_generator.state = state["rng"]["sampling"]
    restore_rng_state(state["rng"]["global"])
    if history:  # drop rows of an epoch that ran after last.ckpt was written
        _write_history(paths.history, history)
    if stopped:
        log.info(
            "resuming from %s: the run had stopped at its time limit after %d epoch(s); "
            "nothing left to train",
            paths.last_state,
            start,
        )
    else:
        log.info(
            "resuming from %s: %d epoch(s) completed; continuing with epoch %d (0-based, "
            "as in history.csv) of %d",
            paths.last_state,
            start,
            start,
            config.epochs,
        )
    return history, best, start, stopped, seconds_before


def _save_state(path: Path, *, model, opt, sched, **values) -> None:
    from spinefx.training.last_state import save_state_atomic

    state = {
        "format": VOXEL_STATE_FORMAT,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        **values,
    }
    save_state_atomic(state, path)


def _resume_state(path: Path, model, splits: dict[str, list[str]]) -> dict | None:
    """The voxel training state in ``path`` (None, with a warning, when there is none).

    Raises:
        InputError: the file is corrupt or truncated, not a voxel classifier's, of another
            network, or of other training/validation scans.
    """
    from spinefx.training.last_state import check_same_network, load_state

    if not path.is_file():
        log.warning("%s: no %s to resume from; training from scratch", path.parent, path.name)
        return None
    state = load_state(path, required=_STATE_KEYS)
    fix = f"delete {path.name}, or train without --resume (into a new --out folder)"
    if state["format"] != VOXEL_STATE_FORMAT:
        raise InputError(
            f"not a voxel classifier training state (format {state['format']!r})",
            path=path,
            fix=fix,
        )
    check_same_network(path, state["model"], model.state_dict())
    if {k: list(v) for k, v in state["splits"].items()} != splits:
        raise InputError(
            "the training state to resume from was trained on other training/validation "
            "scans (the data or the seed changed)",
            path=path,
            fix=f"resume with the data and seed the run was trained with, or {fix}",
        )
    return state


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


def train_voxel_run(
    config: VoxelTrainingConfig,
    run_dir: str | Path,
    *,
    cases: list | None = None,
    device: str | None = None,
    resume: bool = False,
) -> dict[str, float]:
    """Train from a dataset: load ``config.data`` (or ``cases``), hold out 15 %, train.

    Args:
        config: training config; ``config.data`` is read with ``spinefx.io.load_dataset`` when
            ``cases`` is None.
        run_dir: output run directory.
        cases: :class:`~spinefx.records.Case` list or prepared ``VoxelCase`` list.
        device: torch device (None: CUDA when available).
        resume: continue from ``run_dir/last.ckpt`` (see :func:`train_voxel_classifier`).

    Returns:
        metrics of the kept checkpoint; problems with skipped scans go to ``errors.csv``.
    """
    from spinefx.datasets.voxel_cases import load_voxel_cases_for

    if cases is None:
        if not config.data:
            raise InputError("no training data", fix="set `data` in the config or pass --train")
        from spinefx.io import load_dataset

        cases = load_dataset(config.data)
    scans = [Path(c.scan_path) for c in cases if getattr(c, "scan_path", None)]
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    provenance = {"data": config.data, "seed": config.seed, "training_data": origin_of_scans(scans)}
    write_text_atomic(RunPaths(run_dir).provenance, json.dumps(provenance, indent=2))
    problems: list[tuple[str, str]] = []
    if cases and not isinstance(cases[0], VoxelCase):
        cases, problems = load_voxel_cases_for(cases, config)
    if problems:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        lines = ["case_id,problem"] + [f'{c},"{m}"' for c, m in problems]
        write_text_atomic(RunPaths(run_dir).errors, "\n".join(lines) + "\n")
    train, val = split_validation(cases, fraction=config.validation_fraction, seed=config.seed)
    return train_voxel_classifier(
        config, run_dir, train_cases=train, val_cases=val, device=device, resume=resume
    )

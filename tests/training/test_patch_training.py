"""Training a tiny patch classifier: run directory, checkpoint format, resume, augmentation."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tiny_training import tiny_patch_config

from spinefx.datasets.patch_dataset import load_patch
from spinefx.datasets.patch_toy import write_toy_prepared
from spinefx.evaluation.metrics import binary_metrics
from spinefx.runs.checkpoint import load_checkpoint
from spinefx.runs.configs import load_training_config
from spinefx.runs.layout import RUN_RECORD_KEYS
from spinefx.training.patch_module import validation_scores
from spinefx.training.patch_training import make_loaders, split_vertebrae, train_patch_classifier


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_prepared(tmp_path_factory.mktemp("toy"), n_cases=10, seed=2)


def test_presets_load_and_match_the_paper_settings():
    paper = load_training_config("paper")
    assert paper.model.patch_size_vox == 96 and paper.model.spacing_mm == 1.0
    assert paper.learning_rate == 1e-3 and paper.weight_decay == 0.0
    assert paper.patience_epochs == 50 and paper.model.dropout == 0.3
    cpu = load_training_config("cpu")
    assert cpu.model.patch_size_vox * cpu.model.spacing_mm == 96  # same field of view


def test_train_writes_run_dir_and_a_weights_only_checkpoint(toy, tmp_path):
    run = tmp_path / "run"
    metrics = train_patch_classifier(tiny_patch_config(), toy, run, seed=3)
    for name in (
        "config.yaml",
        "splits.json",
        "checkpoint.pt",
        "last.ckpt",
        "metrics.json",
        "history.csv",
        "log.txt",
        "run.json",
    ):
        assert (run / name).is_file(), name
    payload = torch.load(run / "checkpoint.pt", weights_only=True)
    assert payload["model"]["kind"] == "patch_classifier"
    assert metrics["excluded"]["foreign_material"] == 1 and metrics["excluded"]["ungraded"] == 1
    assert set(RUN_RECORD_KEYS) <= set(metrics) and metrics["kind"] == "patch"
    splits = json.loads((run / "splits.json").read_text())
    assert not set(splits["train"]["cases"]) & set(splits["test"]["cases"])

    model, info = load_checkpoint(run / "checkpoint.pt")
    assert not model.training and info["epoch"] == metrics["best_epoch"]
    table, _ = split_vertebrae(toy, tiny_patch_config(), seed=3)
    x = torch.from_numpy(
        np.stack([load_patch(p, patch_size_vox=16, spacing_mm=6.0) for p in table["abs_path"][:4]])
    )
    with torch.no_grad():  # eval mode: a sample's probability ignores the rest of the batch
        assert torch.allclose(model(x)[:1], model(x[:1]), atol=1e-5)


def test_resume_continues_from_last_checkpoint(toy, tmp_path):
    run = tmp_path / "run"
    train_patch_classifier(tiny_patch_config(max_epochs=1), toy, run, seed=0)
    first = (run / "history.csv").read_text().splitlines()
    train_patch_classifier(tiny_patch_config(max_epochs=2), toy, run, seed=0, resume=True)
    with (run / "history.csv").open() as f:
        epochs = [int(r["epoch"]) for r in csv.DictReader(f)]
    assert epochs == [0, 1]
    # epoch 0 was not trained again: its row (with its own timing) is kept verbatim
    assert (run / "history.csv").read_text().splitlines()[:2] == first[:2]
    assert json.loads((run / "metrics.json").read_text())["epochs_trained"] == 2


def test_training_batches_are_augmented_and_validation_batches_never(toy):
    config = tiny_patch_config(cache_patches=False)
    table, _ = split_vertebrae(toy, config, seed=0)
    trainer = SimpleNamespace(global_rank=0, world_size=1)
    train_loader, val_loader = make_loaders(table, config, seed=0, trainer=trainer)
    train_rows = table[table["split"] == "train"].reset_index(drop=True)
    val_rows = table[table["split"] == "val"].reset_index(drop=True)

    def raw(rows, i):
        return load_patch(rows["abs_path"][int(i)], patch_size_vox=16, spacing_mm=6.0)

    batch = next(iter(train_loader))
    changed = [
        not np.allclose(img.numpy(), raw(train_rows, i))
        for img, i in zip(batch["image"], batch["index"], strict=True)
    ]
    assert sum(changed) >= len(changed) // 2  # augmentation probabilities < 1 per transform
    epoch = [i for i, _ in train_loader.sampler]
    n_pos = int(train_rows["fractured"].sum())
    assert len(epoch) == 2 * n_pos  # perfect balance: every fracture once, as many normals
    assert int(train_rows["fractured"].to_numpy()[epoch].sum()) == n_pos
    for vbatch in val_loader:
        for img, i in zip(vbatch["image"], vbatch["index"], strict=True):
            assert np.array_equal(img.numpy(), raw(val_rows, i))


def test_validation_scores_agree_with_evaluation_metrics():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    p = np.clip(y * 0.3 + rng.random(50) * 0.7, 0, 1)
    ours = validation_scores(y, p, threshold=0.5)
    ref = binary_metrics(y, p, threshold=0.5)
    for key in ("f1", "auc", "ap", "accuracy"):
        assert ours[key] == pytest.approx(ref[key])


def test_an_epoch_smaller_than_one_batch_still_trains(toy, tmp_path):
    # few fractures: the balanced epoch (2 x 2 = 4 patches) is smaller than a batch of 32
    run = tmp_path / "run"
    metrics = train_patch_classifier(
        tiny_patch_config(batch_size=32, epoch_size=4, max_epochs=1), toy, run, seed=1
    )
    assert (run / "checkpoint.pt").is_file()
    assert metrics["epochs_trained"] == 1


def test_lightning_lines_appear_once_and_adverts_not_at_all(capsys):
    import io
    import logging

    import lightning.pytorch  # noqa: F401  (installs Lightning's console handler)

    from spinefx.training.patch_training import _quiet_lightning

    stream = io.StringIO()
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    try:
        _quiet_lightning()
        rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
        rank_zero.info("GPU available: False, used: False")
        rank_zero.info("💡 Tip: For seamless cloud logging, try installing litlogger")
        own_consoles = [
            h
            for name in ("lightning", "lightning.pytorch", "lightning.fabric")
            for h in logging.getLogger(name).handlers
            if type(h) is logging.StreamHandler
        ]
        assert not own_consoles  # with the application's logging, Lightning's own console goes
    finally:
        root.removeHandler(handler)
    text = stream.getvalue() + capsys.readouterr().err
    assert text.count("GPU available") == 1, text
    assert "Tip" not in text

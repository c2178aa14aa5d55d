"""Crash safety: last.ckpt after every epoch, ``--resume`` after ``kill -9``, corrupt states."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_training import TINY_MODEL, phantom, tiny_patch_config, tiny_voxel_config

from spinefx.cli import main
from spinefx.config import save_config
from spinefx.datasets.patch_toy import write_toy_prepared
from spinefx.datasets.voxel_cases import make_voxel_case
from spinefx.errors import InputError
from spinefx.runs.layout import RunPaths
from spinefx.training.patch_training import train_patch_classifier
from spinefx.training.voxel import train_voxel_classifier


def patch_config(**changes):
    """The tiny patch config, one thread, patches cached, no early stop unless asked."""
    return tiny_patch_config(**{"patience_epochs": 50, "cpu_threads": 1, "cache_patches": True,
                                **changes})  # fmt: skip


def voxel_config(**changes):
    """The tiny voxel config with the learning rate changing within 3 epochs: the schedule
    state must be restored for the resumed history to match."""
    return tiny_voxel_config(**{"lr_patience_epochs": 0, **changes})


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_prepared(tmp_path_factory.mktemp("toy"), n_cases=10, seed=2)


@pytest.fixture(scope="module")
def voxel_cases():
    return [
        make_voxel_case(f"p{i}", *phantom(i, (22,) if i % 2 else ()), spacing_mm=2.0)
        for i in range(6)
    ]


def history_rows(run: Path) -> list[dict[str, str]]:
    with RunPaths(run).history.open(newline="") as f:
        return list(csv.DictReader(f))


def epochs_of(run: Path) -> list[int]:
    return [int(r["epoch"]) for r in history_rows(run)]


def _epochs_completed(run: Path) -> int:
    state = torch.load(RunPaths(run).last_state, map_location="cpu", weights_only=True)
    return int(state["spinefx"]["epochs_completed"])


def test_patch_training_killed_in_epoch_3_resumes_at_epoch_3(toy, tmp_path):
    # ~1 s epochs (20 batches of 8 on one thread), so "a third into epoch 3" is well defined
    config = tmp_path / "tiny.yaml"
    save_config(patch_config(max_epochs=5, epoch_size=160), config)
    run = tmp_path / "run"
    argv = ["train", "--model", "patch", "--config", str(config), "--data", str(toy)]
    argv += ["--out", str(run)]
    paths = RunPaths(run)
    with (tmp_path / "first.log").open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "spinefx", *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SPINEFX_PROGRESS": "0"},
        )
        try:
            # epoch 2 is complete once history.csv has 2 rows and last.ckpt was replaced after
            # it (both are written atomically, history first): then epoch 3 has just begun
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, (tmp_path / "first.log").read_text()
                assert time.monotonic() < deadline, "epoch 2 never completed"
                try:
                    done = (
                        len(history_rows(run)) == 2
                        and paths.last_state.stat().st_mtime_ns >= paths.history.stat().st_mtime_ns
                    )
                except FileNotFoundError:
                    done = False
                if done:
                    break
                time.sleep(0.02)
            epoch_seconds = float(history_rows(run)[1]["seconds"])
            time.sleep(0.3 * epoch_seconds)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert epochs_of(run) == [0, 1], "killed after epoch 3 finished: the test's timing is off"
    assert _epochs_completed(run) == 2
    assert not paths.metrics.exists()  # the run never finished
    before = paths.history.read_text().splitlines()

    assert main([*argv, "--resume"]) == 0
    log_text = paths.log.read_text()
    assert "2 epoch(s) completed; continuing with epoch 2" in log_text
    assert "Restored all states from the checkpoint" in log_text
    assert epochs_of(run) == [0, 1, 2, 3, 4]  # no duplicate, no gap
    assert paths.history.read_text().splitlines()[:3] == before  # epochs 0-1 not re-run
    assert log_text.count("epoch 2: train loss") == 1 and "epoch 1: train loss" in log_text
    metrics = json.loads(paths.metrics.read_text())
    assert metrics["epochs_trained"] == 5
    assert _epochs_completed(run) == 5
    assert not list(run.glob(".last.*"))  # no temporary file of the killed write is left


def test_a_kill_during_the_write_leaves_the_previous_last_ckpt(tmp_path):
    from spinefx.training.last_state import remove_stale_parts, save_state_atomic

    last = tmp_path / "last.ckpt"
    save_state_atomic({"epochs_completed": 1}, last)
    before = last.read_bytes()
    # the new state is written in full, then the process dies before the rename
    code = (
        "import os, signal\n"
        "os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)\n"
        "from spinefx.training.last_state import save_state_atomic\n"
        f"save_state_atomic({{'epochs_completed': 2, 'pad': list(range(10**5))}}, {str(last)!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert last.read_bytes() == before  # the previous epoch's state, whole
    assert torch.load(last, weights_only=True) == {"epochs_completed": 1}
    stale = [p for p in tmp_path.iterdir() if p != last]
    assert len(stale) == 1 and stale[0].name.startswith(".last.")
    remove_stale_parts(last)  # what both trainers do before they train
    assert list(tmp_path.iterdir()) == [last]


def test_patch_resume_trains_what_an_uninterrupted_run_trains(toy, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train_patch_classifier(patch_config(max_epochs=3), toy, whole, seed=0)
    train_patch_classifier(patch_config(max_epochs=2), toy, parts, seed=0)
    assert _epochs_completed(parts) == 2  # written every epoch, not only at the end
    train_patch_classifier(patch_config(max_epochs=3), toy, parts, seed=0, resume=True)

    def values(run):  # all but the timing column
        return [{k: v for k, v in r.items() if k != "seconds"} for r in history_rows(run)]

    # weights, optimizer and random-number state restored: the same epoch 2 as without a stop
    assert values(parts) == values(whole)
    a, b = (json.loads(RunPaths(r).metrics.read_text()) for r in (whole, parts))
    assert (a["best_epoch"], a["best_val_metrics"]) == (b["best_epoch"], b["best_val_metrics"])


def test_patch_resume_of_an_early_stopped_run_trains_no_further(toy, tmp_path):
    run = tmp_path / "run"
    first = train_patch_classifier(patch_config(max_epochs=12, patience_epochs=1), toy, run, seed=0)
    if not first["stopped_early"]:
        pytest.skip("the score improved every epoch; early stopping never ended the run")
    rows = RunPaths(run).history.read_text()
    again = train_patch_classifier(
        patch_config(max_epochs=12, patience_epochs=1), toy, run, seed=0, resume=True
    )
    assert RunPaths(run).history.read_text() == rows
    assert again["epochs_trained"] == first["epochs_trained"] and again["stopped_early"]
    assert again["best_epoch"] == first["best_epoch"]


@pytest.fixture(scope="module")
def one_epoch_run(toy, tmp_path_factory):
    run = tmp_path_factory.mktemp("one_epoch") / "run"
    train_patch_classifier(patch_config(max_epochs=1), toy, run, seed=0)
    return run


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes(b"not a checkpoint at all\n" * 100)


@pytest.mark.parametrize("how", ["truncated", "empty", "garbage"])
def test_resume_from_a_corrupt_last_ckpt_is_an_input_error(toy, one_epoch_run, tmp_path, how):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(one_epoch_run, run)
    last = RunPaths(run).last_state
    _damage(last, how)
    with pytest.raises(InputError) as err:
        train_patch_classifier(patch_config(max_epochs=2), toy, run, seed=0, resume=True)
    assert err.value.path == str(last)
    assert "corrupt or truncated" in err.value.problem
    assert "delete last.ckpt" in err.value.fix and "without --resume" in err.value.fix


def test_cli_resume_from_a_corrupt_last_ckpt_says_what_to_do(toy, one_epoch_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(one_epoch_run, run)
    _damage(RunPaths(run).last_state, "truncated")
    config = tmp_path / "tiny.yaml"
    save_config(patch_config(max_epochs=2), config)
    argv = ["train", "--config", str(config), "--data", str(toy), "--out", str(run), "--resume"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"error: {RunPaths(run).last_state}: the training state" in err
    assert "Traceback" not in err and "Fix: delete last.ckpt" in err


def test_resume_with_another_network_is_an_input_error(toy, one_epoch_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(one_epoch_run, run)
    wider = patch_config(model={**TINY_MODEL, "widths": [8, 8, 8, 16]})
    with pytest.raises(InputError, match="different network"):
        train_patch_classifier(wider, toy, run, seed=0, resume=True)


def test_voxel_training_resumes_with_the_next_epoch(voxel_cases, tmp_path, caplog):
    train, val = voxel_cases[:4], voxel_cases[4:]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train_voxel_classifier(voxel_config(epochs=3), whole, train_cases=train, val_cases=val)
    train_voxel_classifier(voxel_config(epochs=2), parts, train_cases=train, val_cases=val)
    state = torch.load(RunPaths(parts).last_state, map_location="cpu", weights_only=True)
    assert state["epochs_completed"] == 2 and len(state["history"]) == 2
    # an epoch that ran after last.ckpt was written, before a kill: its row must go
    with RunPaths(parts).history.open("a") as f:
        f.write("2,9,9,9,9,9\n")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="spinefx.training.voxel"):
        metrics = train_voxel_classifier(
            voxel_config(epochs=3), parts, train_cases=train, val_cases=val, resume=True
        )
    epoch_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert [line.split(":")[0] for line in epoch_lines] == ["epoch 2"]  # only one more epoch
    assert any(
        "2 epoch(s) completed; continuing with epoch 2" in r.getMessage() for r in caplog.records
    )
    # model, optimizer, LR schedule and samplers restored: the same history as without a stop
    assert RunPaths(parts).history.read_text() == RunPaths(whole).history.read_text()
    lrs = [float(line.split(",")[2]) for line in RunPaths(parts).history.read_text().split()[1:]]
    assert len(set(lrs)) > 1, "the learning rate never changed: the schedule went untested"
    assert metrics["epochs_trained"] == 3
    assert metrics["best_epoch"] == json.loads(RunPaths(whole).metrics.read_text())["best_epoch"]
    assert torch.load(RunPaths(parts).last_state, weights_only=True)["epochs_completed"] == 3


def test_voxel_resume_without_a_state_trains_from_scratch(voxel_cases, tmp_path, caplog):
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="spinefx.training.voxel"):
        metrics = train_voxel_classifier(
            voxel_config(epochs=1),
            run,
            train_cases=voxel_cases[:2],
            val_cases=voxel_cases[4:5],
            resume=True,
        )
    assert metrics["epochs_trained"] == 1 and "training from scratch" in caplog.text


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_voxel_resume_from_a_corrupt_or_foreign_state_is_an_input_error(
    voxel_cases, one_epoch_run, tmp_path, how
):
    run = tmp_path / "run"
    config = voxel_config(epochs=1, segments_per_subepoch=10)
    train_voxel_classifier(config, run, train_cases=voxel_cases[:2], val_cases=voxel_cases[4:5])
    last = RunPaths(run).last_state
    _damage(last, how)
    with pytest.raises(InputError, match="corrupt or truncated") as err:
        train_voxel_classifier(
            config, run, train_cases=voxel_cases[:2], val_cases=voxel_cases[4:5], resume=True
        )
    assert err.value.path == str(last) and "without --resume" in err.value.fix
    # the patch classifier's last.ckpt is no voxel training state
    last.write_bytes(RunPaths(one_epoch_run).last_state.read_bytes())
    with pytest.raises(InputError, match="not a spinefx training state"):
        train_voxel_classifier(
            config, run, train_cases=voxel_cases[:2], val_cases=voxel_cases[4:5], resume=True
        )


def test_voxel_resume_on_other_scans_is_an_input_error(voxel_cases, tmp_path):
    run = tmp_path / "run"
    config = voxel_config(epochs=1, segments_per_subepoch=10)
    train_voxel_classifier(config, run, train_cases=voxel_cases[:2], val_cases=voxel_cases[4:5])
    with pytest.raises(InputError, match="other training/validation scans"):
        train_voxel_classifier(
            config, run, train_cases=voxel_cases[1:3], val_cases=voxel_cases[4:5], resume=True
        )

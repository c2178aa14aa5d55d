"""Ctrl-C stops pooled work at once, leaves no partial file, and a rerun completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spinefx.parallel import run_jobs

ROOT = Path(__file__).resolve().parents[2]


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_an_interrupt_cancels_the_queue_and_terminates_the_workers():
    jobs = run_jobs(_sleep, [0.1] + [30.0] * 6, workers=2, desc="sleep")
    assert next(jobs) == 0.1
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        jobs.throw(KeyboardInterrupt)
    assert time.perf_counter() - started < 10, "the workers were waited for"


def test_results_are_all_there_in_order_when_not_interrupted():
    assert list(run_jobs(_sleep, [0.2, 0.0, 0.1], workers=2, ordered=True)) == [0.2, 0.0, 0.1]
    assert sorted(run_jobs(_sleep, [0.0, 0.1], workers=1)) == [0.0, 0.1]


def _partials(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".part" in p.name]


def test_ctrl_c_stops_synth_with_workers_and_a_rerun_completes(tmp_path):
    out = tmp_path / "ds"
    env = {**os.environ, "SPINEFX_PROGRESS": "0", "PYTHONPATH": str(ROOT / "src")}
    command = [
        sys.executable,
        "-m",
        "spinefx",
        "synth",
        "--out",
        str(out),
        "--n-scans",
        "12",
        "--preset",
        "small",
        "--seed",
        "3",
        "--workers",
        "2",
    ]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("rawdata/*/*_ct.nii.gz")):
        time.sleep(0.2)
    assert list(out.glob("rawdata/*/*_ct.nii.gz")), "no case was written in 2 min"
    proc.send_signal(signal.SIGINT)
    started = time.perf_counter()
    _, err = proc.communicate(timeout=30)
    assert time.perf_counter() - started < 15
    assert proc.returncode == 130 and "run the same command again" in err, err
    assert "Traceback" not in err
    written = len(list(out.glob("rawdata/*/*_ct.nii.gz")))
    assert written < 12 and not (out / "fracture_grades.csv").exists()
    assert _partials(out) == []
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert len(list(out.glob("rawdata/*/*_ct.nii.gz"))) == 12 and _partials(out) == []
    assert (out / "fracture_grades.csv").is_file()

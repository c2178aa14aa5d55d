"""Ctrl-C stops pooled work at once, leaves no partial file, and a rerun resumes and completes."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from spinefx.atomic import atomic_path
from spinefx.parallel import Interrupted, run_jobs

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "SPINEFX_PROGRESS": "0", "PYTHONPATH": str(ROOT / "src")}
MESSAGE = re.compile(r"interrupted: (\d+) of (\d+) cases done; run the same command again")


# --- the shared pool helper ------------------------------------------------------------------
def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _write_slowly(job: tuple[str, int]) -> int:
    """Job 0 returns at once; the others open an atomic write, say so, and hang inside it."""
    folder, index = Path(job[0]), job[1]
    if index == 0:
        return index
    with atomic_path(folder / f"out{index}.bin") as tmp:
        tmp.write_bytes(b"half")
        (folder / f"started{index}").touch()
        time.sleep(60)
    return index


def _stop_on_third(index: int) -> int:
    if index == 2:
        raise KeyboardInterrupt
    return index


def test_an_interrupt_cancels_the_queue_and_terminates_the_workers():
    jobs = run_jobs(_sleep, [0.1] + [30.0] * 6, workers=2, desc="sleep", already_done=3)
    assert next(jobs) == 0.1
    started = time.perf_counter()
    with pytest.raises(Interrupted) as caught:
        jobs.throw(KeyboardInterrupt)
    assert time.perf_counter() - started < 10, "the workers were waited for"
    assert (caught.value.done, caught.value.total) == (4, 10)
    assert caught.value.message.startswith("interrupted: 4 of 10 cases done; run the same")


def test_terminated_workers_delete_their_temporary_files(tmp_path):
    jobs = run_jobs(_write_slowly, [(str(tmp_path), i) for i in range(4)], workers=2)
    assert next(jobs) == 0
    deadline = time.time() + 30
    while time.time() < deadline and len(list(tmp_path.glob("started*"))) < 2:
        time.sleep(0.05)
    assert len(list(tmp_path.glob("started*"))) == 2, "the workers did not start"
    assert len(list(tmp_path.glob(".*.part*"))) == 2  # both mid-write
    started = time.perf_counter()
    with pytest.raises(Interrupted) as caught:
        jobs.throw(KeyboardInterrupt)
    assert time.perf_counter() - started < 10
    assert caught.value.done == 1
    assert [p.name for p in tmp_path.iterdir() if ".part" in p.name] == []
    assert not list(tmp_path.glob("out*.bin"))


def test_an_interrupt_without_a_pool_counts_the_finished_jobs():
    with pytest.raises(Interrupted) as caught:
        list(run_jobs(_stop_on_third, range(5), workers=1, already_done=1))
    assert (caught.value.done, caught.value.total) == (3, 6)


def test_results_are_all_there_in_order_when_not_interrupted():
    assert list(run_jobs(_sleep, [0.2, 0.0, 0.1], workers=2, ordered=True)) == [0.2, 0.0, 0.1]
    assert sorted(run_jobs(_sleep, [0.0, 0.1], workers=1)) == [0.0, 0.1]


# --- the commands, interrupted as a terminal's Ctrl-C does -----------------------------------
def _partials(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".part" in p.name or p.suffix == ".tmp"]


def _terminal_sigint() -> None:
    """In the child: SIGINT as in a terminal. A suite started in the background by a
    non-interactive shell (``make test &``) inherits SIGINT ignored, and so would the command."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(command: list[str], ready, *, group: bool) -> tuple[subprocess.Popen, str]:
    """Start ``command``, Ctrl-C it once ``ready(process)``; the process and its stderr."""
    proc = subprocess.Popen(
        command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=_terminal_sigint,
    )  # fmt: skip
    deadline = time.time() + 60
    while time.time() < deadline and not ready(proc) and proc.poll() is None:
        time.sleep(0.05)
    assert ready(proc) and proc.poll() is None, "not ready in 60 s, or the command ended"
    time.sleep(0.3)  # the finished case's result reaches the parent (it is counted as done)
    if group:  # what Ctrl-C in a terminal does: SIGINT to the parent and every worker
        os.killpg(proc.pid, signal.SIGINT)
    else:  # kill -INT <pid>: the parent alone
        proc.send_signal(signal.SIGINT)
    started = time.perf_counter()
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert time.perf_counter() - started < 10, "Ctrl-C did not stop the command promptly"
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    return proc, err


def _counts(err: str) -> tuple[int, int]:
    match = MESSAGE.search(err)
    assert match, err
    return int(match[1]), int(match[2])


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """40 cases for prepare: two small synthetic scans, each listed 20 times."""
    from spinefx.synthesis import generate_dataset

    folder = tmp_path_factory.mktemp("interrupt")
    root = generate_dataset(folder / "synth", n_scans=2, seed=4, preset="small")
    scans = sorted(root.glob("rawdata/*/*_ct.nii.gz"))
    path = folder / "manifest.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "scan", "centroids", "mask", "split", "patient_id"])
        for i in range(40):
            scan = scans[i % 2]
            subject = scan.name.removesuffix("_ct.nii.gz")
            ctd = root / "derivatives" / subject / f"{subject}_seg-subreg_ctd.json"
            writer.writerow([f"c{i:02d}", scan, ctd, "", "train", f"c{i:02d}"])
    return path


@pytest.mark.parametrize("workers", [2, 1])
def test_ctrl_c_stops_prepare_and_a_rerun_resumes(tmp_path, manifest, workers):
    from spinefx.preprocessing.patch_files import patch_file_is_valid

    out = tmp_path / "prepared"
    command = [sys.executable, "-m", "spinefx", "prepare", str(manifest), "--out", str(out),
               "--workers", str(workers)]  # fmt: skip
    _, err = _interrupt(command, lambda _: any(out.glob("patches/*/patches.csv")), group=True)
    done, total = _counts(err)
    fragments = sorted(out.glob("patches/*/patches.csv"))
    # done never counts a case without its files; on a loaded machine up to `workers` cases
    # can have written their files but not yet reported to the parent when Ctrl-C lands
    assert total == 40 and max(0, len(fragments) - workers) <= done <= len(fragments) < 40
    assert not (out / "manifest.csv").exists()
    assert _partials(out) == []
    for patch in out.glob("patches/*/*.nii"):  # every file there is whole
        assert patch_file_is_valid(patch, size_vox=96), patch
    for fragment in fragments:
        rows = list(csv.DictReader(fragment.open(newline="")))
        assert rows and all((out / r["path"]).is_file() for r in rows)
    finished = {p: p.stat().st_mtime_ns for f in fragments for p in f.parent.iterdir()}

    again = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"cases: 40 ok ({len(fragments)} already done), 0 failed" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in finished} == finished, "finished cases were redone"
    assert len(list(out.glob("patches/*/patches.csv"))) == 40 and _partials(out) == []


def _children(proc: subprocess.Popen) -> list[str]:
    path = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    try:
        return path.read_text().split()
    except OSError:
        return []


@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/task").is_dir(), reason="needs /proc")
def test_ctrl_c_while_the_workers_start_prints_no_traceback(tmp_path, manifest):
    out = tmp_path / "prepared"
    command = [sys.executable, "-m", "spinefx", "prepare", str(manifest), "--out", str(out),
               "--workers", "2"]  # fmt: skip
    # the workers (spawned) are still importing spinefx when the signal comes
    _, err = _interrupt(command, lambda proc: len(_children(proc)) >= 2, group=True)
    assert _counts(err)[1] == 40
    assert _partials(out) == []


def _case_files_load(out: Path) -> None:
    for path in out.rglob("*.nii.gz"):
        image = nib.load(path)
        assert np.asarray(image.dataobj).size > 0, path


@pytest.mark.parametrize(("workers", "group"), [(2, False), (1, True)])
def test_ctrl_c_stops_synth_and_a_rerun_resumes(tmp_path, workers, group):
    from spinefx.synthesis.resume import PROGRESS_DIR

    out = tmp_path / "ds"
    command = [sys.executable, "-m", "spinefx", "synth", "--out", str(out), "--n-scans", "8",
               "--preset", "small", "--seed", "3", "--workers", str(workers)]  # fmt: skip
    records = out / PROGRESS_DIR
    _, err = _interrupt(command, lambda _: any(records.glob("sub-*.json")), group=group)
    done, total = _counts(err)
    finished = sorted(p.stem for p in records.glob("sub-*.json"))
    assert total == 8 and max(0, len(finished) - workers) <= done <= len(finished) < 8
    assert not (out / "fracture_grades.csv").exists()
    assert _partials(out) == []
    _case_files_load(out)
    kept = {
        p: p.stat().st_mtime_ns
        for name in finished
        for p in [*out.glob(f"rawdata/{name}/*"), *out.glob(f"derivatives/{name}/*")]
    }
    assert len(kept) == 5 * len(finished)

    again = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resuming: {len(finished)} of 8 cases already done" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in kept} == kept, "finished cases were made again"
    assert len(list(out.glob("rawdata/*/*_ct.nii.gz"))) == 8 and _partials(out) == []
    assert (out / "fracture_grades.csv").is_file() and not records.exists()
    _case_files_load(out)


def test_a_resumed_dataset_is_the_dataset_made_in_one_go(tmp_path, monkeypatch):
    import spinefx.synthesis.dataset as dataset

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    whole = files(dataset.generate_dataset(tmp_path / "whole", n_scans=3, seed=2, preset="small"))
    made = []

    def generate(config, rng, *, real=dataset.generate_case):
        made.append(1)
        if len(made) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the third case is made
        return real(config, rng)

    monkeypatch.setattr(dataset, "generate_case", generate)
    with pytest.raises(Interrupted) as caught:
        dataset.generate_dataset(tmp_path / "part", n_scans=3, seed=2, preset="small")
    assert (caught.value.done, caught.value.total) == (2, 3)
    made.clear()
    resumed = dataset.generate_dataset(tmp_path / "part", n_scans=3, seed=2, preset="small")
    assert len(made) == 1, "the two finished cases were made again"
    assert files(resumed) == whole

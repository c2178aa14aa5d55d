"""Benchmark: every bad input of the hardening issue, the fuzz suite, and the app under load.

Three parts, one results table (``benchmarks/results/hardening.json``):

1. **Cases.** Each case of the issue is run end to end as a user would hit it: the ``spinefx``
   command in a subprocess, or an HTTP request to a live ``spinefx app`` (uvicorn, shipped
   weights). An outcome is ``clear error`` (exit 1 / HTTP 4xx with a message, no traceback),
   ``correct result`` (the expected success), ``traceback`` or ``silent wrong result``. Cases
   that need a process killed or interrupted (resume after ``kill -9``, Ctrl-C) run their
   regression tests with pytest, which do exactly that.
2. **Fuzz suite.** ``tests/io/test_fuzz_inputs.py`` with ``SPINEFX_FUZZ_EXAMPLES`` cases per
   test; the number of generated cases and their outcomes are counted.
3. **Load.** Peak resident memory of the app process (``VmHWM``) while 20 clients upload a scan
   at once (each retries on 429 until its scan is analysed), and while 10 clients upload
   oversized-header bombs at once. The target is <= 2 GB for both.

Usage:
    python benchmarks/bench_hardening.py [--fuzz-examples 300] [--skip-pytest]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "hardening.json"
REAL = Path(os.environ.get("SPINEFX_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))
PY = sys.executable
ENV = {**os.environ, "SPINEFX_PROGRESS": "0", "PYTHONPATH": str(ROOT / "src")}


# --- helpers ---------------------------------------------------------------------------------


def spinefx(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PY, "-m", "spinefx", "-q", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
        cwd=ROOT,
    )


def classify_cli(proc, *, expect: str, must_say: str = "") -> tuple[str, str]:
    """Outcome of a CLI run expected to ``expect`` ("error" or "ok")."""
    text = (proc.stderr + proc.stdout).strip()
    if "Traceback" in text:
        return "traceback", text.splitlines()[-1][:300]
    said = must_say.lower() in text.lower()
    if expect == "error":
        if proc.returncode != 0 and text and said:
            line = next((x for x in text.splitlines() if x.startswith("error:")), text)
            return "clear error", line[:300]
        return "silent wrong result", f"exit {proc.returncode}: {text[-300:]}"
    if proc.returncode == 0 and said:
        return "correct result", text.splitlines()[-1][:300] if text else ""
    return "silent wrong result", f"exit {proc.returncode}: {text[-300:]}"


def ct_volume(shape=(48, 48, 64)) -> np.ndarray:
    data = np.full(shape, -1000, np.int16)
    data[8:40, 8:40, :] = 40
    data[18:30, 14:30, 4:60] = 600
    return data


def save(path: Path, data: np.ndarray, affine=None) -> Path:
    import nibabel as nib

    img = nib.Nifti1Image(data, np.eye(4) if affine is None else affine)
    img.header.set_sform(img.affine, code=1)
    nib.save(img, path)
    return path


def header_bomb(path: Path, shape=(1200, 1200, 1200)) -> Path:
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.int16)
    header.set_qform(np.eye(4), code=1)
    path.write_bytes(gzip.compress(header.binaryblock + b"\0" * 4 + b"\0" * 4096))
    return path


def write_centroids(path: Path, entries) -> Path:
    path.write_text(json.dumps([{"direction": ["R", "A", "S"]}, *entries]))
    return path


def peak_rss_mb(command: list[str]) -> float:
    """Peak resident memory of a child process (``ru_maxrss``), in MB."""
    code = (
        "import resource, subprocess, sys; "
        f"subprocess.run({command!r}, capture_output=True, env={ENV!r}); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip()) / 1024


# --- part 1: the cases ----------------------------------------------------------------


def cli_cases(work: Path) -> list[dict]:
    rows = []

    def add(item, case, proc, *, expect, must_say="", **extra):
        outcome, detail = classify_cli(proc, expect=expect, must_say=must_say)
        rows.append({"item": item, "case": case, "outcome": outcome, "detail": detail, **extra})

    bomb = header_bomb(work / "bomb.nii.gz")
    rss = peak_rss_mb([PY, "-m", "spinefx", "inspect", str(bomb)])
    add(
        1,
        "108-byte-class .nii.gz declaring 1200^3 int16 (inspect)",
        spinefx("inspect", bomb),
        expect="error",
        must_say="the header declares",
        peak_rss_mb=round(rss, 1),
    )

    affine = np.diag([1e6, 1e6, 1e6, 1.0])
    huge = save(work / "huge_spacing.nii.gz", ct_volume(), affine)
    ctd = write_centroids(work / "ctd.json", [{"label": 20, "X": 24.0, "Y": 22.0, "Z": 32.0}])
    add(
        6,
        "1e6 mm voxel spacing (predict)",
        spinefx("predict", huge, "--centroids", ctd),
        expect="error",
        must_say="not plausible",
    )
    mask = np.zeros((48, 48, 64), np.uint8)
    mask[18:30, 14:30, 10:30] = 20
    huge_mask = save(work / "huge_spacing_msk.nii.gz", mask, affine)
    add(
        6,
        "1e6 mm voxel spacing (morphometry)",
        spinefx("morphometry", huge_mask),
        expect="error",
        must_say="not plausible",
    )
    air = save(work / "air.nii.gz", np.full((48, 48, 64), -1000, np.int16))
    add(
        6,
        "all-air scan (predict)",
        spinefx("predict", air, "--centroids", ctd),
        expect="error",
        must_say="no bone",
    )
    ok_scan = save(work / "ok.nii.gz", ct_volume())
    add(
        6,
        "--no-ct-check passes the all-air scan to inspect with a warning",
        spinefx("inspect", air, "--no-ct-check"),
        expect="ok",
        must_say="no bone",
    )

    add(
        8,
        "2-D NIfTI (inspect)",
        spinefx("inspect", save(work / "flat.nii.gz", np.zeros((32, 32, 1), np.int16))),
        expect="error",
        must_say="2-D",
    )
    dicom = work / "dicom_no_spacing"
    write_dicom_without_spacing(dicom)
    add(
        8,
        "DICOM slices without PixelSpacing (inspect)",
        spinefx("inspect", dicom),
        expect="error",
        must_say="PixelSpacing",
    )

    for label, text in [
        ("direction not a list", '[{"direction": 5}, {"label": 20, "X": 1, "Y": 2, "Z": 3}]'),
        ("label 1e999", '[{"direction": ["R","A","S"]}, {"label": 1e999, "X": 1, "Y": 2, "Z": 3}]'),
        ("label 21.9", '[{"direction": ["R","A","S"]}, {"label": 21.9, "X": 1, "Y": 2, "Z": 3}]'),
    ]:
        path = work / f"ctd_{len(rows)}.json"
        path.write_text(text)
        add(
            9,
            f"centroid JSON: {label} (inspect)",
            spinefx("inspect", ok_scan, "--centroids", path),
            expect="error",
            must_say="direction" if "direction" in label else "whole",
        )

    add(
        10,
        "train --max-epochs 0",
        spinefx("train", work, work / "run", "--max-epochs", "0"),
        expect="error",
        must_say="",
    )
    add(
        10,
        "train --threads -1",
        spinefx("train", work, work / "run", "--threads", "-1"),
        expect="error",
        must_say="",
    )
    add(
        10,
        "predict --out DIR",
        spinefx("predict", ok_scan, "--centroids", ctd, "--out", work),
        expect="error",
        must_say=".csv",
    )
    add(
        10,
        "morphometry on a folder without vertebra files",
        spinefx("morphometry", work),
        expect="error",
        must_say="",
    )

    flat = work / "singular.nii"
    write_singular(flat)
    add(
        11,
        "singular sform (inspect)",
        spinefx("inspect", flat),
        expect="error",
        must_say="singular.nii",
    )

    import nibabel

    nib_data = Path(nibabel.__file__).parent / "tests" / "data"
    add(
        12,
        "nibabel CIFTI-2 row_major.dconn.nii (inspect)",
        spinefx("inspect", nib_data / "row_major.dconn.nii"),
        expect="error",
        must_say="CIFTI",
    )
    pair = work / "pair.hdr"
    nibabel.save(nibabel.Nifti1Pair(ct_volume(), np.eye(4)), pair)
    add(12, "NIfTI pair .hdr/.img (inspect)", spinefx("inspect", pair), expect="ok", must_say="48")
    outcomes = corpus_outcomes(nib_data, work)
    rows.append(
        {
            "item": 12,
            "case": "nibabel + pydicom test corpora through load_scan",
            "outcome": "clear error" if outcomes["traceback"] == 0 else "traceback",
            "detail": json.dumps(outcomes),
        }
    )

    verse006 = REAL / "verse" / "rawdata" / "sub-verse006" / "sub-verse006_ct.nii.gz"
    if verse006.is_file():
        add(
            13,
            "real VerSe crop without air (verse006, inspect)",
            spinefx("inspect", verse006),
            expect="ok",
            must_say="verse006",
        )
    return rows


def write_dicom_without_spacing(folder: Path) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    uid = generate_uid()
    for k in range(4):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{k}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID = "CT", uid
        ds.ImageOrientationPatient = [1.0, 0, 0, 0, 1.0, 0]
        ds.ImagePositionPatient = [0.0, 0.0, 2.0 * k]
        ds.Rows = ds.Columns = 8
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.zeros((8, 8), np.uint16).tobytes()
        ds.save_as(str(folder / f"{k}.dcm"), enforce_file_format=True)


def write_singular(path: Path) -> None:
    """A NIfTI whose sform has a zero row (patched in the bytes: nibabel would fix it)."""
    import struct

    import nibabel as nib

    raw = bytearray(nib.Nifti1Image(ct_volume(), np.eye(4)).to_bytes())
    struct.pack_into("<hh", raw, 252, 0, 1)  # qform_code 0, sform_code 1
    struct.pack_into("<4f", raw, 312, 0.0, 0.0, 0.0, 0.0)  # srow_z
    path.write_bytes(bytes(raw))


def corpus_outcomes(nib_data: Path, work: Path) -> dict[str, int]:
    """Every nibabel test image, and every pydicom test file alone in a folder, via load_scan."""
    import shutil

    import pydicom

    from spinefx.errors import SpinefxError
    from spinefx.io import load_scan

    counts = {"files": 0, "loaded": 0, "clear error": 0, "traceback": 0}
    inputs = [p for p in sorted(nib_data.iterdir()) if p.is_file() and p.suffix != ".py"]
    dcm_root = Path(pydicom.__file__).parent / "data" / "test_files"
    for k, path in enumerate(sorted(p for p in dcm_root.rglob("*") if p.is_file())):
        folder = work / "pydicom" / f"{k:03d}"
        folder.mkdir(parents=True)
        shutil.copy(path, folder / path.name)
        inputs.append(folder)
    for path in inputs:
        counts["files"] += 1
        try:
            load_scan(path)
            counts["loaded"] += 1
        except SpinefxError:
            counts["clear error"] += 1
        except Exception:  # noqa: BLE001 - counted: this is what the benchmark looks for
            counts["traceback"] += 1
    return counts


PYTEST_CASES = [
    (
        2,
        "kill -9 in the middle of epoch 3, then --resume: continues at epoch 3",
        "tests/training/test_resume_after_kill.py::"
        "test_patch_training_killed_in_epoch_3_resumes_at_epoch_3",
    ),
    (
        2,
        "corrupt last.ckpt with --resume",
        "tests/training/test_resume_after_kill.py::"
        "test_resume_from_a_corrupt_last_ckpt_is_an_input_error",
    ),
    (
        5,
        "prepare: malformed direction + 2-D mask + truncated CT in one dataset",
        "tests/preprocessing/test_prepare_bad_cases.py",
    ),
    (
        7,
        "Ctrl-C during synth --workers 2 (prepare uses the same pool): prompt stop, no partial files, rerun completes",
        "tests/preprocessing/test_interrupt.py",
    ),
    (
        3,
        "app: token, Origin/Referer, chunked and declared oversized bodies, 429, typed edits",
        "tests/app/test_guards.py",
    ),
]


def pytest_cases() -> list[dict]:
    rows = []
    for item, case, node in PYTEST_CASES:
        if not (ROOT / node.split("::")[0]).is_file():
            rows.append(
                {
                    "item": item,
                    "case": case,
                    "outcome": "not run",
                    "detail": f"{node} not in this checkout",
                }
            )
            continue
        proc = subprocess.run(
            [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", node],
            capture_output=True,
            text=True,
            env=ENV,
            cwd=ROOT,
            timeout=900,
        )
        last = (proc.stdout.strip().splitlines() or [""])[-1]
        ok = proc.returncode == 0
        rows.append(
            {
                "item": item,
                "case": case,
                "test": node,
                "detail": last,
                "outcome": "correct result" if ok else "traceback",
            }
        )
    return rows


# --- part 2: fuzz suite ------------------------------------------------------------------------


def fuzz(examples: int, work: Path) -> dict:
    report = work / "fuzz.jsonl"
    env = {**ENV, "SPINEFX_FUZZ_EXAMPLES": str(examples), "SPINEFX_FUZZ_REPORT": str(report)}
    started = time.perf_counter()
    proc = subprocess.run(
        [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/io/test_fuzz_inputs.py"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=3600,
    )
    per_entry = {}
    if report.is_file():
        for line in report.read_text().splitlines():
            row = json.loads(line)
            per_entry[row.pop("test")] = row
    total = {
        k: sum(r.get(k, 0) for r in per_entry.values())
        for k in ("success", "clear error", "traceback")
    }
    return {
        "examples_per_test": examples,
        "cases": sum(total.values()),
        **total,
        "passed": proc.returncode == 0,
        "seconds": round(time.perf_counter() - started, 1),
        "per_entry_point": per_entry,
        "pytest": (proc.stdout.strip().splitlines() or [""])[-1],
    }


# --- part 3: the live app ----------------------------------------------------------------------


class LiveApp:
    """``spinefx app`` in a subprocess on a free port, with its peak memory readable."""

    def __init__(self, work: Path, *extra: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                PY,
                "-m",
                "spinefx",
                "app",
                "--port",
                str(self.port),
                "--cache-dir",
                str(work / "cache"),
                *extra,
            ],
            env=ENV,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        import httpx

        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                page = httpx.get(self.url + "/", timeout=5).text
                self.token = re.search(r'name="spinefx-token" content="([^"]+)"', page).group(1)
                return
            except Exception:  # noqa: BLE001 - not up yet
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        "the app did not start: " + self.proc.stderr.read()
                    ) from None
                time.sleep(0.5)
        raise RuntimeError("the app did not start within 3 min")

    def memory_mb(self) -> dict[str, float]:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        get = lambda key: int(re.search(rf"{key}:\s+(\d+) kB", status).group(1)) / 1024  # noqa: E731
        return {"rss_mb": round(get("VmRSS"), 1), "peak_rss_mb": round(get("VmHWM"), 1)}

    def reset_peak(self) -> None:
        """Start a new ``VmHWM`` window (Linux: writing 5 to clear_refs resets it)."""
        try:
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
        except OSError:
            pass

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def app_cases(app: LiveApp, scan: Path, ctd: Path, work: Path) -> list[dict]:
    import httpx

    rows = []

    def files():
        return {
            "scan": (scan.name, scan.read_bytes()),
            "centroids": (ctd.name, ctd.read_bytes()),
        }  # noqa: E731

    token = {"X-Spinefx-Token": app.token}

    def add(item, case, resp, expect_status, must_say=""):
        detail = (
            resp.json().get("detail", "")
            if resp.headers.get("content-type", "").startswith("application/json")
            else resp.text[:200]
        )
        ok = resp.status_code == expect_status and must_say in str(detail)
        if expect_status >= 400:
            outcome = (
                "clear error"
                if ok
                else ("traceback" if resp.status_code >= 500 else "silent wrong result")
            )
        else:
            outcome = "correct result" if ok else "silent wrong result"
        rows.append(
            {
                "item": item,
                "case": case,
                "outcome": outcome,
                "status": resp.status_code,
                "detail": str(detail)[:300],
            }
        )

    add(
        3,
        "cross-site page posts an upload (Origin: evil.example, no token)",
        httpx.post(
            app.url + "/api/scans",
            files=files(),
            headers={"Origin": "http://evil.example"},
            timeout=60,
        ),
        403,
        "cross-origin",
    )
    add(
        3,
        "upload without the page token",
        httpx.post(app.url + "/api/scans", files=files(), timeout=60),
        403,
        "reload the page",
    )
    add(
        1,
        "header bomb upload",
        httpx.post(
            app.url + "/api/scans",
            headers=token,
            timeout=60,
            files={"scan": ("bomb.nii.gz", header_bomb(work / "b.nii.gz").read_bytes())},
        ),
        400,
        "limit",
    )

    sent = 0

    def chunks():
        nonlocal sent
        yield (
            b'--b\r\nContent-Disposition: form-data; name="scan"; filename="ct.nii"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n"
        )
        for _ in range(800):  # 800 MB, the case; the app's limit is 20 MB here
            sent += 1_000_000
            yield b"\0" * 1_000_000

    # What matters is what the server keeps: its temporary files and its memory while the
    # client streams (httpx sends the whole body before it reads the early 413).
    before_disk, before_rss = disk_usage_mb(), app.memory_mb()["rss_mb"]
    peak = {"disk": 0.0, "rss": 0.0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak["disk"] = max(peak["disk"], disk_usage_mb() - before_disk)
            peak["rss"] = max(peak["rss"], app.memory_mb()["rss_mb"] - before_rss)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        resp = httpx.post(
            app.url + "/api/scans",
            content=chunks(),
            timeout=300,
            headers={**token, "Content-Type": "multipart/form-data; boundary=b"},
        )
        status, detail = resp.status_code, resp.json().get("detail", "")
    except httpx.HTTPError as exc:  # the server may close the connection after answering
        status, detail = 413, f"connection closed by the app ({type(exc).__name__})"
    done.set()
    sampler.join()
    kept_mb = max(peak["disk"], peak["rss"])
    rows.append(
        {
            "item": 4,
            "case": "chunked 800 MB upload without Content-Length",
            "outcome": "clear error" if status == 413 and kept_mb < 60 else "silent wrong result",
            "status": status,
            "client_sent_mb": sent / 1e6,
            "server_temp_disk_peak_growth_mb": round(peak["disk"], 1),
            "server_rss_peak_growth_mb": round(peak["rss"], 1),
            "detail": detail,
        }
    )

    resp = httpx.post(
        app.url + "/api/scans",
        files={"scan": ("ct.nii", b"not a nifti")},
        headers=token,
        timeout=60,
    )
    detail = resp.json().get("detail", "")
    rows.append(
        {
            "item": 11,
            "case": "error message of a bad upload shows no server path",
            "outcome": "clear error"
            if resp.status_code == 400 and "/tmp" not in detail
            else "silent wrong result",
            "status": resp.status_code,
            "detail": detail,
        }
    )
    resp = httpx.post(app.url + "/api/units/0", json={"label": {"x": 1}}, headers=token, timeout=30)
    add(11, "edit_unit with an object as label", resp, 400, "label")
    return rows


def disk_usage_mb() -> float:
    import shutil

    return shutil.disk_usage(tempfile.gettempdir()).used / 1e6


def real_upload(work: Path) -> tuple[Path, Path] | None:
    """verse007 (real CT) and a centroid file from its expert mask, when the real data is here."""
    scan = REAL / "verse" / "rawdata" / "sub-verse007" / "sub-verse007_ct.nii.gz"
    mask = REAL / "verse" / "derivatives" / "sub-verse007" / "sub-verse007_seg-vert_msk.nii.gz"
    if not (scan.is_file() and mask.is_file()):
        return None
    from spinefx.io import load_scan, save_centroids
    from spinefx.morphometry.centroids import vertebra_mask_centroids

    image = load_scan(scan)
    ctd = save_centroids(vertebra_mask_centroids(mask, image), work / "verse007_ctd.json", image)
    return scan, Path(ctd)


def load_test(app: LiveApp, scan: Path, ctd: Path, work: Path, real=None) -> dict:
    import httpx

    headers = {"X-Spinefx-Token": app.token}
    scan_bytes, ctd_bytes = scan.read_bytes(), ctd.read_bytes()
    statuses: list[int] = []
    lock = threading.Lock()
    peak = {"mb": 0.0}
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak["mb"] = max(peak["mb"], app.memory_mb()["rss_mb"])
            time.sleep(0.05)

    def upload_until_done(_, files=None):
        tries = 0
        while True:
            tries += 1
            r = httpx.post(
                app.url + "/api/scans",
                headers=headers,
                timeout=600,
                files=files
                or {"scan": (scan.name, scan_bytes), "centroids": (ctd.name, ctd_bytes)},
            )
            with lock:
                statuses.append(r.status_code)
            if r.status_code != 429:
                return r.status_code, tries
            time.sleep(0.5)

    def bomb(k):
        data = header_bomb(work / f"bomb{k}.nii.gz", shape=(1200 + k, 1200, 1200)).read_bytes()
        while True:
            r = httpx.post(
                app.url + "/api/scans",
                headers=headers,
                timeout=120,
                files={"scan": (f"bomb{k}.nii.gz", data)},
            )
            with lock:
                statuses.append(r.status_code)
            if r.status_code != 429:
                return r.status_code
            time.sleep(0.2)

    result = {"baseline": app.memory_mb()}
    jobs = [("uploads_20", upload_until_done, 20), ("bombs_10", bomb, 10)]
    if real is not None:
        real_files = {
            "scan": (real[0].name, real[0].read_bytes()),
            "centroids": (real[1].name, real[1].read_bytes()),
        }
        jobs.append(("uploads_20_real_ct", lambda k: upload_until_done(k, files=real_files), 20))
    for name, job, n in jobs:
        app.reset_peak()
        statuses.clear()
        peak["mb"] = 0.0
        stop.clear()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = time.perf_counter()
        with ThreadPoolExecutor(n) as pool:
            outcomes = list(pool.map(job, range(n)))
        stop.set()
        watcher.join()
        mem = app.memory_mb()
        result[name] = {
            "clients": n,
            "seconds": round(time.perf_counter() - started, 1),
            "final_status": sorted(o[0] if isinstance(o, tuple) else o for o in outcomes),
            "answers_429": statuses.count(429),
            "peak_rss_mb": max(mem["peak_rss_mb"], round(peak["mb"], 1)),
            "rss_after_mb": mem["rss_mb"],
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz-examples", type=int, default=300)
    parser.add_argument("--skip-pytest", action="store_true", help="skip parts that run pytest")
    args = parser.parse_args()
    os.environ.update({"SPINEFX_PROGRESS": "0"})
    from spinefx.synthesis import generate_dataset

    with tempfile.TemporaryDirectory(prefix="spinefx-bench-hardening-") as tmp:
        work = Path(tmp)
        (work / "cli").mkdir()
        rows = cli_cases(work / "cli")
        root = generate_dataset(work / "synth", n_scans=1, seed=2022, preset="small")
        sub = "sub-synth0001"
        scan = root / "rawdata" / sub / f"{sub}_ct.nii.gz"
        ctd = root / "derivatives" / sub / f"{sub}_seg-subreg_ctd.json"
        scan_info = {"file": scan.name, "bytes": scan.stat().st_size}
        app = LiveApp(work, "--max-upload-mb", "20", "--max-concurrent", "2")
        try:
            rows += app_cases(app, scan, ctd, work)
            real = real_upload(work)
            load = load_test(app, scan, ctd, work, real=real)
            if real is not None:
                scan_info["real"] = {"file": real[0].name, "bytes": real[0].stat().st_size}
        finally:
            app.close()
        if not args.skip_pytest:
            rows += pytest_cases()
            fuzz_result = fuzz(args.fuzz_examples, work)
        else:
            fuzz_result = {"skipped": True}
    counts = {
        k: sum(r["outcome"] == k for r in rows)
        for k in ("correct result", "clear error", "traceback", "silent wrong result", "not run")
    }
    result = {
        "benchmark": "hardening",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "scan_for_load": scan_info,
        "cases": rows,
        "case_outcomes": counts,
        "fuzz": fuzz_result,
        "load": load,
        "targets": {
            "no traceback or silent wrong result": counts["traceback"] == 0
            and counts["silent wrong result"] == 0,
            "fuzz: no traceback": fuzz_result.get("traceback", 0) == 0,
            "app peak <= 2 GB under 20 concurrent uploads": load["uploads_20"]["peak_rss_mb"]
            <= 2048,
            "app peak <= 2 GB under 10 header bombs": load["bombs_10"]["peak_rss_mb"] <= 2048,
            "app peak <= 2 GB under 20 concurrent real-CT uploads": load.get(
                "uploads_20_real_ct", {}
            ).get("peak_rss_mb", 0)
            <= 2048,
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    for r in rows:
        print(f"[{r['item']:>2}] {r['outcome']:<20} {r['case']}")
    print("outcomes:", counts)
    print("fuzz:", {k: v for k, v in fuzz_result.items() if k != "per_entry_point"})
    print("load:", json.dumps(load))
    print("targets:", result["targets"])
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

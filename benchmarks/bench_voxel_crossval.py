"""Cross-validated fracture detection of the voxel classifier on synthetic scans.

Generates ``N`` scans with a synthesis preset, prepares them at the training preset's voxel
size, runs stratified patient-level k-fold cross-validation
(:func:`spinefx.evaluation.crossval.crossvalidate_voxel`) and records bootstrapped patient-
and vertebra-level AUCs (n = 1000), per Genant grade, with 3 mm centroid noise, the
cross-fitted operating points and the automatic localisation error.

Two setups:

* ``cpu`` (default, 2 CPU cores): 48 ``small`` scans, the ``cpu`` training preset (2 mm
  voxels, 6,000 segments per fold). Writes ``results/voxel_crossval.json``.
* ``gpu``: ``thoracolumbar`` scans (whole T1-L5 at 1 mm), the ``paper`` preset at 1 mm with
  a reduced number of sub-epochs; folds run as parallel processes on one GPU. Writes
  ``results/voxel_crossval_gpu.json``.

Run: ``.venv/bin/python benchmarks/bench_voxel_crossval.py [cpu|gpu] [N_SCANS] [N_FOLDS]``
(``BENCH_WORKDIR`` keeps the data and fold runs; an interrupted run resumes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

SETUPS = {
    "cpu": {
        "synthesis": "small",
        "training": ("cpu", {}),
        "n_scans": 48,
        "result": "voxel_crossval.json",
    },
    "gpu": {
        "synthesis": "thoracolumbar",
        # the paper's regime (1 mm, 35 epochs x 20 sub-epochs x 1000 segments), cut by a
        # time limit per fold so the five folds fit one 10-minute GPU call
        "training": ("paper", {"time_limit_minutes": 5.0}),
        "n_scans": 40,
        "result": "voxel_crossval_gpu.json",
    },
}


def _config(setup: str):
    from spinefx.runs.configs import voxel_preset

    name, overrides = SETUPS[setup]["training"]
    return voxel_preset(name, seed=0, **overrides)


def _cases(work: Path, setup: str, n_scans: int):
    import pickle

    from spinefx.io import load_dataset
    from spinefx.synthesis import generate_dataset

    config = _config(setup)
    cache = work / "cases.pkl"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    data = work / "data"
    if not (data / "rawdata").exists():
        generate_dataset(
            data,
            n_scans=n_scans,
            seed=11,
            preset=SETUPS[setup]["synthesis"],
            workers=min(os.cpu_count() or 1, 16),
        )
    from concurrent.futures import ProcessPoolExecutor

    dataset = load_dataset(data)
    with ProcessPoolExecutor(max_workers=min(os.cpu_count() or 1, 16)) as pool:
        parts = list(pool.map(_prepare, [(case, config) for case in dataset]))
    cases = [c for part, _ in parts for c in part]
    problems = [p for _, part in parts for p in part]
    cache.write_bytes(pickle.dumps((cases, problems)))
    return cases, problems


def _prepare(job):
    from spinefx.datasets.voxel_cases import load_voxel_cases

    case, config = job
    return load_voxel_cases(
        [case],
        ellipsoid=config.ellipsoid,
        spacing_mm=config.model.input_spacing_mm,
        normalisation=config.model.intensity_normalisation,
    )


def _tile_vox() -> int:
    import torch

    from spinefx.inference.voxel_tiling import DEFAULT_OUTPUT_TILE_VOX

    # big tiles on a GPU (few launches); the CPU default is tuned for cache size
    return 81 if torch.cuda.is_available() else DEFAULT_OUTPUT_TILE_VOX


def start(setup: str, n_scans: int | None, *, prefix: str):
    """Common start of the voxel benchmarks: scan count, work dir, load and clocks."""
    import torch

    if setup == "cpu":
        torch.set_num_threads(2)
    work = Path(os.environ.get("BENCH_WORKDIR", tempfile.mkdtemp(prefix=prefix)))
    work.mkdir(parents=True, exist_ok=True)
    n_scans = n_scans or SETUPS[setup]["n_scans"]
    return n_scans, work, os.getloadavg(), time.perf_counter(), time.process_time()


def run_processes(script: str, arg_lists: list[list[str]], work: Path) -> None:
    """Run ``script`` once per argument list, in parallel (2 threads each); fail if any fails."""
    env = {**os.environ, "BENCH_WORKDIR": str(work), "OMP_NUM_THREADS": "2"}
    procs = [subprocess.Popen([sys.executable, script, *args], env=env) for args in arg_lists]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"worker processes failed: {codes}")


def main(setup: str = "cpu", n_scans: int | None = None, n_folds: int = 5) -> None:
    import torch

    from spinefx.evaluation.crossval import crossvalidate_voxel

    n_scans, work, load_before, t0, c0 = start(setup, n_scans, prefix="bench_voxel_cv_")
    cases, problems = _cases(work, setup, n_scans)
    t_data = time.perf_counter() - t0
    config = _config(setup)
    if setup == "gpu":
        # one process per fold on the same GPU: the small batches leave it mostly idle, and
        # segment sampling runs on the CPU, so parallel folds use the machine's cores.
        folds = [["--fold", setup, str(n_scans), str(n_folds), str(k)] for k in range(n_folds)]
        run_processes(__file__, folds, work)
    summary = crossvalidate_voxel(cases, config, work / "cv", n_folds=n_folds, tile_vox=_tile_vox())
    result = {
        "setup": setup,
        "data": f"{n_scans} synthetic scans, synthesis preset "
        f"'{SETUPS[setup]['synthesis']}', seed 11",
        "skipped_scans": problems,
        "training": (
            f"{SETUPS[setup]['training'][0]} preset: {config.model.input_spacing_mm:g} mm voxels, "
            f"{config.epochs} epochs x {config.subepochs} sub-epochs x "
            f"{config.segments_per_subepoch} segments of {config.model.train_segment_vox}^3 "
            "per fold"
        ),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        **summary,
        "data_seconds": t_data,
        "wall_seconds": time.perf_counter() - t0,
        "cpu_seconds_main_process": time.process_time() - c0,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "output_dir": str(work / "cv"),
    }
    out = Path(os.environ.get("BENCH_RESULTS", RESULTS)) / SETUPS[setup]["result"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def run_one_fold(setup: str, n_scans: int, n_folds: int, fold: int) -> None:
    from spinefx.evaluation.crossval import crossvalidate_voxel

    work = Path(os.environ["BENCH_WORKDIR"])
    cases, _ = _cases(work, setup, n_scans)
    crossvalidate_voxel(
        cases, _config(setup), work / "cv", n_folds=n_folds, folds=[fold], tile_vox=_tile_vox()
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--fold"]:
        run_one_fold(sys.argv[2], *(int(a) for a in sys.argv[3:6]))
    else:
        main(*(sys.argv[1:2] or ["cpu"]), *(int(a) for a in sys.argv[2:]))

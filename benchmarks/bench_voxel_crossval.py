"""Cross-validated fracture detection of the voxel classifier on synthetic scans (CPU preset).

Generates ``N`` scans with the ``small`` synthesis preset, prepares them at the ``cpu``
preset's 2 mm voxels, runs stratified patient-level k-fold cross-validation
(:func:`spinefx.evaluation.crossval.crossvalidate_voxel`) and records bootstrapped patient-
and vertebra-level AUCs (n = 1000), per Genant grade, with 3 mm centroid noise, and the
automatic localisation error. Writes ``benchmarks/results/voxel_crossval.json``.

This is a CPU-budget run (minutes of training per fold instead of the paper's 35 epochs x 20
sub-epochs x 1000 segments at 1 mm), so its AUCs are far from converged figures.
Run: ``.venv/bin/python benchmarks/bench_voxel_crossval.py [N_SCANS [N_FOLDS [EPOCHS]]]``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "voxel_crossval.json"


def main(n_scans: int = 24, n_folds: int = 5, epochs: int = 8) -> None:
    import torch

    from spinefx.evaluation.crossval import crossvalidate_voxel
    from spinefx.io import load_dataset
    from spinefx.synthesis import generate_dataset
    from spinefx.training.voxel import voxel_preset
    from spinefx.training.voxel_data import load_voxel_cases

    torch.set_num_threads(2)
    work = Path(os.environ.get("BENCH_WORKDIR", tempfile.mkdtemp(prefix="bench_voxel_cv_")))
    load_before = os.getloadavg()
    t0, c0 = time.perf_counter(), time.process_time()
    data = work / "data"
    if not (data / "rawdata").exists():
        generate_dataset(data, n_scans=n_scans, seed=11, preset="small")
    config = voxel_preset("cpu", epochs=epochs, seed=0)
    cases, problems = load_voxel_cases(
        load_dataset(data), ellipsoid=config.ellipsoid, spacing_mm=config.model.input_spacing_mm
    )
    summary = crossvalidate_voxel(cases, config, work / "cv", n_folds=n_folds)
    result = {
        "data": f"{n_scans} synthetic scans, synthesis preset 'small', seed 11",
        "skipped_scans": problems,
        "training": (
            f"cpu preset: {config.model.input_spacing_mm:g} mm voxels, {config.epochs} epochs x "
            f"{config.subepochs} sub-epochs x {config.segments_per_subepoch} segments of "
            f"{config.model.train_segment_vox}^3 per fold"
        ),
        **summary,
        "wall_seconds": time.perf_counter() - t0,
        "cpu_seconds_main_process": time.process_time() - c0,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "output_dir": str(work / "cv"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))

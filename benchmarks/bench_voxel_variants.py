"""1slice / 5slices / 3d comparison of the voxel classifier (paper Table 1) on synthetic scans.

One train/validation split of ``N`` synthetic scans (``small`` preset), the ``cpu`` training
preset (2 mm voxels) for every variant (same ~230 K parameter budget). Writes
``benchmarks/results/voxel_variants.json``. A CPU-budget run: differences between variants
are within the noise of so short a training.
Run: ``nice -n 10 .venv/bin/python benchmarks/bench_voxel_variants.py [N_SCANS]``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "voxel_variants.json"


def main(n_scans: int = 8) -> None:
    import torch

    from spinefx.evaluation.voxel_variants import compare_variants, variants_table
    from spinefx.io import load_dataset
    from spinefx.synthesis import generate_dataset
    from spinefx.training.voxel import split_validation, voxel_preset
    from spinefx.training.voxel_data import load_voxel_cases

    torch.set_num_threads(2)
    work = Path(os.environ.get("BENCH_WORKDIR", tempfile.mkdtemp(prefix="bench_voxel_var_")))
    load_before = os.getloadavg()
    t0, c0 = time.perf_counter(), time.process_time()
    data = work / "data"
    if not (data / "rawdata").exists():
        generate_dataset(data, n_scans=n_scans, seed=5, preset="small")
    config = voxel_preset("cpu", epochs=2, segments_per_subepoch=60, val_segments=40)
    cases, _ = load_voxel_cases(load_dataset(data), spacing_mm=config.model.input_spacing_mm)
    train, val = split_validation(cases, fraction=0.25, seed=0)
    rows = compare_variants(train, val, config, work / "variants")
    table = variants_table(rows)
    result = {
        "data": f"{n_scans} synthetic scans (small preset, seed 5); {len(train)} train / "
        f"{len(val)} validation",
        "training": "cpu preset: 2 mm voxels, 2 epochs x 2 sub-epochs x 60 segments",
        "rows": rows,
        "table_markdown": table,
        "wall_seconds": time.perf_counter() - t0,
        "cpu_seconds_main_process": time.process_time() - c0,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(table)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))

"""1slice / 5slices / 3d comparison of the voxel classifier (paper Table 1) on synthetic scans.

One random train/validation split (as in the paper), the same ~230 K parameter budget and the
same training regime for every variant. Two setups:

* ``cpu`` (default): 48 ``small`` scans, 36 train / 12 validation, the ``cpu`` preset (2 mm).
  Writes ``results/voxel_variants.json``.
* ``gpu``: 40 ``thoracolumbar`` scans (whole T1-L5 at 1 mm), 30 / 10, the ``paper`` preset cut
  at 5 minutes of training per variant; the variants train as parallel processes on one GPU.
  Writes ``results/voxel_variants_gpu.json``.

Run: ``.venv/bin/python benchmarks/bench_voxel_variants.py [cpu|gpu] [N_SCANS]``
(``BENCH_WORKDIR`` keeps data and runs; the data of ``bench_voxel_crossval.py`` is reused).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_voxel_crossval import (  # noqa: E402
    SETUPS,
    _cases,
    _config,
    _tile_vox,
    run_processes,
    start,
)

RESULTS = Path(__file__).resolve().parent / "results"
RESULT_NAMES = {"cpu": "voxel_variants.json", "gpu": "voxel_variants_gpu.json"}


def _split(cases):
    from spinefx.training.voxel import split_validation

    return split_validation(cases, fraction=0.25, seed=0)


def main(setup: str = "cpu", n_scans: int | None = None) -> None:
    import torch

    from spinefx.evaluation.voxel_variants import compare_variants, variants_table
    from spinefx.models.voxel_classifier import VARIANTS

    n_scans, work, load_before, t0, c0 = start(setup, n_scans, prefix="bench_voxel_var_")
    cases, _ = _cases(work, setup, n_scans)
    train, val = _split(cases)
    config = _config(setup)
    if setup == "gpu":
        variants = [["--variant", setup, str(n_scans), v] for v in VARIANTS]
        run_processes(__file__, variants, work)
        rows = [
            json.loads((work / f"variants_{v}" / "variants.json").read_text())[0] for v in VARIANTS
        ]
    else:
        rows = compare_variants(train, val, config, work / "variants", tile_vox=_tile_vox())
    table = variants_table(rows)
    result = {
        "setup": setup,
        "data": f"{n_scans} synthetic scans ({SETUPS[setup]['synthesis']} preset, seed 11); "
        f"{len(train)} train / {len(val)} validation",
        "training": (
            f"{SETUPS[setup]['training'][0]} preset: {config.model.input_spacing_mm:g} mm, "
            f"{config.epochs} epochs x {config.subepochs} x {config.segments_per_subepoch} "
            f"segments, time limit {config.time_limit_minutes or 'none'} min"
        ),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "rows": rows,
        "table_markdown": table,
        "wall_seconds": time.perf_counter() - t0,
        "cpu_seconds_main_process": time.process_time() - c0,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    out = Path(os.environ.get("BENCH_RESULTS", RESULTS)) / RESULT_NAMES[setup]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(table)


def run_one_variant(setup: str, n_scans: int, variant: str) -> None:
    from spinefx.evaluation.voxel_variants import compare_variants

    work = Path(os.environ["BENCH_WORKDIR"])
    cases, _ = _cases(work, setup, n_scans)
    train, val = _split(cases)
    compare_variants(
        train,
        val,
        _config(setup),
        work / f"variants_{variant}",
        variants=(variant,),
        tile_vox=_tile_vox(),
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--variant"]:
        run_one_variant(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main(*(sys.argv[1:2] or ["cpu"]), *(int(a) for a in sys.argv[2:]))

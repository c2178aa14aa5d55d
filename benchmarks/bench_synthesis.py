"""Throughput and peak memory of the synthetic spine CT generator.

Usage: python benchmarks/bench_synthesis.py [--repeats 3]

Per preset: wall and CPU seconds per generated scan (``generate_case``, in memory) and per
written scan (``generate_dataset``, gzipped NIfTI files), and the peak of memory allocated
while one scan is generated (tracemalloc, which numpy reports its arrays to). The machine's
load average is recorded: on a shared machine wall time is inflated, CPU time much less.
Writes benchmarks/results/synthesis.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from spinefx.synthesis import case_rng, generate_case, generate_dataset, preset

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "synthesis.json"
PRESETS = {
    "thoracolumbar": "T1-L5 at 1 mm isotropic, 160 x 160 mm FOV (the issue's reference scan)",
    "small": "tests/demo: 5-7 levels, 1.25 mm, ~125 mm FOV",
    "default": "realistic variety: 6-17 levels, 0.6-1 mm in-plane, 1-3 mm slices, 150-200 mm FOV",
}


def timed(config, seed: int, index: int) -> tuple[float, float, tuple]:
    w0, c0 = time.perf_counter(), time.process_time()
    case = generate_case(config, case_rng(seed, index))
    return time.perf_counter() - w0, time.process_time() - c0, case.ct.shape


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": list(os.getloadavg()),
        },
        "presets": {},
    }
    for name, what in PRESETS.items():
        config = preset(name)
        runs = [timed(config, 0, i) for i in range(args.repeats)]
        tracemalloc.start()
        generate_case(config, case_rng(0, 0))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        with tempfile.TemporaryDirectory() as tmp:
            w0, c0 = time.perf_counter(), time.process_time()
            generate_dataset(tmp, n_scans=args.repeats, seed=0, config=config, preset=name)
            write_wall = (time.perf_counter() - w0) / args.repeats
            write_cpu = (time.process_time() - c0) / args.repeats
            size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()) / args.repeats
        res = {
            "what": what,
            "scans": args.repeats,
            "ct_shapes": [list(s) for _, _, s in runs],
            "wall_s_per_scan": round(float(np.mean([w for w, _, _ in runs])), 2),
            "cpu_s_per_scan": round(float(np.mean([c for _, c, _ in runs])), 2),
            "written_wall_s_per_scan": round(write_wall, 2),
            "written_cpu_s_per_scan": round(write_cpu, 2),
            "written_mb_per_scan": round(size / 1e6, 2),
            "peak_allocated_mb": round(peak / 1e6, 1),
        }
        results["presets"][name] = res
        print(name, json.dumps(res))
    results["machine"]["load_average_at_end"] = list(os.getloadavg())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

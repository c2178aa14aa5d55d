"""Dissection throughput and peak memory at 1,000 samples: streaming vs store-all-activations.

Two dissected layers, random inputs (generated per index, so inputs cost no memory):

* ``patch_cpu``: the patch classifier's ``cpu`` preset (32^3 input), layer ``encoder.level4``:
  64 units x 4^3.
* ``wide512``: a stand-in with the authors' dissected layer size, 512 units x 8^3 (average
  pooling of a 64^3 input + 1x1x1 conv + ReLU), so that storing all activations is large.

Each (layer, method, n) runs in a fresh child process; peak memory is the growth of the
process's peak RSS over its RSS before dissection starts (``dissect`` asks glibc to mmap
blocks >= 1 MiB, see ``keep_large_blocks_off_the_heap``; the naive method runs with glibc's
defaults). ``streaming`` is
``spinefx.interpretation.dissect`` (exact multi-pass thresholds); ``naive`` stores every
activation and calls ``numpy.quantile`` per unit (float64, numpy's default linear method).

    nice -n 10 .venv/bin/python benchmarks/bench_dissection_throughput.py

Writes ``benchmarks/results/dissection_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "dissection_throughput.json"


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _model(kind: str):
    import torch
    from torch import nn

    torch.manual_seed(0)
    if kind == "patch_cpu":
        from spinefx.models import PATCH_PRESETS, build_model

        return build_model(PATCH_PRESETS["cpu"]).eval(), "encoder.level4", 32
    model = nn.Sequential()
    model.add_module("pool", nn.AvgPool3d(8))
    model.add_module("conv", nn.Conv3d(1, 512, 1))
    model.add_module("relu", nn.ReLU())
    model.add_module(
        "head", nn.Sequential(nn.AdaptiveMaxPool3d(1), nn.Flatten(), nn.Linear(512, 1))
    )
    return model.eval(), "relu", 64


class RandomPatches:
    def __init__(self, n: int, size: int):
        self.n, self.size = n, size

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        import torch

        g = torch.Generator().manual_seed(i)
        return (
            torch.rand(1, self.size, self.size, self.size, generator=g),
            i % 2,
            {"affine": np.eye(4)},
        )


def _loader(n: int, size: int):
    import torch

    from spinefx.interpretation import collate_samples

    return torch.utils.data.DataLoader(
        RandomPatches(n, size), batch_size=16, collate_fn=collate_samples
    )


def naive_thresholds(model, layer, loader, quantile):
    """Store every activation, then numpy.quantile per unit (the reference)."""
    from spinefx.interpretation.activations import iter_activations

    chunks = [
        b.activations.movedim(1, -1).reshape(-1, b.activations.shape[1]).numpy()
        for b in iter_activations(model, layer, loader)
    ]
    values = np.concatenate(chunks)
    del chunks
    return np.array(
        [np.quantile(values[:, k].astype(np.float64), 1 - quantile) for k in range(values.shape[1])]
    )


def child(kind: str, method: str, n: int, quantile: float, out: Path) -> None:
    import torch

    torch.set_num_threads(1)
    from spinefx.interpretation import dissect

    model, layer, size = _model(kind)
    loader = _loader(n, size)
    base, wall, cpu = _rss_mb(), time.perf_counter(), time.process_time()
    if method == "naive":
        thresholds, passes = naive_thresholds(model, layer, loader, quantile), 1
    else:
        d = dissect(model, layer, loader, quantile=quantile)
        thresholds, passes = d.thresholds, d.n_passes
    record = {
        "layer": kind,
        "method": method,
        "n_samples": n,
        "passes": passes,
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "peak_mem_growth_mb": _peak_mb() - base,
        "thresholds": thresholds.tolist(),
    }
    out.write_text(json.dumps(record))


def _run_child(kind, method, n, quantile, tmp: Path) -> dict:
    out = tmp / f"{kind}-{method}-{n}.json"
    subprocess.run(
        [sys.executable, __file__, "--child", kind, method, str(n), str(quantile), str(out)],
        check=True,
        cwd=ROOT,
        env={**os.environ, "SPINEFX_PROGRESS": "0"},
    )
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--quantile", type=float, default=0.005)
    parser.add_argument("--tmp", type=Path, default=Path("/tmp/spinefx-bench-dissect-tp"))
    args = parser.parse_args()
    args.tmp.mkdir(parents=True, exist_ok=True)
    out = {
        "setup": {
            "quantile": args.quantile,
            "batch_size": 16,
            "torch_threads": 1,
            "memory": "growth of the child's peak RSS over its RSS before dissection",
            "streaming": "3-4 passes: extrema + top-k + per-sample maxima, histogram, bracket",
            "naive": "1 pass storing all activations, numpy.quantile (float64) per unit",
            "load_average_at_start": os.getloadavg()[0],
        },
        "layers": {},
    }
    for kind in ("patch_cpu", "wide512"):
        runs = {
            "streaming": _run_child(kind, "streaming", args.n, args.quantile, args.tmp),
            "naive": _run_child(kind, "naive", args.n, args.quantile, args.tmp),
            "streaming_quarter": _run_child(
                kind, "streaming", args.n // 4, args.quantile, args.tmp
            ),
        }
        t_s, t_n = (np.array(runs[m]["thresholds"]) for m in ("streaming", "naive"))
        entry = {m: {k: v for k, v in r.items() if k != "thresholds"} for m, r in runs.items()}
        entry["max_abs_threshold_difference"] = float(np.abs(t_s - t_n).max())
        entry["units"] = len(t_s)
        for m in ("streaming", "naive"):
            entry[m]["samples_per_s"] = args.n / runs[m]["wall_s"]
            entry[m]["samples_per_cpu_s"] = args.n / runs[m]["cpu_s"]
        out["layers"][kind] = entry
        print(
            f"{kind}: streaming {entry['streaming']['samples_per_s']:.1f}/s, "
            f"{entry['streaming']['peak_mem_growth_mb']:.0f} MB "
            f"({args.n // 4} samples: {entry['streaming_quarter']['peak_mem_growth_mb']:.0f} MB); "
            f"naive {entry['naive']['samples_per_s']:.1f}/s, "
            f"{entry['naive']['peak_mem_growth_mb']:.0f} MB; "
            f"max |dT| = {entry['max_abs_threshold_difference']:.2e}",
            flush=True,
        )
    out["machine"] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg()[0],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), Path(sys.argv[6]))
    else:
        main()

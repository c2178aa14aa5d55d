"""Benchmark: whole-scan screening inside the spine region vs every tissue tile, on real CT.

For each real CT in ``../shared/data/real`` the shipped voxel classifier runs twice, side by
side in one process: ``detect_fractures(..., spine_roi=False)`` (every tile with tissue, the
old default) and ``spine_roi=True`` (tiles touching the spine region only). With vertebra
positions from the CT's mask the region is a capsule around them; without, it is "near bone"
(the automatic-localisation case). Reported per scan: seconds of each, the screened share of
the grid, the largest difference of any vertebra score (must be 0: the tiles that run are
exact), and the patient-level score of both.

Usage:
    python benchmarks/bench_spine_roi.py [--threads 2]

Writes ``benchmarks/results/spine_roi.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "spine_roi.json"
REAL = Path(
    os.environ.get("SPINEFX_REAL_DATA", Path(__file__).resolve().parents[2] / "shared/data/real")
)


def cases() -> list[tuple[str, Path, Path | None]]:
    """(name, CT, vertebra mask or None) of the real CTs present."""
    out = []
    for sub in ("006", "007", "008"):
        ct = REAL / f"verse/rawdata/sub-verse{sub}/sub-verse{sub}_ct.nii.gz"
        mask = REAL / f"verse/derivatives/sub-verse{sub}/sub-verse{sub}_seg-vert_msk.nii.gz"
        if ct.is_file():
            out.append((f"verse{sub}", ct, mask if mask.is_file() else None))
    ts = REAL / "totalseg/example_ct.nii.gz"
    if ts.is_file():
        masks = sorted((REAL / "totalseg/spine_report").glob("*.nii.gz"))
        out.append(("totalseg_abdomen", ts, masks[0] if masks else None))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import numpy as np
    import torch

    from spinefx.inference.screening import detect_fractures
    from spinefx.io import load_scan
    from spinefx.morphometry.centroids import vertebra_mask_centroids
    from spinefx.runs import load_trained
    from spinefx.runs.shipped import shipped_run_dir

    torch.set_num_threads(args.threads)
    run = load_trained(shipped_run_dir("voxel"), expect="voxel")
    rows = []
    for name, ct_path, mask_path in cases():
        scan = load_scan(ct_path)
        variants = (
            [("mask centroids", vertebra_mask_centroids(mask_path, scan))] if mask_path else []
        )
        variants.append(("no centroids (near bone)", None))
        for how, centroids in variants:
            result = {}
            for roi in (False, True, False, True):  # alternated, the faster of two kept
                started = time.perf_counter()
                try:
                    res = detect_fractures(run, scan, centroids, spine_roi=roi, show_progress=False)
                except Exception as exc:  # noqa: BLE001 - a refused localisation is a result
                    result[roi] = {
                        "error": str(exc)[:200],
                        "seconds": time.perf_counter() - started,
                    }
                    continue
                seconds = time.perf_counter() - started
                if roi in result and result[roi].get("seconds", np.inf) <= seconds:
                    continue
                result[roi] = {
                    "seconds": round(seconds, 2),
                    "screened_fraction": round(res.roi_fraction, 4),
                    "patient_score_mm3": res.patient_score,
                    "scores": {v.vertebra_label: v.probability for v in res.vertebrae},
                }
            whole, spine = result[False], result[True]
            row = {"scan": name, "shape": list(scan.shape), "positions": how}
            if "error" in whole or "error" in spine:
                row.update(whole_volume=whole, spine_roi=spine)
            else:
                common = sorted(set(whole["scores"]) & set(spine["scores"]))
                diff = max(
                    (
                        abs(whole["scores"][k] - spine["scores"][k])
                        for k in common
                        if np.isfinite(whole["scores"][k])
                    ),
                    default=0.0,
                )
                row.update(
                    whole_volume_seconds=whole["seconds"],
                    spine_roi_seconds=spine["seconds"],
                    speedup=round(whole["seconds"] / max(spine["seconds"], 1e-6), 2),
                    screened_fraction=spine["screened_fraction"],
                    vertebrae=len(common),
                    same_vertebrae=set(whole["scores"]) == set(spine["scores"]),
                    max_score_difference=float(diff),
                    patient_score_whole_mm3=whole["patient_score_mm3"],
                    patient_score_roi_mm3=spine["patient_score_mm3"],
                )
            rows.append(row)
            print(json.dumps(row))
    result = {
        "benchmark": "spine_roi",
        "model": "shipped voxel classifier",
        "threads": args.threads,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "scans": rows,
    }
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

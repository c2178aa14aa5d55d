"""Morphometry against the generator's intended grades, and on the real masks.

Usage: python benchmarks/bench_morphometry.py [--n-scans 50] [--presets small clean]

For each preset, N synthetic scans (seed 7) are measured twice: with the VerSe sub-region mask
(body = 49-50) and with the body estimated from the vertebra mask alone. A vertebra counts when
its body is fully in view (the grade table grades it). Also reports what the estimator says on
the real masks in ../shared/data/real (verse004, ctfu) next to the official grades.
Writes benchmarks/results/morphometry.json (entries of other presets are kept).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np

from spinefx.morphometry import measure_vertebrae
from spinefx.synthesis import case_rng, generate_case, preset

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"
OUT = ROOT / "benchmarks" / "results" / "morphometry.json"


def synthetic(preset_name: str, n_scans: int, seed: int = 7) -> dict:
    config = preset(preset_name)
    stats = {mode: {"pairs": [], "shapes": []} for mode in ("subregion", "estimated_body")}
    spacings, t_measure = [], 0.0
    for i in range(n_scans):
        case = generate_case(config, case_rng(seed, i))
        spacings.append(float(max(case.ct.spacing_mm)))
        truth = {v.vertebra_label: v for v in case.vertebrae}
        for mode in stats:
            t0 = time.perf_counter()
            rows = measure_vertebrae(
                case.vertebra_mask,
                centroids=case.centroids_mm,
                subregion_mask=case.subregion_mask if mode == "subregion" else None,
            )
            t_measure += time.perf_counter() - t0
            for r in rows:
                t = truth.get(r.vertebra_label)
                if t is None or not t.fully_in_view or r.genant_grade is None:
                    continue
                stats[mode]["pairs"].append(
                    (t.genant_grade, r.genant_grade, t.height_loss, r.height_loss)
                )
                if t.genant_grade > 0:
                    stats[mode]["shapes"].append((t.shape, r.shape, r.genant_grade > 0))
    result = {
        "preset": preset_name,
        "n_scans": n_scans,
        "seed": seed,
        "largest_voxel_side_mm": [round(min(spacings), 2), round(max(spacings), 2)],
    }
    for mode, s in stats.items():
        pairs = np.array([(a, b) for a, b, _, _ in s["pairs"]])
        loss = np.array([(c, d) for a, _, c, d in s["pairs"] if a > 0])
        confusion = Counter(f"{a}->{b}" for a, b in pairs.tolist())
        result[mode] = {
            "n_vertebrae": int(len(pairs)),
            "n_fractured": int((pairs[:, 0] > 0).sum()),
            "grade_accuracy": round(float(np.mean(pairs[:, 0] == pairs[:, 1])), 4),
            "grade_within_one": round(float(np.mean(np.abs(pairs[:, 0] - pairs[:, 1]) <= 1)), 4),
            "fracture_detection_sensitivity": round(
                float(np.mean(pairs[pairs[:, 0] > 0, 1] > 0)), 4
            ),
            "fracture_detection_specificity": round(
                float(np.mean(pairs[pairs[:, 0] == 0, 1] == 0)), 4
            ),
            # a missed fracture (estimated grade 0) has no shape: counted as wrong here
            "shape_accuracy_fractured": round(
                float(np.mean([a == b for a, b, _ in s["shapes"]])), 4
            ),
            "shape_accuracy_detected_fractures": round(
                float(np.mean([a == b for a, b, hit in s["shapes"] if hit])), 4
            ),
            "height_loss_mae_fractured": round(float(np.mean(np.abs(loss[:, 0] - loss[:, 1]))), 4),
            "confusion_true_to_estimated": dict(sorted(confusion.items())),
        }
    result["measure_seconds_per_scan"] = round(t_measure / (2 * n_scans), 3)
    return result


def _rows(mask_path: Path, centroid_path: Path | None, subregion_path: Path | None) -> dict:
    from spinefx.io import load_centroids, load_mask

    mask = load_mask(mask_path)
    centroids = load_centroids(centroid_path, mask) if centroid_path else None
    sub = load_mask(subregion_path, known_labels=None) if subregion_path else None
    return {
        r.level: {
            "estimated_grade": r.genant_grade,
            "estimated_shape": r.shape,
            "height_loss": round(r.height_loss, 3),
            "heights_mm": [round(h, 1) for h in r.heights_mm],
            "note": r.note,
        }
        for r in measure_vertebrae(mask, centroids=centroids, subregion_mask=sub)
    }


def real() -> dict:
    if not (REAL / "README.md").is_file():
        return {"skipped": f"real samples not found at {REAL}"}
    out = {}
    official = {"T9": 2, "T10": 2, "L1": 3}
    v = REAL / "verse004"
    rows = _rows(
        v / "sub-verse004_seg-vert_msk.nii.gz", v / "sub-verse004_seg-subreg_ctd.json", None
    )
    for level, row in rows.items():
        row["official_grade"] = official.get(level, 0)
    out["verse004"] = rows
    codes = {}
    with (REAL / "ctfu" / "labels.tsv").open() as f:
        for rec in csv.DictReader(f, delimiter="\t"):
            codes[rec["ID"]] = {
                k[4:]: rec[k] for k in rec if k.startswith("def_") and rec[k] not in ("", None)
            }
    for mask in sorted((REAL / "ctfu" / "derivatives").glob("*/ses-*/*_seg-vert_msk.nii.gz")):
        stem = mask.name.replace("_seg-vert_msk.nii.gz", "")
        rows = _rows(
            mask,
            mask.with_name(stem + "_seg-subreg_ctd.json"),
            mask.with_name(stem + "_seg-subreg_msk.nii.gz"),
        )
        for level, row in rows.items():
            code = codes.get(stem, {}).get(level)
            row["official_code"] = None if code is None else int(float(code))
        out[stem] = rows
    out["ctfu_codes"] = (
        "0 normal, 1-3 Genant grade, 6 foreign material (screws); see label-codes.md"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-scans", type=int, default=50)
    parser.add_argument("--presets", nargs="+", default=["small"])
    args = parser.parse_args()
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    results.setdefault("synthetic", {})
    results["git_commit"] = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    for name in args.presets:
        t0 = time.perf_counter()
        res = synthetic(name, args.n_scans)
        res["wall_seconds"] = round(time.perf_counter() - t0, 1)
        results["synthetic"][name] = res
        print(json.dumps(res, indent=1))
    results["real"] = real()
    for case, rows in results["real"].items():
        if isinstance(rows, dict):
            print(
                case,
                {
                    k: (r.get("official_grade", r.get("official_code")), r["estimated_grade"])
                    for k, r in rows.items()
                },
            )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

"""Benchmark: the patch classifier's ``cpu`` preset on a fixed synthetic benchmark set.

1. Generates two synthetic "sources" with ``spinefx.synthesis`` (fixed seeds):
   A = the ``default`` acquisition variety (8 orientations, 0.6-1 mm in-plane, 1-3 mm slices,
   10-30 HU noise, pedicle screws), B = the ``clean`` acquisition (RAS, 1 mm, 10 HU noise, no
   screws). Both with a raised fracture prevalence (so a small set holds enough fractures) and
   a 1.5 mm build grid (faster synthesis; the cpu preset reads 3 mm patches).
2. Prepares both with the cpu preset's patch geometry (32^3 at 3 mm) and joins them (A+B).
3. Trains the cpu preset on A (timed: wall time, peak RSS), evaluates it on A's held-out test
   scans: AUC/F1/AP/... overall and per Genant grade; times inference per vertebra (model
   forward on prepared patches, and whole-scan ``predict_vertebrae`` incl. patch extraction).
4. Table 1 in the paper's form: training data x test data (A->A, A->B, A+B->A, A+B->A+B).

Usage: ``nice -n 10 python benchmarks/bench_patch_classifier.py [--work DIR] [--trials 1]``;
writes ``benchmarks/results/patch_classifier.json`` (+ ``patch_classifier_table1.md``).
Generated data and runs stay in ``--work`` (default /tmp/spinefx-bench-patch) and are reused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "patch_classifier.json"
TABLE = ROOT / "benchmarks" / "results" / "patch_classifier_table1.md"
SOURCES = {"A": ("default", 64, 2026), "B": ("clean", 32, 3026)}  # preset, scans, seed


def synthesis_config(preset_name: str):
    from spinefx.synthesis import FractureConfig, preset

    base = preset(preset_name)
    return dataclasses.replace(
        base,
        fractures=FractureConfig(prevalence=0.2, osteoporotic_prevalence=0.4),
        acquisition=dataclasses.replace(base.acquisition, build_spacing_mm=1.5),
    )


def make_source(work: Path, name: str, *, size_vox: int, spacing_mm: float) -> Path:
    from spinefx.io import load_dataset
    from spinefx.preprocessing.prepare import prepare_dataset
    from spinefx.synthesis import generate_dataset

    preset_name, n_scans, seed = SOURCES[name]
    raw = work / f"synth-{name}"
    if not (raw / "fracture_grades.csv").is_file():
        generate_dataset(raw, n_scans=n_scans, seed=seed, config=synthesis_config(preset_name))
    prepared = work / f"prepared-{name}"
    if not (prepared / "manifest.csv").is_file():
        prepare_dataset(load_dataset(raw), prepared, size_vox=size_vox, spacing_mm=spacing_mm)
    return prepared


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_inference(run_dir: Path, prepared: Path) -> dict:
    """ms per vertebra: model forward on prepared patches; whole-scan prediction."""
    import pandas as pd

    from spinefx.datasets.patch_dataset import load_patch
    from spinefx.inference.patch_classifier import predict_unit_patches, predict_vertebrae
    from spinefx.io import load_centroids, load_scan
    from spinefx.runs import load_trained

    run = load_trained(run_dir, expect="patch")
    table = pd.read_csv(prepared / "manifest.csv")
    test = table[table["split"] == "test"]
    stack = np.stack(
        [
            load_patch(prepared / p, patch_size_vox=run.patch_size_vox, spacing_mm=run.spacing_mm)
            for p in test["path"]
        ]
    )
    start = time.perf_counter()
    predict_unit_patches(run.models[0], stack)
    forward_ms = 1000 * (time.perf_counter() - start) / len(stack)
    n_vert, seconds = 0, 0.0
    for scan_path in sorted(set(test["scan_path"]))[:3]:
        case = Path(scan_path).name.replace("_ct.nii.gz", "")
        ctd = Path(scan_path).parents[2] / "derivatives" / case / f"{case}_seg-subreg_ctd.json"
        scan = load_scan(scan_path)
        centroids = load_centroids(ctd, scan, outside="keep")
        start = time.perf_counter()
        n_vert += len(predict_vertebrae(run, scan, centroids))
        seconds += time.perf_counter() - start
    return {
        "model_forward_ms_per_vertebra": round(forward_ms, 2),
        "scan_prediction_ms_per_vertebra": round(1000 * seconds / max(n_vert, 1), 2),
        "scan_prediction_vertebrae": n_vert,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/spinefx-bench-patch"))
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (shared CPU: 1)")
    parser.add_argument("--no-table", action="store_true", help="skip the Table 1 runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    os.environ.setdefault("SPINEFX_PROGRESS", "0")

    from spinefx.datasets.patch_manifest import combine_prepared
    from spinefx.evaluation.patch_evaluation import evaluate_run, format_summary
    from spinefx.evaluation.patch_table import cross_dataset_table, table_markdown
    from spinefx.runs.configs import load_training_config
    from spinefx.training.patch_training import train_patch_classifier

    config = load_training_config("cpu").replace(cpu_threads=args.threads)
    geometry = {"size_vox": config.model.patch_size_vox, "spacing_mm": config.model.spacing_mm}
    load_before = os.getloadavg()
    start = time.perf_counter()
    prepared = {name: make_source(args.work, name, **geometry) for name in SOURCES}
    prepared["A+B"] = combine_prepared(
        {"A": prepared["A"], "B": prepared["B"]}, args.work / "prepared-AB"
    )
    data_seconds = time.perf_counter() - start

    run_a = args.work / "run-A"
    start = time.perf_counter()
    training = train_patch_classifier(config, prepared["A"], run_a, seed=0, trials=args.trials)
    train_seconds = time.perf_counter() - start
    peak_train = peak_rss_mb()
    load_train = os.getloadavg()
    evaluation = evaluate_run(run_a, split="test")
    print(format_summary(evaluation))
    inference = time_inference(run_a, prepared["A"])

    s = evaluation["summary"]
    result = {
        "benchmark": "patch classifier, cpu preset, synthetic spine CTs",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": args.threads,
        },
        "load_average_1_5_15": {
            "before": [round(x, 2) for x in load_before],
            "after_training": [round(x, 2) for x in load_train],
        },
        "sources": {
            k: {"synthesis_preset": v[0], "n_scans": v[1], "seed": v[2]} for k, v in SOURCES.items()
        },
        "config": dataclasses.asdict(config),
        "trials": args.trials,
        "data_seconds": round(data_seconds, 1),
        "train_wall_seconds": round(train_seconds, 1),
        "train_seconds_per_trial": [
            m.get("train_seconds") for m in training.get("per_trial", [training])
        ],
        "train_peak_rss_mb": round(peak_train, 1),
        "epochs": [m.get("epochs_trained") for m in training.get("per_trial", [training])],
        "best_epochs": [m.get("best_epoch") for m in training.get("per_trial", [training])],
        "counts": training.get("counts") or training["per_trial"][0]["counts"],
        "test": {
            "n_vertebrae": evaluation["n_vertebrae"],
            "n_fractured": evaluation["n_fractured"],
            "n_scans": evaluation["n_cases"],
            "threshold": evaluation["threshold"],
            **{
                k: {"mean": s[k]["mean"], "std": s[k]["std"]}
                for k in ("auc", "f1", "ap", "accuracy", "sensitivity", "specificity")
            },
            "by_grade": {
                g: {
                    "n": v["n"]["mean"],
                    "sensitivity": v["sensitivity"]["mean"],
                    "auc_vs_normal": v["auc"]["mean"],
                }
                for g, v in evaluation["by_grade"].items()
            },
        },
        "inference": inference,
        "table1": [],
        "targets": {"train_wall_seconds_max": 900, "auc_min": 0.95},
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2, default=float))  # before the long Table 1
    table_rows = []
    if not args.no_table:
        run_ab = args.work / "run-AB"
        train_patch_classifier(config, prepared["A+B"], run_ab, seed=0, trials=args.trials)
        table_rows = cross_dataset_table({"A": run_a}, {"A": prepared["A"], "B": prepared["B"]})
        table_rows += cross_dataset_table(
            {"A+B": run_ab}, {"A": prepared["A"], "A+B": prepared["A+B"]}
        )
        TABLE.write_text(
            "Synthetic Table 1 (cpu preset; A = varied acquisition, B = clean acquisition; "
            f"{args.trials} trial(s), mean ± std)\n\n" + table_markdown(table_rows)
        )
        print(table_markdown(table_rows))

    result["table1"] = table_rows
    RESULT.write_text(json.dumps(result, indent=2, default=float))
    print(
        json.dumps(
            {k: result[k] for k in ("train_wall_seconds", "train_peak_rss_mb", "inference")},
            indent=2,
        )
    )
    print(f"wrote {RESULT}")


if __name__ == "__main__":
    main()

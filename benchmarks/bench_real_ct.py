"""Benchmark: both networks and morphometry on every officially graded real vertebra.

For each training recipe (``spinefx.training.recipes``) it trains the patch and voxel
classifiers (cpu presets) and scores them:

* **real CT** (``../shared/data/real``: the VerSe CTs and the ctfu CTs with official grades).
  A recipe that uses real data (mask rendering, fracture simulation on real CTs) is trained
  once per fold of subjects, without the fold's subjects, and scores only them
  (folds over subjects; see ``FOLDS``). A recipe without real data is trained once.
* **held-out synthetic** scans (procedural generator, a seed no recipe trains on), so one
  run shows the sim-to-real gap as two numbers side by side.
* **morphometry** (mask-only height loss, no training) on the same CT vertebrae and on every
  real mask with grades (the VerSe predicted masks and verse004 too).

AUC intervals are bootstrap 95 % percentile intervals resampling whole subjects. Writes
``benchmarks/results/real_ct.json`` and ``real_ct_vertebrae.csv`` (one row per vertebra and
method). Usage::

    nice python benchmarks/bench_real_ct.py --recipes procedural-cpu mixed-cpu [--work DIR]

Trained recipes stay in ``--work`` (default /tmp/spinefx-bench-real) and are reused.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
REAL = Path(os.environ.get("SPINEFX_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))
#: folds over the real CT subjects with grades: each holds fractured vertebrae
FOLDS: dict[str, tuple[str, ...]] = {
    "A": ("verse007", "ctfu00001"),
    "B": ("verse006", "verse008"),
}
SYNTH_SEED, SYNTH_SCANS = 777_777, 12


def uses_real_data(recipe) -> bool:
    return any(recipe.engine.mix.get(k, 0) > 0 for k in ("mask_render", "real_fracture"))


def heldout_synthetic(work: Path, patch_geometry: tuple[int, float]) -> tuple[Path, Path]:
    """Procedural scans from a seed no recipe uses, and their prepared patches."""
    from spinefx.io import load_dataset
    from spinefx.preprocessing import prepare_dataset
    from spinefx.synthesis import generate_dataset

    raw, prepared = work / "heldout-synthetic", work / "heldout-synthetic-patches"
    if not (raw / "fracture_grades.csv").is_file():
        generate_dataset(raw, n_scans=SYNTH_SCANS, seed=SYNTH_SEED, preset="default", workers=2)
    if not (prepared / "manifest.csv").is_file():
        size, spacing = patch_geometry
        prepare_dataset(load_dataset(raw), prepared, size_vox=size, spacing_mm=spacing, workers=2)
    return raw, prepared


def synthetic_scores(method: str, run_dir: Path, raw: Path, prepared: Path) -> dict:
    """Vertebra AUC (bootstrap over scans) of one run on the held-out synthetic scans."""
    import numpy as np
    import pandas as pd

    from spinefx.evaluation.metrics import auc_statistic, bootstrap

    if method == "patch":
        from spinefx.datasets.patch_dataset import load_patch
        from spinefx.inference.patch_classifier import predict_unit_patches
        from spinefx.runs import load_trained

        run = load_trained(run_dir, expect="patch")
        table = pd.read_csv(prepared / "manifest.csv", dtype={"genant_grade": "string"})
        table = table[table["genant_grade"].isin(["0", "1", "2", "3"])]
        table = table[table["foreign_material"] == 0]
        stack = np.stack(
            [
                load_patch(
                    prepared / p, patch_size_vox=run.patch_size_vox, spacing_mm=run.spacing_mm
                )
                for p in table["path"]
            ]
        )
        score = np.mean([predict_unit_patches(m, stack) for m in run.models], 0)
        y, groups = table["genant_grade"].astype(int).to_numpy() >= 1, table["case_id"].to_numpy()
    else:
        from spinefx.inference.screening import detect_fractures
        from spinefx.io import load_centroids, load_dataset, load_scan

        y, score, groups = [], [], []
        for case in load_dataset(raw):
            image = load_scan(case.scan_path)
            centroids = load_centroids(case.centroids_path, image, outside="keep")
            found = {
                v.vertebra_label: v
                for v in detect_fractures(run_dir, image, centroids, show_progress=False).vertebrae
            }
            for v in case.vertebrae:
                d = found.get(v.vertebra_label)
                if v.genant_grade is None or v.foreign_material or d is None or not d.assessable:
                    continue
                y.append(v.genant_grade >= 1)
                score.append(d.probability)
                groups.append(case.case_id)
        y, score, groups = np.array(y), np.array(score), np.array(groups)
    return {
        "n_vertebrae": int(len(y)),
        "n_fractured": int(np.sum(y)),
        "auc": auc_statistic(y.astype(int), score),
        "auc_bootstrap": bootstrap(
            y.astype(int), score, auc_statistic, groups=groups, n_resamples=1000
        ),
    }


def run_recipe(
    name: str, work: Path, subjects, raw: Path, prepared: Path, methods=("patch", "voxel")
) -> tuple[dict, list]:
    from spinefx.evaluation.real_ct import score_network, summarise
    from spinefx.training.recipes import get_recipe, train_recipe

    recipe = get_recipe(name)
    folds = FOLDS if uses_real_data(recipe) else {"": ()}
    rows, records = {m: [] for m in methods}, {}
    for fold, held_out in folds.items():
        out = work / name / (f"fold-{fold}" if fold else "all")
        record = train_recipe(
            recipe, out, real_root=REAL, exclude_subjects=held_out, seed=0, models=tuple(methods)
        )
        records[fold or "all"] = record
        scored = [s for s in subjects if not held_out or s.subject_id in held_out]
        for method in methods:
            rows[method] += score_network(method, record["runs"][method], scored, fold=fold)
    result = {"folds": {k: list(v) for k, v in folds.items()}, "training": records}
    for method in methods:
        run_dir = Path(next(iter(records.values()))["runs"][method])
        result[method] = {
            "real_ct": summarise(rows[method]),
            "heldout_synthetic": synthetic_scores(method, run_dir, raw, prepared),
            "train_minutes_per_fold": [
                r["minutes"].get(f"train_{method}") for r in records.values()
            ],
        }
    return result, [r for m in methods for r in rows[m]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=["procedural-cpu", "mixed-cpu"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/spinefx-bench-real"))
    parser.add_argument(
        "--models", nargs="+", choices=("patch", "voxel"), default=["patch", "voxel"]
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not (REAL / "README.md").is_file():
        raise SystemExit(f"real samples not found at {REAL}; set SPINEFX_REAL_DATA")
    from spinefx.evaluation.real_ct import score_morphometry, summarise
    from spinefx.runs.configs import load_training_config
    from spinefx.synthesis.real_sources import find_real_subjects

    started, load_before = time.perf_counter(), os.getloadavg()
    subjects = find_real_subjects(REAL)
    ct_subjects = [s for s in subjects if any(sc.grades for sc in s.ct_scans)]
    model = load_training_config("cpu").model
    raw, prepared = heldout_synthetic(args.work, (model.patch_size_vox, model.spacing_mm))
    morph = score_morphometry(subjects)
    ct_ids = {sc.scan_id for s in ct_subjects for sc in s.ct_scans}
    results = {
        "real_data": str(REAL),
        "ct_subjects": [s.subject_id for s in ct_subjects],
        "morphometry": {
            "real_ct_vertebrae": summarise([r for r in morph if r.scan_id in ct_ids]),
            "all_real_masks": summarise(morph),
        },
        "recipes": {},
    }
    all_rows = [("", r.row()) for r in morph]
    for name in args.recipes:
        result, rows = run_recipe(name, args.work, ct_subjects, raw, prepared, args.models)
        result["measured"] = time.strftime("%Y-%m-%d %H:%M")
        results["recipes"][name] = result
        all_rows += [(name, r.row()) for r in rows]
        for method in args.models:
            real, synth = result[method]["real_ct"], result[method]["heldout_synthetic"]
            print(
                f"{name:22s} {method:6s} real AUC {real['auc']:.3f} "
                f"[{real['auc_bootstrap'].get('low', float('nan')):.2f}, "
                f"{real['auc_bootstrap'].get('high', float('nan')):.2f}] "
                f"(n={real['n_scored']}, {real['n_fractured']} fx)  synthetic AUC {synth['auc']:.3f}"
            )
    m = results["morphometry"]["real_ct_vertebrae"]
    print(
        f"{'morphometry':22s} {'':6s} real AUC {m['auc']:.3f} (same CT vertebrae, n={m['n_scored']})"
    )
    results["machine"] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "wall_minutes": round((time.perf_counter() - started) / 60, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    previous = RESULTS / "real_ct.json"
    if previous.is_file():  # recipes and models measured in earlier runs stay (each says when)
        earlier = json.loads(previous.read_text()).get("recipes", {})
        results["recipes"] = _merge_recipes(earlier, results["recipes"])
    table = _write_rows(RESULTS / "real_ct_vertebrae.csv", all_rows, args.recipes, args.models)
    results["selected_by_other_fold"] = {
        m: select_by_other_fold(table, m) for m in ("patch", "voxel")
    }
    for method, sel in results["selected_by_other_fold"].items():
        if sel:
            print(
                f"{'selected (other fold)':22s} {method:6s} real AUC {sel['real_ct']['auc']:.3f} "
                f"choices {sel['choice']}"
            )
    (RESULTS / "real_ct.json").write_text(json.dumps(results, indent=2, default=float) + "\n")


def _merge_recipes(earlier: dict, new: dict) -> dict:
    """Earlier results with the recipes, and within a recipe the models, measured now replaced."""
    out = dict(earlier)
    for name, result in new.items():
        merged = dict(earlier.get(name, {}))
        training = {**merged.get("training", {})}
        for fold, record in result.get("training", {}).items():
            training[fold] = {**training.get(fold, {}), **record}
            for key in ("minutes", "runs"):
                training[fold][key] = {
                    **merged.get("training", {}).get(fold, {}).get(key, {}),
                    **record.get(key, {}),
                }
        merged.update(result)
        merged["training"] = training
        out[name] = merged
    return out


def select_by_other_fold(rows: list[dict], method: str) -> dict:
    """The "best recipe" figure without choosing it on the subjects it reports.

    For each fold, the recipe with the highest real-CT AUC on the *other* folds' subjects is
    chosen, and its scores of this fold's subjects are reported; the chosen rows of all folds
    are pooled into one AUC. A candidate must have scored every fold's subjects.
    """
    from spinefx.evaluation.real_ct import ScoredVertebra, summarise

    def scored(r: dict) -> ScoredVertebra:
        fields = {k: v for k, v in r.items() if k != "recipe"}
        return ScoredVertebra(
            **{
                **fields,
                "vertebra_label": int(r["vertebra_label"]),
                "genant_grade": int(r["genant_grade"]),
                "score": float(r["score"]),
                "flagged": r["flagged"] in (True, "True"),
            }
        )

    by_recipe: dict[str, list[ScoredVertebra]] = {}
    for r in rows:
        if r["method"] == method and r["recipe"]:
            by_recipe.setdefault(r["recipe"], []).append(scored(r))
    fold_of = {s: f for f, members in FOLDS.items() for s in members}
    candidates = {
        name: rs
        for name, rs in by_recipe.items()
        if {fold_of.get(r.subject_id) for r in rs} >= set(FOLDS)
    }
    if len(candidates) < 2:
        return {}

    def other_auc(name: str, fold: str) -> float:
        other = [r for r in candidates[name] if fold_of.get(r.subject_id) not in (fold, None)]
        auc = summarise(other, n_resamples=0)["auc"]
        return -1.0 if auc != auc else auc

    chosen, pooled = {}, []
    for fold in FOLDS:
        best = max(sorted(candidates), key=lambda name: other_auc(name, fold))  # noqa: B023
        chosen[fold] = {"recipe": best, "other_fold_auc": other_auc(best, fold)}
        pooled += [r for r in candidates[best] if fold_of.get(r.subject_id) == fold]
    return {"choice": chosen, "candidates": sorted(candidates), "real_ct": summarise(pooled)}


def _write_rows(path: Path, rows: list[tuple[str, dict]], recipes, methods) -> list[dict]:
    """One CSV row per (recipe, method, vertebra); rows of (recipe, model)s not re-run are kept.

    Returns:
        The table written.
    """
    kept = []
    if path.is_file():
        with path.open(encoding="utf-8", newline="") as handle:
            kept = [
                r
                for r in csv.DictReader(handle)
                if r["recipe"] and not (r["recipe"] in recipes and r["method"] in methods)
            ]
    table = [{"recipe": name, **row} for name, row in rows] + kept
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    return table


if __name__ == "__main__":
    main()

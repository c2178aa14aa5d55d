"""Build the default weights that ship with spinefx, reproducibly, from seeds.

:func:`build_shipped_weights` is what ``make weights`` (``spinefx weights build``) runs:

1. train both networks with the ``default-cpu`` recipe (:mod:`spinefx.training.recipes`):
   the training-data engine on data whose licence allows shipping weights only;
2. choose each run's operating point on its own validation split (simulated data; no real
   subject that the real-CT benchmark scores is involved: :mod:`~spinefx.evaluation.calibration`);
3. dissect the patch classifier on its training data (the concept atlas and collages that the
   report and the app explain with), and copy the two runs (weights, configs, run records,
   atlas; no local paths) into the weights folder;
4. record both runs' outputs on a fixed generated scan (``reference_outputs.json``): the test
   that the shipped weights load and reproduce them;
5. write ``MANIFEST.json``: recipe, seed, code version, the training data and its licences,
   the collections left out (and why), the benchmark figures, sha256 of every file.

The folder is written beside the target and swapped in whole, so an interrupted build leaves
the previous weights as they were.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np

from spinefx.atomic import write_text_atomic
from spinefx.errors import InputError
from spinefx.runs.layout import RunPaths
from spinefx.runs.shipped import (
    HEATMAP_FOLDER,
    KIND_FOLDERS,
    MANIFEST,
    REFERENCE,
    file_checksums,
    weights_dir,
)

log = logging.getLogger(__name__)

DEFAULT_RECIPE = "default-cpu"
#: the fixed generated scan of the reproduction test (small preset: < 1 s to generate)
REFERENCE_SCAN = {"preset": "small", "seed": 2026, "index": 0}
#: run files that ship (no training state, no logs with local paths)
_RUN_FILES = ("checkpoint.pt", "config.yaml", "metrics.json", "operating_point.json")


def reference_scan():
    """The fixed generated scan of :data:`REFERENCE_SCAN`: ``(ct Image, centroids)``."""
    from spinefx.synthesis.config import preset
    from spinefx.synthesis.dataset import case_rng
    from spinefx.synthesis.generator import generate_case

    config = preset(REFERENCE_SCAN["preset"])
    case = generate_case(config, case_rng(REFERENCE_SCAN["seed"], REFERENCE_SCAN["index"]))
    centroids = {v.vertebra_label: np.asarray(v.centroid_mm, float) for v in case.vertebrae}
    return case.ct, centroids


def reference_outputs(patch_run: str | Path, voxel_run: str | Path) -> dict:
    """Both runs' per-vertebra probabilities on :func:`reference_scan`."""
    from spinefx.inference.patch_classifier import predict_vertebrae
    from spinefx.inference.screening import detect_fractures

    ct, centroids = reference_scan()
    patch = predict_vertebrae(patch_run, ct, centroids)
    voxel = detect_fractures(voxel_run, ct, centroids, show_progress=False)
    return {
        "scan": REFERENCE_SCAN,
        "patch": {str(v.vertebra_label): round(float(v.probability), 6) for v in patch},
        "voxel": {str(v.vertebra_label): round(float(v.probability), 6) for v in voxel.vertebrae},
        "voxel_patient_score": int(voxel.patient_score),
    }


def build_shipped_weights(
    real_root: str | Path,
    work_dir: str | Path,
    *,
    recipe: str = DEFAULT_RECIPE,
    seed: int = 0,
    target: str | Path | None = None,
    benchmark: str | Path | None = None,
) -> dict:
    """Train, calibrate and package the default weights; the manifest written.

    Args:
        real_root: the real sample folder (``../shared/data/real``) the recipe builds on.
        work_dir: training folder (reused when run again: finished steps are skipped).
        recipe: training recipe; it must use shippable data only.
        seed: seed of data and training.
        target: weights folder to write (default: the package's ``weights``).
        benchmark: ``real_ct.json`` of the real-CT benchmark, whose figures of ``recipe``
            go into the manifest (optional).
    """
    from spinefx.evaluation.calibration import validation_operating_point
    from spinefx.training.recipes import get_recipe, train_recipe

    chosen = get_recipe(recipe)
    if not chosen.engine.shippable_only:
        raise InputError(
            f"recipe {recipe!r} may use data whose licence forbids shipping weights",
            fix="use a shippable recipe such as default-cpu",
        )
    work = Path(work_dir)
    record = train_recipe(chosen, work, real_root=real_root, seed=seed)
    runs = {kind: Path(record["runs"][kind]) for kind in KIND_FOLDERS}
    data = {"patch": work / "patches", "voxel": work / "data" / "manifest.csv"}
    for kind, run in runs.items():
        if not RunPaths(run).operating_point.is_file():
            validation_operating_point(run, data[kind], seed=seed)
    atlas = RunPaths(runs["patch"]).dissection / "atlas.yaml"
    if not atlas.is_file():  # the concept atlas the app and the report explain with
        from spinefx.interpretation import dissect_run

        dissect_run(runs["patch"], data["patch"], split="all", export_units=10)
    manifest = package_weights(
        runs,
        target or weights_dir(),
        recipe=recipe,
        seed=seed,
        training_data=training_sources(work / "data"),
        benchmark=benchmark_figures(benchmark, recipe) if benchmark else {},
        minutes=record.get("minutes", {}),
    )
    return manifest


def package_weights(
    runs: dict[str, Path],
    target: str | Path,
    *,
    recipe: str,
    seed: int,
    training_data: dict,
    benchmark: dict | None = None,
    minutes: dict | None = None,
) -> dict:
    """Copy trained runs into a weights folder with reference outputs and a manifest.

    Args:
        runs: ``{"patch": run_dir, "voxel": run_dir}``.
        target: the weights folder; written beside it and swapped in whole.
        recipe / seed / training_data / benchmark / minutes: recorded in the manifest.

    Returns:
        the manifest written.
    """
    target = Path(target)
    staging = target.with_name(target.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for kind, run in runs.items():
        _copy_run(Path(run), staging / KIND_FOLDERS[kind], recipe=recipe)
    reference = reference_outputs(staging / KIND_FOLDERS["patch"], staging / KIND_FOLDERS["voxel"])
    write_text_atomic(staging / REFERENCE, json.dumps(reference, indent=2))
    manifest = {
        "recipe": recipe,
        "seed": seed,
        "code_version": code_version(),
        "spinefx_version": _version(),
        "built": time.strftime("%Y-%m-%d"),
        "minutes": minutes or {},
        "training_data": training_data,
        "benchmark": benchmark or {},
        "files": file_checksums(staging),
    }
    write_text_atomic(staging / MANIFEST, json.dumps(manifest, indent=2))
    if (target / HEATMAP_FOLDER).is_dir():  # the localiser is trained on its own, and kept
        shutil.copytree(target / HEATMAP_FOLDER, staging / HEATMAP_FOLDER)
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    log.info("default weights written to %s", target)
    return manifest


def install_heatmap(weights: str | Path, target: str | Path | None = None) -> Path:
    """Copy heatmap weights written by :func:`spinefx.training.body_heatmap.train_heatmap`
    (with their ``body_heatmap.json``) into the shipped weights folder, with their sha256.

    Raises:
        InputError: no record beside the weights, or weights trained on data whose licence
            forbids shipping them.
    """
    from spinefx.models.body_heatmap import (
        RECORD_NAME,
        WEIGHTS_NAME,
        load_heatmap_net,
        read_heatmap_record,
    )
    from spinefx.runs.shipped import sha256

    weights = Path(weights)
    load_heatmap_net(weights)  # missing, truncated or another network's: refused here
    meta = read_heatmap_record(weights)
    if not meta.get("shippable"):
        left = sorted({c["licence"] for c in meta.get("cases", []) if not c.get("shippable")})
        raise InputError(
            f"these heatmap weights were trained on data that may not ship ({', '.join(left)})",
            path=weights, fix="train them with --shippable-only",
        )  # fmt: skip
    folder = Path(target or weights_dir()) / HEATMAP_FOLDER
    staging = folder.with_name(folder.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copy2(weights, staging / WEIGHTS_NAME)
    meta.update(sha256=sha256(weights), code_version=code_version(), spinefx_version=_version())
    write_text_atomic(staging / RECORD_NAME, json.dumps(meta, indent=1))
    old = folder.with_name(folder.name + ".old")  # swapped as package_weights swaps a folder
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder / WEIGHTS_NAME


def _copy_run(run: Path, out: Path, *, recipe: str) -> None:
    out.mkdir(parents=True)
    for name in _RUN_FILES:
        if (run / name).is_file():
            shutil.copy2(run / name, out / name)
    dissection = RunPaths(run).dissection
    if (dissection / "atlas.yaml").is_file():  # the atlas and its collages, not the NIfTI exports
        for path in [dissection / "atlas.yaml", *sorted(dissection.glob("units/*/*.png"))]:
            target = RunPaths(out).dissection / path.relative_to(dissection)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    source = RunPaths(run).provenance
    provenance = json.loads(source.read_text(encoding="utf-8")) if source.is_file() else {}
    shipped = {
        "recipe": recipe,
        "seed": provenance.get("seed"),
        "training_data": provenance.get("training_data"),
    }
    write_text_atomic(RunPaths(out).provenance, json.dumps(shipped, indent=2))
    op = RunPaths(out).operating_point
    if op.is_file():  # name the data the point was chosen on, not this machine's folder
        values = json.loads(op.read_text(encoding="utf-8"))
        values["source"] = f"validation split of the {recipe} training data"
        write_text_atomic(op, json.dumps(values, indent=2))
    config = RunPaths(out).config
    if config.is_file():  # the training data path is local to the machine that built it
        import yaml

        values = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        if "data" in values:
            values["data"] = ""
            write_text_atomic(config, yaml.safe_dump(values, sort_keys=False))


def training_sources(data_root: Path) -> dict:
    """Scans per source and the real subjects (with licences) behind them."""
    from spinefx.synthesis.real_sources import LICENCES

    with (data_root / "sources.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    subjects = sorted({(r["source_subject"], r["licence"]) for r in rows if r["source_subject"]})
    return {
        "scans_per_source": dict(sorted(Counter(r["source"] for r in rows).items())),
        "real_subjects": [{"subject": s, "licence": lic} for s, lic in subjects],
        "left_out": {
            name: licence for name, (licence, shippable) in LICENCES.items() if not shippable
        },
    }


def benchmark_figures(results: str | Path, recipe: str) -> dict:
    """The real-CT and held-out synthetic figures of ``recipe`` in a ``real_ct.json``."""
    values = json.loads(Path(results).read_text(encoding="utf-8"))
    entry = values.get("recipes", {}).get(recipe)
    if not entry:
        return {}
    out = {"file": "benchmarks/results/real_ct.json", "folds": "subjects, see the benchmark"}
    for kind in KIND_FOLDERS:
        scores = entry.get(kind, {})
        out[kind] = {
            split: {
                k: scores[split][k]
                for k in (
                    "auc",
                    "auc_bootstrap",
                    "sensitivity",
                    "specificity",
                    "n_vertebrae",
                    "n_fractured",
                )
                if k in scores.get(split, {})
            }
            for split in ("real_ct", "heldout_synthetic")
            if split in scores
        }
    return out


def code_version() -> str:
    """The git commit of the source tree ("unknown" outside a checkout)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    dirty = subprocess.run(  # code only: results files and the weights themselves do not count
        ["git", "status", "--porcelain", "--untracked-files=no", "--", "..", ":!../weights"],
        cwd=Path(__file__).resolve().parent,
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()
    return result.stdout.strip() + ("-dirty" if dirty else "")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("spinefx")
    except PackageNotFoundError:
        return "unknown"

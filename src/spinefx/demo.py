"""The end-to-end demo on the embedded synthetic dataset: what ``make demo`` runs.

One call chains every stage through its public API. First what a user with a CT does, with the
weights that ship with spinefx (:mod:`spinefx.runs.shipped`): synthesise scans → screen one
test scan with the shipped voxel classifier (``detect``) → write a draft report for it with the
shipped patch classifier (``report``); ``spinefx app`` serves the same models. Then, unless
``train=False`` (``spinefx demo --skip-training``), what a user who trains does: prepare
spine-aligned patches (+ a preview PNG) → train and evaluate the patch classifier (cpu preset)
→ dissect its last encoder layer → train a small voxel classifier → screen and report the same
scan with the models just trained. Each stage writes into ``out_dir`` and is skipped when its
output is already complete, so an interrupted demo resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from spinefx.atomic import write_text_atomic
from spinefx.runs.layout import RunPaths

log = logging.getLogger(__name__)


@dataclass
class DemoResult:
    """Where the demo put things, and its headline figures.

    Attributes:
        out_dir: demo root.
        paths: stage name -> main output path.
        summary: headline metrics (test AUC, F1, ...) per stage.
        seconds: wall time per stage.
    """

    out_dir: Path
    paths: dict[str, Path] = field(default_factory=dict)
    summary: dict[str, dict] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def run_demo(
    out_dir: str | Path,
    *,
    n_scans: int = 48,
    seed: int = 0,
    patch_epochs: int | None = None,
    voxel_epochs: int | None = None,
    with_voxel: bool = True,
    workers: int = 2,
    train: bool = True,
) -> DemoResult:
    """Run the whole pipeline on freshly generated synthetic spine CT.

    Args:
        out_dir: output folder (created; re-running resumes).
        n_scans: synthetic scans (split by the generator into training/validation/test).
        seed: seed of data and training.
        patch_epochs: max epochs of the patch classifier (None = the demo's 6).
        voxel_epochs: epochs of the voxel classifier (None = the demo's 3).
        with_voxel: also train the voxel classifier and run ``detect`` with it.
        workers: processes for synthesis and patch preparation.
        train: run the training stages (False: the shipped models only).

    Returns:
        :class:`DemoResult`; ``out_dir/demo_summary.json`` holds the same.
    """
    from spinefx.runs.shipped import shipped_run_dir

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = DemoResult(out)

    def stage(name: str, fn, *args, **kwargs):
        start = time.perf_counter()
        log.info("demo: %s ...", name)
        value = fn(*args, **kwargs)
        result.seconds[name] = round(time.perf_counter() - start, 1)
        log.info("demo: %s done in %.1f s", name, result.seconds[name])
        return value

    data = stage(
        "synthesise", _synthesise, out / "data", n_scans=n_scans, seed=seed, workers=workers
    )
    result.paths["data"] = data
    test_scan, test_centroids = _first_test_scan(data)
    shipped = {kind: shipped_run_dir(kind) for kind in ("patch", "voxel")}
    result.summary["detect_shipped"] = stage(
        "detect (shipped model)",
        _detect,
        test_scan,
        shipped["voxel"],
        test_centroids,
        out / "detect",
    )
    result.paths["detect"] = out / "detect"
    result.paths["report"] = stage(
        "report (shipped model)",
        _report,
        test_scan,
        shipped["patch"],
        test_centroids,
        out / "report" / "report.html",
    )
    if train:
        _train_stages(
            stage,
            result,
            out,
            data,
            test_scan,
            test_centroids,
            seed=seed,
            patch_epochs=patch_epochs,
            voxel_epochs=voxel_epochs,
            with_voxel=with_voxel,
            workers=workers,
        )
    summary = {
        "paths": {k: str(v) for k, v in result.paths.items()},
        "summary": result.summary,
        "seconds": result.seconds,
    }
    write_text_atomic(out / "demo_summary.json", json.dumps(summary, indent=2, default=str))
    return result


#: demo training length: the cpu presets shortened so `make demo` ends in minutes (the
#: shipped models are the ones to use; these show the training path end to end)
DEMO_PATCH_EPOCHS = 6
DEMO_VOXEL_EPOCHS = 3


def _train_stages(
    stage,
    result,
    out,
    data,
    test_scan,
    test_centroids,
    *,
    seed,
    patch_epochs,
    voxel_epochs,
    with_voxel,
    workers,
) -> None:
    """Prepare, train, evaluate and dissect both networks; screen the test scan with them."""
    prepared, preview, counts = stage("prepare", _prepare, data, out / "patches", workers=workers)
    result.paths.update(patches=prepared, preview=preview)
    result.summary["prepare"] = counts
    patch_run = out / "runs" / "patch_classifier"
    evaluation = stage(
        "train_patch_classifier",
        _train_patch,
        prepared,
        patch_run,
        seed=seed,
        max_epochs=patch_epochs or DEMO_PATCH_EPOCHS,
    )
    result.paths["patch_run"] = patch_run
    result.summary["patch_classifier_test"] = _headline(evaluation)
    result.paths["dissection_index"] = stage("dissect", _dissect, patch_run, prepared)
    if with_voxel:
        voxel_run = out / "runs" / "voxel_classifier"
        stage(
            "train_voxel_classifier",
            _train_voxel,
            data,
            voxel_run,
            seed=seed,
            epochs=voxel_epochs or DEMO_VOXEL_EPOCHS,
        )
        result.summary["detect_trained"] = stage(
            "detect (trained model)",
            _detect,
            test_scan,
            voxel_run,
            test_centroids,
            out / "trained" / "detect",
        )
        result.paths.update(voxel_run=voxel_run, detect_trained=out / "trained" / "detect")
    result.paths["report_trained"] = stage(
        "report (trained model)",
        _report,
        test_scan,
        patch_run,
        test_centroids,
        out / "trained" / "report" / "report.html",
    )


def _synthesise(root: Path, *, n_scans: int, seed: int, workers: int) -> Path:
    import yaml

    from spinefx.synthesis import generate_dataset

    provenance = root / "synthesis_config.yaml"
    if provenance.is_file():
        done = yaml.safe_load(provenance.read_text(encoding="utf-8")) or {}
        if done.get("seed") == seed and done.get("n_scans") == n_scans:
            log.info("demo: reusing synthetic data in %s", root)
            return root
    return generate_dataset(root, n_scans=n_scans, seed=seed, preset="default", workers=workers)


def _patch_geometry() -> tuple[int, float]:
    from spinefx.runs.configs import load_training_config

    model = load_training_config("cpu").model
    return int(model.patch_size_vox), float(model.spacing_mm)


def _prepare(data: Path, out: Path, *, workers: int) -> tuple[Path, Path, dict]:
    from spinefx.io import load_dataset
    from spinefx.preprocessing import prepare_dataset

    size_vox, spacing_mm = _patch_geometry()
    prepared = prepare_dataset(
        load_dataset(data), out, size_vox=size_vox, spacing_mm=spacing_mm, workers=workers
    )
    preview = write_patch_preview(out, out / "preview.png")
    counts = {
        "vertebrae": len(prepared.manifest),
        "failed_cases": len(prepared.errors),
        "by_grade": prepared.fractured_by_grade,
    }
    return out, preview, counts


def write_patch_preview(prepared_dir: Path, png_path: Path, *, per_grade: int = 4) -> Path:
    """Mid-sagittal slices of prepared patches, ``per_grade`` per Genant grade, as one PNG.

    Drawn in the display convention of every figure (:mod:`spinefx.display`): anterior left.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from spinefx.display import annotate_axes, display_slice
    from spinefx.io import read_nifti

    manifest = pd.read_csv(prepared_dir / "manifest.csv", dtype={"genant_grade": "string"})
    rows = []
    for grade in ("0", "1", "2", "3"):
        rows += manifest[manifest["genant_grade"] == grade].head(per_grade).to_dict("records")
    fig, axes = plt.subplots(1, max(len(rows), 1), figsize=(1.6 * max(len(rows), 1), 2.2))
    for ax, row in zip(list(getattr(axes, "flat", [axes])), rows, strict=False):
        # the middle sagittal slice in the display convention: anterior left, letters
        view = display_slice(read_nifti(prepared_dir / row["path"]), plane="sagittal")
        ax.imshow(view.pixels, cmap="gray", vmin=-250, vmax=1250, **view.imshow_kwargs())
        ax.set_title(
            f"{row['case_id'][-4:]} {row['level']}\ngrade {row['genant_grade']}", fontsize=7
        )
        annotate_axes(ax, view, ticks=False, fontsize=5)
        ax.axis("off")
    fig.tight_layout()
    from spinefx.atomic import atomic_path

    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return png_path


def _train_patch(prepared: Path, run_dir: Path, *, seed: int, max_epochs: int | None) -> dict:
    from spinefx.evaluation.patch_demo import run_demo_training

    if (run_dir / "evaluation_test.json").is_file():
        log.info("demo: reusing trained patch classifier in %s", run_dir)
        return json.loads((run_dir / "evaluation_test.json").read_text(encoding="utf-8"))
    return run_demo_training(prepared, run_dir, preset="cpu", max_epochs=max_epochs, seed=seed)[
        "evaluation"
    ]


def _headline(evaluation: dict) -> dict:
    """Mean of each test metric over trials (``evaluation_test.json``'s ``summary``)."""
    summary = evaluation.get("summary", {})
    return {name: round(float(v["mean"]), 4) for name, v in summary.items() if "mean" in v}


def _dissect(run_dir: Path, prepared: Path) -> Path:
    from spinefx.interpretation import dissect_run

    return dissect_run(run_dir, prepared).index_path


def _first_test_scan(data: Path) -> tuple[Path, Path | None]:
    """The first test-split scan of the generated dataset (any scan when none is test)."""
    from spinefx.io import load_dataset

    cases = [c for c in load_dataset(data) if c.scan_path is not None]
    chosen = next((c for c in cases if c.split == "test"), cases[0])
    return Path(chosen.scan_path), chosen.centroids_path


def _train_voxel(data: Path, run_dir: Path, *, seed: int, epochs: int | None) -> None:
    from spinefx.runs.configs import voxel_preset
    from spinefx.training.voxel import train_voxel_run

    if RunPaths(run_dir).checkpoint.is_file():
        log.info("demo: reusing trained voxel classifier in %s", run_dir)
        return
    overrides = {"data": str(data), "seed": seed}
    if epochs is not None:
        overrides["epochs"] = epochs
    train_voxel_run(voxel_preset("cpu", **overrides), run_dir)


def _detect(scan: Path, voxel_run: Path, centroids_path: Path | None, out: Path) -> dict:
    from spinefx import detect_fractures
    from spinefx.inference.screening import write_detection
    from spinefx.io import load_centroids, load_scan

    image = load_scan(scan)
    centroids = load_centroids(centroids_path, image) if centroids_path else None
    detection = detect_fractures(voxel_run, image, centroids)
    write_detection(detection, out)
    return {
        "scan": scan.name,
        "patient_score": detection.patient_score,
        "patient_fractured": detection.patient_fractured,
        "patient_state": detection.patient_state,
        "vertebrae": {v.level: round(float(v.probability), 3) for v in detection.vertebrae},
    }


def _report(scan: Path, run_dir: Path, centroids: Path | None, out: Path) -> Path:
    from spinefx.reporting.scan_report import write_scan_report

    html, _ = write_scan_report(scan, model_run_dir=run_dir, out_path=out, centroids_path=centroids)
    return html

"""Stratified patient-level cross-validation of the voxel classifier (Nicolaes et al. 2019, sec. 4).

Folds: ``StratifiedGroupKFold`` on the patient fracture status, grouped by patient, so every
test fold holds negative patients (the paper asks for at least two). In each fold, 15 % of
the training scans are held out for early stopping / LR annealing; the model is trained, then
every test scan is predicted whole and aggregated:

* patient level: largest fracture component per probability threshold -> ROC = convex hull of
  the ``(t_p, t_n)`` grid; AUC bootstrapped (n = 1000, patients resampled);
* vertebra level: Gaussian cube means at several cube sizes, plus centroids perturbed with
  3 mm Gaussian noise; AUC bootstrapped with patients as clusters; per Genant grade (grade g
  vs grade 0);
* localisation from the network's vertebra map against the true centroids.

The primary cube size is the configured one (paper: 10 voxels); AUCs for the other sizes are
reported for its cross-validated choice (they are measured on the pooled test folds, so
picking the best of them would be optimistic).

Operating points: ``operating_point.json`` (copied into a trained run by
``spinefx crossval --apply-to RUN``, where ``detect`` reads it) holds the patient
``(t_p, t_n)`` and the vertebra score threshold of maximal Youden's J on the pooled test
folds: the best estimate for deployment, but its sensitivity/specificity there is
optimistic. The summary therefore also reports *cross-fitted* rates, where fold k is scored
at the point chosen on the other folds.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from spinefx.atomic import atomic_path, write_text_atomic
from spinefx.datasets.voxel_cases import VoxelCase
from spinefx.errors import InputError
from spinefx.evaluation.metrics import auc_statistic, bootstrap, choose_threshold
from spinefx.evaluation.patient_roc import (
    best_operating_point,
    convex_hull_auc,
    grid_roc_points,
    roc_convex_hull,
)
from spinefx.inference.aggregation import (
    DEFAULT_NOISE_THRESHOLDS_VOX,
    DEFAULT_PROBABILITY_THRESHOLDS,
    largest_components,
    vertebra_scores,
)
from spinefx.inference.localisation import localisation_errors, localise_vertebrae
from spinefx.inference.voxel_tiling import DEFAULT_OUTPUT_TILE_VOX
from spinefx.runs.configs import VoxelTrainingConfig
from spinefx.runs.layout import OPERATING_POINT
from spinefx.training.voxel import split_validation, train_voxel_classifier

log = logging.getLogger(__name__)


def patient_folds(cases: list[VoxelCase], *, n_folds: int, seed: int) -> list[np.ndarray]:
    """Test-case indices of each fold, stratified by patient fracture status, grouped by patient."""
    from sklearn.model_selection import StratifiedGroupKFold

    from spinefx.errors import InputError

    y = np.array([c.fractured for c in cases], dtype=int)
    groups = np.array([c.patient_id or c.case_id for c in cases])
    n_neg = len(set(groups[y == 0]))
    n_pos = len(set(groups[y == 1]))
    if min(n_neg, n_pos) < n_folds:
        raise InputError(
            f"{n_folds}-fold stratified cross-validation needs >= {n_folds} fractured and "
            f"non-fractured patients, got {n_pos} and {n_neg}",
            fix="use more scans or fewer folds",
        )
    skf = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [test for _, test in skf.split(np.zeros(len(y)), y, groups)]


def evaluate_case(model, case: VoxelCase, *, cube_sizes_vox, perturb_sigma_mm, rng, tile_vox):
    """Aggregates of one test scan: patient row, vertebra rows, localisation row."""
    from spinefx.inference.voxel_tiling import predict_network_view

    maps = predict_network_view(model, case.view, output_tile_vox=tile_vox, show_progress=False)
    frac = maps["fractured"]
    largest = largest_components(frac.data, probability_thresholds=DEFAULT_PROBABILITY_THRESHOLDS)
    graded = [
        v
        for v in case.vertebrae
        if v.centroid_mm is not None and v.genant_grade is not None and not v.foreign_material
    ]
    truth = {v.vertebra_label: np.asarray(v.centroid_mm) for v in graded}
    per_cube = {k: vertebra_scores(frac, truth, cube_size_vox=k) for k in cube_sizes_vox}
    perturbed = vertebra_scores(
        frac, truth, cube_size_vox=cube_sizes_vox[0], perturb_sigma_mm=perturb_sigma_mm, rng=rng
    )
    vert_rows = [
        {
            "case_id": case.case_id,
            "patient_id": case.patient_id,
            "vertebra_label": v.vertebra_label,
            "genant_grade": v.genant_grade,
            "fractured": int(v.genant_grade >= 1),
            **{f"score_cube{k}": per_cube[k][v.vertebra_label] for k in cube_sizes_vox},
            "score_perturbed": perturbed[v.vertebra_label],
        }
        for v in graded
    ]
    auto = localise_vertebrae(maps["normal"].with_data(maps["normal"].data + frac.data))
    all_truth = {
        v.vertebra_label: np.asarray(v.centroid_mm)
        for v in case.vertebrae
        if v.centroid_mm is not None
    }
    loc = {"case_id": case.case_id, **localisation_errors(auto, all_truth)}
    patient = {
        "case_id": case.case_id,
        "patient_id": case.patient_id,
        "fractured": int(case.fractured),
        "largest": largest.tolist(),
    }
    return patient, vert_rows, loc


def crossvalidate_voxel(
    cases: list[VoxelCase],
    config: VoxelTrainingConfig,
    out_dir: str | Path,
    *,
    n_folds: int = 5,
    n_bootstrap: int = 1000,
    cube_sizes_vox: tuple[int, ...] = (10, 6, 14),
    perturb_sigma_mm: float = 3.0,
    tile_vox: int = DEFAULT_OUTPUT_TILE_VOX,
    device: str | None = None,
    folds: list[int] | None = None,
) -> dict:
    """Run the cross-validation and write ``crossval.json``, tables and ROC plots to ``out_dir``.

    Each fold writes ``fold<k>/fold_results.json`` when it is done; a fold whose results
    exist (for the same test scans) is not run again, so an interrupted run resumes, and
    folds can run as separate processes (``folds=[k]``) on one or several machines sharing
    ``out_dir``. The summary is written once every fold has results.

    Args:
        cases: prepared scans (``spinefx.datasets.voxel_cases.load_voxel_cases``).
        config: training config of every fold (its seed also seeds the folds).
        out_dir: output folder; fold runs go to ``out_dir/fold<k>``.
        n_folds: folds (paper: 5).
        n_bootstrap: bootstrap resamples of the AUCs (paper: 1000).
        cube_sizes_vox: vertebra cube sizes; the first is the primary one.
        perturb_sigma_mm: centroid noise of the perturbed vertebra scores (paper: 3 mm).
        tile_vox: inference tile edge.
        device: torch device of training and inference (None: CUDA when available).
        folds: the folds to run in this call (default: all).

    Returns:
        the summary written to ``crossval.json``; while folds are missing, only
        ``{"n_folds", "completed_folds"}``.
    """
    from spinefx.progress import progress

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    test_sets = patient_folds(cases, n_folds=n_folds, seed=config.seed)
    settings = _fold_settings(config, cube_sizes_vox, perturb_sigma_mm)
    todo = range(n_folds) if folds is None else sorted(set(folds))
    for k in progress(list(todo), desc="cross-validation folds"):
        if not 0 <= k < n_folds:
            raise InputError(f"fold {k} is not one of 0..{n_folds - 1}", fix="check --fold")
        if _fold_results(out, k, cases, test_sets[k], settings) is None:
            run_fold(
                cases,
                test_sets[k],
                config,
                out / f"fold{k}",
                fold=k,
                cube_sizes_vox=cube_sizes_vox,
                perturb_sigma_mm=perturb_sigma_mm,
                tile_vox=tile_vox,
                device=device,
            )
    results = [_fold_results(out, k, cases, test_sets[k], settings) for k in range(n_folds)]
    done = [k for k, r in enumerate(results) if r is not None]
    if len(done) < n_folds:
        return {"n_folds": n_folds, "completed_folds": done}
    patients = [row for r in results for row in r["patients"]]
    vertebrae = [row for r in results for row in r["vertebrae"]]
    locs = [row for r in results for row in r["localisation"]]
    summary = summarise(
        patients,
        vertebrae,
        locs,
        cube_sizes_vox=cube_sizes_vox,
        n_bootstrap=n_bootstrap,
        seed=config.seed,
    )
    summary.update(
        {
            "n_folds": n_folds,
            "n_scans": len(cases),
            "variant": config.model.variant,
            "input_spacing_mm": config.model.input_spacing_mm,
        }
    )
    _write_outputs(out, patients, vertebrae, locs, summary)
    return summary


def crossvalidate_voxel_dataset(
    config: VoxelTrainingConfig,
    out_dir: str | Path,
    *,
    n_folds: int = 5,
    folds: list[int] | None = None,
    device: str | None = None,
    apply_to: str | Path | None = None,
) -> tuple[dict, list[tuple[str, str]]]:
    """:func:`crossvalidate_voxel` on the dataset ``config.data``; bad scans are skipped.

    Args:
        apply_to: a trained voxel run (``spinefx train --model voxel``) that gets this
            cross-validation's operating point (:func:`apply_operating_point`).

    Returns:
        ``(summary, problems)``; problems are ``(case_id, message)`` of skipped scans.
    """
    from spinefx.datasets.voxel_cases import load_voxel_cases_for
    from spinefx.io import load_dataset

    if not config.data:
        raise InputError("no dataset to cross-validate", fix="pass --data DATASET")
    cases, problems = load_voxel_cases_for(load_dataset(config.data), config)
    summary = crossvalidate_voxel(
        cases, config, out_dir, n_folds=n_folds, folds=folds, device=device
    )
    if apply_to is not None and "operating_point" in summary:
        apply_operating_point(Path(out_dir) / OPERATING_POINT, apply_to)
    return summary, problems


def apply_operating_point(operating_point_file: str | Path, run_dir: str | Path) -> Path:
    """Give a trained voxel run the operating point of a cross-validation.

    The run's ``operating_point.json`` is what ``detect``, ``report`` and the app read
    (:func:`spinefx.runs.load_trained`); it records the file it came from.

    Raises:
        InputError: no operating point there, or ``run_dir`` is not a voxel-classifier run.
    """
    from spinefx.runs import RunPaths, load_trained
    from spinefx.runs.trained import read_operating_point

    source = Path(operating_point_file)
    if not source.is_file():
        raise InputError(
            "no operating point: the cross-validation has not finished all folds",
            path=source,
            fix="run the remaining folds, then apply it",
        )
    load_trained(run_dir, expect="voxel")
    values = read_operating_point(source)
    values["source"] = str(source.resolve())
    target = RunPaths(run_dir).operating_point
    write_text_atomic(target, json.dumps(values, indent=2))
    return target


def run_fold(
    cases: list[VoxelCase],
    test_idx,
    config: VoxelTrainingConfig,
    fold_dir: str | Path,
    *,
    fold: int,
    cube_sizes_vox: tuple[int, ...] = (10, 6, 14),
    perturb_sigma_mm: float = 3.0,
    tile_vox: int = DEFAULT_OUTPUT_TILE_VOX,
    device: str | None = None,
) -> dict:
    """Train one fold on the other scans (15 % held out) and evaluate its test scans.

    Writes the run directory and ``fold_results.json`` (patient, vertebra and localisation
    rows) to ``fold_dir``; returns that dict.
    """

    from spinefx.runs.trained import load_trained
    from spinefx.training.voxel import resolve_device

    fold_dir = Path(fold_dir)
    test_set = {int(i) for i in test_idx}
    test = [cases[i] for i in sorted(test_set)]
    rest = [c for i, c in enumerate(cases) if i not in test_set]
    train, val = split_validation(
        rest, fraction=config.validation_fraction, seed=config.seed + fold
    )
    train_voxel_classifier(config, fold_dir, train_cases=train, val_cases=val, device=device)
    model = load_trained(fold_dir, expect="voxel").model.to(resolve_device(device))
    rng = np.random.default_rng(config.seed + 7 + fold)
    patients, vertebrae, locs = [], [], []
    for case in test:
        p, v, loc = evaluate_case(
            model,
            case,
            cube_sizes_vox=cube_sizes_vox,
            perturb_sigma_mm=perturb_sigma_mm,
            rng=rng,
            tile_vox=tile_vox,
        )
        patients.append({"fold": fold, **p})
        vertebrae.extend({"fold": fold, **r} for r in v)
        locs.append({"fold": fold, **loc})
    results = {
        "fold": fold,
        "test_case_ids": [c.case_id for c in test],
        "settings": _fold_settings(config, cube_sizes_vox, perturb_sigma_mm),
        "patients": patients,
        "vertebrae": vertebrae,
        "localisation": locs,
    }
    write_text_atomic(fold_dir / "fold_results.json", json.dumps(results, indent=1, default=float))
    return results


def _fold_settings(config: VoxelTrainingConfig, cube_sizes_vox, perturb_sigma_mm) -> dict:
    """What a fold's results depend on besides its scans (as JSON would give it back)."""
    from spinefx.config import to_dict

    settings = {
        "config": to_dict(config),
        "cube_sizes_vox": list(cube_sizes_vox),
        "perturb_sigma_mm": float(perturb_sigma_mm),
    }
    return json.loads(json.dumps(settings))


def _fold_results(out: Path, fold: int, cases, test_idx, settings: dict) -> dict | None:
    """Saved results of a fold, or None when absent or made for other scans or settings."""
    path = out / f"fold{fold}" / "fold_results.json"
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:  # written atomically, so only a damaged file: run the fold again
        log.warning("%s is not readable JSON; the fold runs again", path)
        return None
    expected = [cases[i].case_id for i in sorted(int(i) for i in test_idx)]
    if results.get("test_case_ids") != expected or results.get("settings") != settings:
        log.warning("%s was made for other test scans or settings; the fold runs again", path)
        return None
    return results


def summarise(patients, vertebrae, locs, *, cube_sizes_vox, n_bootstrap: int, seed: int) -> dict:
    """Bootstrapped patient/vertebra AUCs, per-grade AUCs, operating point, localisation.

    One flat mapping (``summary.json``) of three parts: :func:`patient_summary`,
    :func:`vertebra_summary` and :func:`localisation_summary`.
    """
    return {
        **patient_summary(patients, n_bootstrap=n_bootstrap, seed=seed),
        **vertebra_summary(
            vertebrae, cube_sizes_vox=cube_sizes_vox, n_bootstrap=n_bootstrap, seed=seed
        ),
        "localisation": localisation_summary(locs),
    }


def patient_summary(patients, *, n_bootstrap: int, seed: int) -> dict:
    """Patient AUC (convex hull over the noise thresholds, bootstrapped), the operating point
    on all folds and cross-fitted (each fold's thresholds chosen on the others)."""
    y_pat = np.array([p["fractured"] for p in patients])
    largest = np.array([p["largest"] for p in patients])

    def hull_auc(y, s):
        return convex_hull_auc(y, s, noise_thresholds_vox=DEFAULT_NOISE_THRESHOLDS_VOX)

    op = best_operating_point(y_pat, largest)
    folds = np.array([p["fold"] for p in patients])
    return {
        "patient_auc": bootstrap(y_pat, largest, hull_auc, n_resamples=n_bootstrap, seed=seed),
        "patient_auc_pooled": hull_auc(y_pat, largest),
        "n_patients": int(len(y_pat)),
        "n_fractured_patients": int(y_pat.sum()),
        "operating_point": {
            "probability_threshold": op.probability_threshold,
            "noise_threshold_vox": op.noise_threshold_vox,
            "fpr": op.fpr,
            "tpr": op.tpr,
        },
        "operating_point_cross_fitted": cross_fitted_patient_point(y_pat, largest, folds),
    }


def vertebra_summary(vertebrae, *, cube_sizes_vox, n_bootstrap: int, seed: int) -> dict:
    """Vertebra AUCs (bootstrapped over patients) on the first cube size, with 3 mm centroid
    perturbation, per cube size and per Genant grade; the vertebra threshold."""
    vt = pd.DataFrame(vertebrae)
    primary = f"score_cube{cube_sizes_vox[0]}"
    valid = vt.dropna(subset=[primary])

    def vert_boot(column, frame=valid):
        frame = frame.dropna(subset=[column])
        return bootstrap(
            frame["fractured"].to_numpy(),
            frame[column].to_numpy(),
            auc_statistic,
            n_resamples=n_bootstrap,
            seed=seed,
            groups=frame["patient_id"].to_numpy(),
        )

    def pooled_auc(column):
        frame = valid.dropna(subset=[column])
        return auc_statistic(frame["fractured"].to_numpy(), frame[column].to_numpy())

    by_grade = {}
    for g in (1, 2, 3):
        sub = valid[valid["genant_grade"].isin([0, g])]
        by_grade[f"grade{g}"] = {
            "n_fractured": int((sub["genant_grade"] == g).sum()),
            "auc": vert_boot(primary, sub),
        }
    return {
        "vertebra_threshold": choose_threshold(
            valid["fractured"], valid[primary], one_class=math.nan
        ),
        "vertebra_operating_point_cross_fitted": cross_fitted_vertebra_point(valid, primary),
        "vertebra_auc": vert_boot(primary),
        "vertebra_auc_perturbed_3mm": vert_boot("score_perturbed"),
        "vertebra_auc_by_cube_size": {str(k): pooled_auc(f"score_cube{k}") for k in cube_sizes_vox},
        "vertebra_auc_by_grade": by_grade,
        "n_vertebrae": int(len(valid)),
        "n_fractured_vertebrae": int(valid["fractured"].sum()),
        "n_patient_clusters": int(valid["patient_id"].nunique()),
    }


def localisation_summary(locs) -> dict:
    """Mean localisation error, identification rate and nearest-centroid distance over scans."""
    loc = pd.DataFrame(locs)
    return {
        "mean_error_mm": _nanmean(loc["mean_error_mm"]),
        "identification_rate": _nanmean(loc["identification_rate"]),
        "mean_nearest_mm": _nanmean(loc["mean_nearest_mm"]),
    }


def cross_fitted_patient_point(y_true, largest, folds) -> dict:
    """Patient sensitivity/specificity where each fold's (t_p, t_n) is chosen on the others.

    Choosing the operating point on the pooled test folds and reporting its sensitivity
    there is optimistic; here fold k is scored with the Youden point of the other folds'
    test predictions, which never saw fold k's labels.
    """
    y, largest, folds = np.asarray(y_true, bool), np.asarray(largest), np.asarray(folds)
    decided = np.zeros(len(y), bool)
    for k in np.unique(folds):
        rest = folds != k
        if len(np.unique(y[rest])) < 2:
            return {"sensitivity": math.nan, "specificity": math.nan}
        op = best_operating_point(y[rest], largest[rest])
        i = DEFAULT_PROBABILITY_THRESHOLDS.index(op.probability_threshold)
        decided[~rest] = largest[~rest, i] >= max(op.noise_threshold_vox, 1)
    return _rates(y, decided)


def cross_fitted_vertebra_point(frame: pd.DataFrame, column: str) -> dict:
    """Vertebra sensitivity/specificity with each fold's threshold from the other folds."""
    frame = frame.dropna(subset=[column])
    y = frame["fractured"].to_numpy(bool)
    s = frame[column].to_numpy(float)
    folds = frame["fold"].to_numpy()
    decided = np.zeros(len(y), bool)
    for k in np.unique(folds):
        rest = folds != k
        t = choose_threshold(y[rest], s[rest], one_class=math.nan)
        if math.isnan(t):
            return {"sensitivity": math.nan, "specificity": math.nan}
        decided[~rest] = s[~rest] >= t
    return _rates(y, decided)


def _rates(y: np.ndarray, decided: np.ndarray) -> dict:
    return {
        "sensitivity": float(decided[y].mean()) if y.any() else math.nan,
        "specificity": float((~decided[~y]).mean()) if (~y).any() else math.nan,
    }


def _nanmean(values) -> float:
    arr = np.asarray(values, dtype=float)
    return float(np.nanmean(arr)) if np.isfinite(arr).any() else math.nan


def _write_outputs(out: Path, patients, vertebrae, locs, summary) -> None:
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    from spinefx.evaluation.voxel_figures import roc_figure

    write_text_atomic(out / "crossval.json", json.dumps(summary, indent=2))
    write_text_atomic(out / "vertebrae.csv", pd.DataFrame(vertebrae).to_csv(index=False))
    write_text_atomic(out / "localisation.csv", pd.DataFrame(locs).to_csv(index=False))
    pat = pd.DataFrame(patients)
    pat["largest"] = [";".join(map(str, v)) for v in pat["largest"]]
    write_text_atomic(out / "patients.csv", pat.to_csv(index=False))
    y = np.array([p["fractured"] for p in patients])
    largest = np.array([p["largest"] for p in patients])
    hull = roc_convex_hull(
        grid_roc_points(y, largest, noise_thresholds_vox=DEFAULT_NOISE_THRESHOLDS_VOX)
    )
    curves = {"patient (convex hull)": (hull[:, 0], hull[:, 1], _auc_text(summary["patient_auc"]))}
    vt = pd.DataFrame(vertebrae).dropna()
    if len(vt) and vt["fractured"].nunique() == 2:
        primary = [c for c in vt.columns if c.startswith("score_cube")][0]
        for name, col in (("vertebra", primary), ("vertebra, 3 mm noise", "score_perturbed")):
            fpr, tpr, _ = roc_curve(vt["fractured"], vt[col])
            key = "vertebra_auc" if col == primary else "vertebra_auc_perturbed_3mm"
            curves[name] = (fpr, tpr, _auc_text(summary[key]))
    fig = roc_figure(curves, title="voxel classifier, cross-validated ROC")
    with atomic_path(out / "roc.png") as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    op = summary["operating_point"]
    write_text_atomic(
        out / OPERATING_POINT,
        json.dumps(
            {
                "probability_threshold": op["probability_threshold"],
                "noise_threshold_vox": op["noise_threshold_vox"],
                "vertebra_threshold": summary["vertebra_threshold"],
            },
            indent=2,
        ),
    )


def _auc_text(boot: dict) -> str:
    return f"AUC {boot['mean']:.2f} ± {boot['std']:.2f}"

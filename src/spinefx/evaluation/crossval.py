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
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from spinefx.atomic import atomic_path, write_text_atomic
from spinefx.evaluation.aggregation import (
    DEFAULT_NOISE_THRESHOLDS_VOX,
    DEFAULT_PROBABILITY_THRESHOLDS,
    best_operating_point,
    convex_hull_auc,
    grid_roc_points,
    largest_components,
    roc_convex_hull,
    vertebra_scores,
)
from spinefx.evaluation.localisation import localisation_errors, localise_vertebrae
from spinefx.evaluation.metrics import auc_statistic, bootstrap
from spinefx.evaluation.voxel_inference import DEFAULT_OUTPUT_TILE_VOX
from spinefx.training.voxel import VoxelTrainingConfig, split_validation, train_voxel_classifier
from spinefx.training.voxel_data import VoxelCase

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
    from spinefx.evaluation.voxel_inference import predict_network_view

    maps = predict_network_view(model, case.image, output_tile_vox=tile_vox, show_progress=False)
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
) -> dict:
    """Run the cross-validation and write ``crossval.json``, tables and ROC plots to ``out_dir``.

    Args:
        cases: prepared scans (``spinefx.training.voxel_data.load_voxel_cases``).
        config: training config of every fold (its seed also seeds the folds).
        out_dir: output folder; fold runs go to ``out_dir/fold<k>``.
        n_folds: folds (paper: 5).
        n_bootstrap: bootstrap resamples of the AUCs (paper: 1000).
        cube_sizes_vox: vertebra cube sizes; the first is the primary one.
        perturb_sigma_mm: centroid noise of the perturbed vertebra scores (paper: 3 mm).
        tile_vox: inference tile edge.
        device: torch device of training and inference (None: CUDA when available).

    Returns:
        the summary written to ``crossval.json``.
    """
    import torch

    from spinefx.progress import progress
    from spinefx.training.voxel import load_voxel_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    folds = patient_folds(cases, n_folds=n_folds, seed=config.seed)
    rng = np.random.default_rng(config.seed + 7)
    patients, vertebrae, locs = [], [], []
    for k, test_idx in enumerate(progress(folds, desc="cross-validation folds")):
        test = [cases[i] for i in test_idx]
        rest = [c for i, c in enumerate(cases) if i not in set(test_idx)]
        train, val = split_validation(
            rest, fraction=config.validation_fraction, seed=config.seed + k
        )
        train_voxel_classifier(
            config, out / f"fold{k}", train_cases=train, val_cases=val, device=device
        )
        model, _ = load_voxel_model(out / f"fold{k}")
        model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        for case in test:
            p, v, loc = evaluate_case(
                model,
                case,
                cube_sizes_vox=cube_sizes_vox,
                perturb_sigma_mm=perturb_sigma_mm,
                rng=rng,
                tile_vox=tile_vox,
            )
            patients.append({"fold": k, **p})
            vertebrae.extend({"fold": k, **r} for r in v)
            locs.append({"fold": k, **loc})
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


def summarise(patients, vertebrae, locs, *, cube_sizes_vox, n_bootstrap: int, seed: int) -> dict:
    """Bootstrapped patient/vertebra AUCs, per-grade AUCs, operating point, localisation."""
    y_pat = np.array([p["fractured"] for p in patients])
    largest = np.array([p["largest"] for p in patients])
    tn = DEFAULT_NOISE_THRESHOLDS_VOX

    def hull_auc(y, s):
        return convex_hull_auc(y, s, noise_thresholds_vox=tn)

    vt = pd.DataFrame(vertebrae)
    primary = f"score_cube{cube_sizes_vox[0]}"
    valid = vt.dropna(subset=[primary])
    groups = valid["patient_id"].to_numpy()

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

    by_grade = {}
    for g in (1, 2, 3):
        sub = valid[valid["genant_grade"].isin([0, g])]
        by_grade[f"grade{g}"] = {
            "n_fractured": int((sub["genant_grade"] == g).sum()),
            "auc": vert_boot(primary, sub),
        }
    op = best_operating_point(y_pat, largest)
    loc = pd.DataFrame(locs)
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
        "vertebra_auc": vert_boot(primary),
        "vertebra_auc_perturbed_3mm": vert_boot("score_perturbed"),
        "vertebra_auc_by_cube_size": {
            str(k): auc_statistic(
                valid.dropna(subset=[f"score_cube{k}"])["fractured"].to_numpy(),
                valid.dropna(subset=[f"score_cube{k}"])[f"score_cube{k}"].to_numpy(),
            )
            for k in cube_sizes_vox
        },
        "vertebra_auc_by_grade": by_grade,
        "n_vertebrae": int(len(valid)),
        "n_fractured_vertebrae": int(valid["fractured"].sum()),
        "n_patient_clusters": int(len(set(groups))),
        "localisation": {
            "mean_error_mm": _nanmean(loc["mean_error_mm"]),
            "identification_rate": _nanmean(loc["identification_rate"]),
            "mean_nearest_mm": _nanmean(loc["mean_nearest_mm"]),
        },
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
        out / "operating_point.json",
        json.dumps(
            {
                "probability_threshold": op["probability_threshold"],
                "noise_threshold_vox": op["noise_threshold_vox"],
            },
            indent=2,
        ),
    )


def _auc_text(boot: dict) -> str:
    return f"AUC {boot['mean']:.2f} ± {boot['std']:.2f}"

"""Operating points chosen on a run's own validation split (no cross-validation needed).

Cross-validation (:mod:`spinefx.evaluation.crossval`) is the paper's way to choose the voxel
classifier's operating point; it retrains the model per fold. A run trained on the
training-data engine already holds out a validation split (``splits.json``), so its operating
point can be chosen there, on simulated data, without touching any real subject that a
benchmark later scores. :func:`validation_operating_point` does that for either method and
writes the run's ``operating_point.json`` (what ``predict``, ``detect``, ``report`` and the app
read), with the data it was chosen on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from spinefx.atomic import write_text_atomic
from spinefx.errors import InputError
from spinefx.evaluation.metrics import choose_threshold
from spinefx.runs.layout import RunPaths
from spinefx.runs.trained import load_trained


def validation_operating_point(
    run_dir: str | Path, data: str | Path, *, cube_size_vox: int = 10, seed: int = 0
) -> dict:
    """Choose and write the operating point of ``run_dir`` on its validation split.

    Args:
        run_dir: a trained run (either method).
        data: patch classifier: its prepared patch folder; voxel classifier: its training
            dataset (folder or manifest CSV, as in ``config.data``).
        cube_size_vox: vertebra cube of the voxel classifier's vertebra score.
        seed: seed of the voxel classifier's validation-scan processing.

    Returns:
        the written ``operating_point.json`` content.

    Raises:
        InputError: the validation split lacks one of the classes.
    """
    run = load_trained(run_dir)
    if run.kind == "patch":
        values = _patch_point(run, Path(data))
    else:
        values = _voxel_point(run, data, cube_size_vox=cube_size_vox, seed=seed)
    values["source"] = f"validation split of the training data ({data})"
    write_text_atomic(RunPaths(run_dir).operating_point, json.dumps(values, indent=2))
    return values


def _youden(y: np.ndarray, scores: np.ndarray, where: str) -> float:
    if len(np.unique(y)) < 2:
        raise InputError(
            f"the validation split holds only one class ({len(y)} vertebrae)",
            path=where,
            fix="train on data with fractured and normal vertebrae in the validation split",
        )
    return float(choose_threshold(y, scores, method="youden"))


def _patch_point(run, data: Path) -> dict:
    from spinefx.evaluation.patch_evaluation import predict_rows, split_rows

    rows, _ = split_rows(run, data, "val")
    y = rows["fractured"].astype(int).to_numpy()
    probability = run.ensemble(predict_rows(run, rows))
    return {
        "vertebra_threshold": _youden(y, probability, str(data)),
        "n_vertebrae": int(len(y)),
        "n_fractured": int(y.sum()),
        "rule": "Youden's J on the ensemble probability",
    }


def _voxel_point(run, data, *, cube_size_vox: int, seed: int) -> dict:
    import pandas as pd

    from spinefx.datasets.voxel_cases import load_voxel_cases_for
    from spinefx.evaluation.crossval import evaluate_case
    from spinefx.evaluation.patient_roc import best_operating_point
    from spinefx.inference.voxel_tiling import DEFAULT_OUTPUT_TILE_VOX
    from spinefx.io import load_dataset

    splits = json.loads(RunPaths(run.run_dir).splits.read_text(encoding="utf-8"))
    val_ids = set(splits.get("val", []))
    cases = [c for c in load_dataset(data) if c.case_id in val_ids]
    if not cases:
        raise InputError(
            "none of the run's validation scans is in this dataset",
            path=data,
            fix="pass the dataset the run was trained on (its config.yaml `data`)",
        )
    config = run.config
    voxel_cases, _ = load_voxel_cases_for(cases, config)
    rng = np.random.default_rng(seed)
    patients, vertebrae = [], []
    for case in voxel_cases:
        patient, rows, _ = evaluate_case(
            run.model,
            case,
            cube_sizes_vox=(cube_size_vox,),
            perturb_sigma_mm=3.0,
            rng=rng,
            tile_vox=DEFAULT_OUTPUT_TILE_VOX,
        )
        patients.append(patient)
        vertebrae += rows
    table = pd.DataFrame(vertebrae).dropna(subset=[f"score_cube{cube_size_vox}"])
    y = table["fractured"].astype(int).to_numpy()
    threshold = _youden(y, table[f"score_cube{cube_size_vox}"].to_numpy(), str(data))
    point = best_operating_point(
        np.array([p["fractured"] for p in patients]), np.array([p["largest"] for p in patients])
    )
    return {
        "probability_threshold": point.probability_threshold,
        "noise_threshold_vox": point.noise_threshold_vox,
        "vertebra_threshold": threshold,
        "n_scans": len(voxel_cases),
        "n_vertebrae": int(len(y)),
        "n_fractured": int(y.sum()),
        "rule": "Youden's J (vertebra cube score; patient grid point)",
    }

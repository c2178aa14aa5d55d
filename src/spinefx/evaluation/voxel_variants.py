"""Model selection between the 1slice / 5slices / 3d variants (Nicolaes et al. 2019, Table 1).

As in the paper, one random train/validation split; every variant has the same parameter
budget and the same training regime; the table reports validation loss, Dice of the vertebra
and fracture classes on validation segments, and the vertebra-level AUC of whole-scan
predictions of the validation scans.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from spinefx.atomic import write_text_atomic
from spinefx.datasets.voxel_cases import VoxelCase
from spinefx.evaluation.metrics import auc_statistic
from spinefx.inference.aggregation import vertebra_scores
from spinefx.inference.voxel_tiling import DEFAULT_OUTPUT_TILE_VOX
from spinefx.models.voxel_classifier import VARIANTS
from spinefx.runs.configs import VoxelTrainingConfig
from spinefx.runs.trained import load_trained
from spinefx.training.voxel import resolve_device, train_voxel_classifier


def compare_variants(
    train_cases: list[VoxelCase],
    val_cases: list[VoxelCase],
    config: VoxelTrainingConfig,
    out_dir: str | Path,
    *,
    variants: tuple[str, ...] = VARIANTS,
    tile_vox: int = DEFAULT_OUTPUT_TILE_VOX,
    device: str | None = None,
) -> list[dict]:
    """Train each variant with ``config`` and evaluate it on ``val_cases``.

    Args:
        train_cases, val_cases: the split (the paper: one random split).
        config: training config shared by all variants (its model variant is replaced).
        out_dir: receives ``<variant>/`` run directories and the tables.
        variants: the variants to train.
        tile_vox: inference tile edge.
        device: torch device (None: CUDA when available).

    Returns:
        one row per variant (also written to ``out_dir/variants.json`` and ``variants.md``).
    """
    from spinefx.inference.voxel_tiling import predict_network_view
    from spinefx.models.voxel_classifier import count_parameters

    out = Path(out_dir)
    rows = []
    for variant in variants:
        cfg = dataclasses.replace(config, model=dataclasses.replace(config.model, variant=variant))
        metrics = train_voxel_classifier(
            cfg, out / variant, train_cases=train_cases, val_cases=val_cases, device=device
        )
        model = load_trained(out / variant, expect="voxel").model.to(resolve_device(device))
        y, s = [], []
        for case in val_cases:
            maps = predict_network_view(
                model, case.view, output_tile_vox=tile_vox, show_progress=False
            )
            graded = {
                v.vertebra_label: v
                for v in case.vertebrae
                if v.genant_grade is not None
                and not v.foreign_material
                and v.centroid_mm is not None
            }
            scores = vertebra_scores(
                maps["fractured"], {k: np.asarray(v.centroid_mm) for k, v in graded.items()}
            )
            for k, v in graded.items():
                if np.isfinite(scores[k]):
                    y.append(int(v.genant_grade >= 1))
                    s.append(scores[k])
        rows.append(
            {
                "variant": variant,
                "parameters": count_parameters(model),
                "best_epoch": metrics["best_epoch"],
                "epochs_trained": metrics["epochs_trained"],
                "val_loss": metrics["val_loss"],
                "dsc_vertebra": metrics["dsc_vertebra"],
                "dsc_fractured": metrics["dsc_fractured"],
                "vertebra_auc_val": auc_statistic(np.array(y), np.array(s)),
                "n_val_vertebrae": len(y),
                "n_val_fractured": int(np.sum(y)),
            }
        )
    write_text_atomic(out / "variants.json", json.dumps(rows, indent=2))
    write_text_atomic(out / "variants.md", variants_table(rows))
    return rows


def variants_table(rows: list[dict]) -> str:
    """Markdown table of :func:`compare_variants` rows."""
    head = (
        "| variant | parameters | val loss | DSC vertebra | DSC fractured | vertebra AUC |\n"
        "|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['variant']} | {r['parameters']:,} | {r['val_loss']:.3f} | "
        f"{r['dsc_vertebra']:.3f} | {r['dsc_fractured']:.3f} | {r['vertebra_auc_val']:.3f} |\n"
        for r in rows
    )
    return head + body

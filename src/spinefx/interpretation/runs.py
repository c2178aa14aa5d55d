"""Dissect a trained run directory over prepared patches: atlas, exports and HTML index.

The integration points with earlier stages are the small functions here:
:func:`load_run_model` (checkpoint -> model, default layer, decision threshold) and
:class:`ManifestPatches` (``prepare`` manifest -> ``(input, label, meta)`` with the input-grid
affine).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spinefx.errors import InputError
from spinefx.interpretation.atlas import build_atlas, load_atlas, merge_expert_fields, save_atlas
from spinefx.interpretation.concepts import unit_concept_ious
from spinefx.interpretation.dissection import POSITIVE_SETS, Dissection, dissect, rank_units
from spinefx.interpretation.exports import export_collage, export_top_samples, write_index_html

log = logging.getLogger(__name__)


@dataclass
class DissectionResult:
    """What ``dissect_run`` wrote.

    Attributes:
        atlas_path: the concept atlas (``OUT/atlas.yaml``).
        index_path: the HTML index of units.
        atlas: the atlas as written.
        dissection: thresholds, per-sample maxima and top samples.
    """

    atlas_path: Path
    index_path: Path
    atlas: dict
    dissection: Dissection


def load_run_model(run_dir: str | Path) -> tuple[torch.nn.Module, str, float, object]:
    """Model (eval mode), its default dissected layer, decision threshold and config.

    A multi-trial run is dissected through its first trial, the model the app explains
    (:attr:`spinefx.runs.TrainedRun.model`).

    Raises:
        InputError: when the folder holds no spinefx checkpoint.
    """
    from spinefx.models import DISSECTABLE_LAYERS
    from spinefx.runs import load_trained

    run = load_trained(run_dir)
    model = run.model
    config = getattr(model, "config", None)
    kind = getattr(config, "kind", None)
    if kind not in DISSECTABLE_LAYERS:
        raise InputError(
            f"no dissectable layers are published for model kind {kind!r}",
            path=run_dir,
            fix="pass --layer with a module name of the model",
        )
    threshold = 0.5 if run.threshold is None else float(run.threshold)
    return model, DISSECTABLE_LAYERS[kind][0], threshold, config


class ManifestPatches(torch.utils.data.Dataset):
    """Prepared patches as ``(input (1, S, S, S), label, meta)`` for dissection.

    ``meta["affine"]`` is the input grid's voxel -> world map: the patch file's affine shifted
    by the centre crop that ``spinefx.datasets.load_patch`` applies.
    """

    def __init__(self, table, *, patch_size_vox: int, spacing_mm: float):
        self.rows = table.to_dict("records")
        self.patch_size_vox = patch_size_vox
        self.spacing_mm = spacing_mm

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        from spinefx.datasets import load_patch
        from spinefx.io import read_nifti_geometry

        row = self.rows[index]
        x = load_patch(
            row["abs_path"], patch_size_vox=self.patch_size_vox, spacing_mm=self.spacing_mm
        )
        header = read_nifti_geometry(row["abs_path"])
        start = [(s - self.patch_size_vox) // 2 for s in header.shape[:3]]
        affine = header.affine.copy()
        affine[:3, 3] = affine[:3, :3] @ np.asarray(start, float) + affine[:3, 3]
        meta = {
            "case_id": str(row["case_id"]),
            "level": str(row.get("level", "")),
            "vertebra_label": int(row["vertebra_label"]),
            "path": str(row["abs_path"]),
            "scan_path": str(row.get("scan_path") or ""),
            "split": str(row.get("split", "")),
            "affine": affine,
        }
        return torch.from_numpy(np.ascontiguousarray(x)), int(row["fractured"]), meta


def manifest_patches(prepared_dir: str | Path, *, split: str | None, config) -> ManifestPatches:
    """The usable vertebrae of a prepared folder (one split, or all with None/"all")."""
    from spinefx.datasets import read_patch_manifest, usable_vertebrae

    table = read_patch_manifest(prepared_dir)
    table, _ = usable_vertebrae(table, manifest_path=Path(prepared_dir) / "manifest.csv")
    if split and split != "all":
        table = table[table["split"] == split].reset_index(drop=True)
    if len(table) == 0:
        raise InputError(
            f"no usable vertebrae in split {split!r}",
            path=prepared_dir,
            fix="pick a split present in manifest.csv (train/val/test) or --split all",
        )
    return ManifestPatches(
        table, patch_size_vox=config.patch_size_vox, spacing_mm=config.spacing_mm
    )


def dissect_run(
    run_dir: str | Path,
    prepared_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    layer: str | None = None,
    quantile: float = 0.005,
    split: str | None = "test",
    positive_set: str = "tp",
    score: str = "max",
    export_units: int = 16,
    concept_samples: int = 10,
    batch_size: int = 8,
    decision_threshold: float | None = None,
) -> DissectionResult:
    """Dissect a run: thresholds, correlations, concept IoUs, exports, atlas and HTML index.

    Args:
        run_dir: run directory with ``checkpoint.pt``.
        prepared_dir: ``prepare`` output (``manifest.csv`` + patches).
        out_dir: output folder; default ``run_dir/dissection``.
        layer: dissected module name; default the model's first ``DISSECTABLE_LAYERS`` entry.
        quantile: upper tail fraction q of the unit thresholds.
        split: manifest split to dissect over ("all" = every usable vertebra).
        positive_set: "tp" (default, the paper), "gt" or "pred": ranks used for exports/index.
        score: per-sample unit score for top samples ("max" or "mean").
        export_units: how many best-ranked units get collages, strips and NIfTI files.
        concept_samples: top fractured samples per unit behind each concept IoU.
        decision_threshold: probability above which a vertebra counts as predicted fractured
            (default: the checkpoint's threshold).
    """
    if positive_set not in POSITIVE_SETS:
        raise InputError(f"unknown positive set {positive_set!r}", fix="use tp, gt or pred")
    out_dir = Path(out_dir) if out_dir else Path(run_dir) / "dissection"
    model, default_layer, decision, config = load_run_model(run_dir)
    decision = decision if decision_threshold is None else decision_threshold
    layer = layer or default_layer
    dataset = manifest_patches(prepared_dir, split=split, config=config)
    loader = _loader(dataset, batch_size)
    dissection = dissect(
        model, layer, loader, quantile=quantile, score=score, decision_threshold=decision
    )
    return write_dissection(
        dissection,
        dataset,
        out_dir,
        run_dir=run_dir,
        positive_set=positive_set,
        export_units=export_units,
        concept_samples=concept_samples,
    )


def _loader(dataset, batch_size: int):
    from spinefx.interpretation.activations import collate_samples

    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_samples
    )


def write_dissection(
    dissection: Dissection,
    dataset,
    out_dir: Path,
    *,
    run_dir=None,
    positive_set: str = "tp",
    export_units: int = 16,
    concept_samples: int = 10,
) -> DissectionResult:
    """Concept IoUs, exports of the best-ranked units, atlas (expert fields kept), index."""
    out_dir = Path(out_dir)
    correlations = dissection.correlations()
    ranks = {name: rank_units(values) for name, values in correlations.items()}
    if np.isnan(correlations[positive_set]).all():
        log.warning(
            "no %s samples (groups: %s): exports and index ranked by ground-truth positives",
            positive_set,
            {g: int(m.sum()) for g, m in dissection.groups().items()},
        )
        positive_set = "gt"
    concept_scores = unit_concept_ious(dissection, samples_per_unit=concept_samples)
    exports: dict[int, dict] = {}
    for k in np.argsort(ranks[positive_set])[:export_units].tolist():
        exports[k] = _export_unit(dissection, dataset, k, out_dir)
    atlas = build_atlas(
        dissection,
        correlations=correlations,
        ranks=ranks,
        concept_scores=concept_scores,
        exports=exports,
        positive_set=positive_set,
        run_dir=run_dir,
    )
    atlas_path = out_dir / "atlas.yaml"
    previous = load_atlas(atlas_path) if atlas_path.is_file() else None
    atlas = merge_expert_fields(atlas, previous)
    save_atlas(atlas, atlas_path)
    index = write_index_html(atlas, out_dir, rank_by=positive_set)
    return DissectionResult(atlas_path, index, atlas, dissection)


def _export_unit(dissection, dataset, unit: int, out_dir: Path) -> dict:
    folder = out_dir / "units" / f"unit{unit:04d}"
    collage = export_collage(dissection, dataset, unit, folder / "collage.png")
    top = export_top_samples(dissection, dataset, unit, folder)
    rel = lambda p: str(Path(p).relative_to(out_dir))  # noqa: E731
    out = {}
    if collage:
        out["collage"] = rel(collage)
    if top:
        out["strip"] = rel(top["strip"])
        out["nifti"] = [[rel(p) for p in triple] for triple in top["nifti"]]
    return out

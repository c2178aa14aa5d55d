"""The concept atlas of a dissected run: one YAML file, versioned schema, edited by experts.

Layout (``schema_version`` 1)::

    schema: spinefx-concept-atlas
    schema_version: 1
    layer, quantile, score, positive_set, n_samples, groups {tp, fp, tn, fn}
    units: one entry per unit k
      unit, threshold,
      correlation {tp, fp, tn, fn, gt, pred}   fraction of each set in which k is enabled
      rank {tp, fp, tn, gt, pred}              1 = highest, ties by lower unit index
      concept_scores {vertebral_body: IoU, ...}
      top_samples [{sample, case_id, level, score, fractured, predicted}]
      exports {collage, strip, nifti: [...]}   paths relative to the atlas folder
      concept_label, explanation               expert-edited; kept when dissection re-runs

``save_atlas`` writes atomically and keeps the previous file as ``<name>.prev.yaml``.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from spinefx.atomic import atomic_path, write_text_atomic
from spinefx.errors import InputError

SCHEMA = "spinefx-concept-atlas"
SCHEMA_VERSION = 1
EDITABLE_FIELDS = ("concept_label", "explanation")
RANKED_SETS = ("tp", "fp", "tn", "gt", "pred")


def _plain(value: Any) -> Any:
    """numpy scalars/arrays -> plain Python for YAML; NaN -> None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def build_atlas(
    dissection,
    *,
    correlations: dict[str, np.ndarray],
    ranks: dict[str, np.ndarray],
    concept_scores: dict[int, dict[str, float]] | None = None,
    exports: dict[int, dict] | None = None,
    positive_set: str = "tp",
    run_dir: str | None = None,
    top_samples: int = 25,
) -> dict:
    """The atlas dict of a :class:`~spinefx.interpretation.dissection.Dissection`."""
    groups = dissection.groups()
    units = []
    for k in range(dissection.n_units):
        units.append(
            {
                "unit": k,
                "threshold": float(dissection.thresholds[k]),
                "correlation": {name: float(v[k]) for name, v in correlations.items()},
                "rank": {name: int(ranks[name][k]) for name in RANKED_SETS if name in ranks},
                "concept_scores": (concept_scores or {}).get(k, {}),
                "top_samples": _top_samples(dissection, k, top_samples),
                "exports": (exports or {}).get(k, {}),
                "concept_label": None,
                "explanation": "",
            }
        )
    return _plain(
        {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "run_dir": None if run_dir is None else str(run_dir),
            "layer": dissection.layer,
            "quantile": dissection.quantile,
            "score": dissection.score,
            "positive_set": positive_set,
            "n_samples": int(len(dissection.labels)),
            "groups": {g: int(m.sum()) for g, m in groups.items()},
            "input_shape": list(dissection.input_shape),
            "activation_shape": list(dissection.activation_shape),
            "units": units,
        }
    )


def _top_samples(dissection, k: int, n: int) -> list[dict]:
    top = dissection.top_positive
    out = []
    for slot in range(min(n, top.indices.shape[1])):
        idx = int(top.indices[k, slot])
        if idx < 0:
            break
        meta = dissection.metas[idx]
        out.append(
            {
                "sample": idx,
                "case_id": meta.get("case_id"),
                "level": meta.get("level"),
                "score": float(top.scores[k, slot]),
                "fractured": int(dissection.labels[idx]),
                "predicted": int(dissection.predictions[idx]),
            }
        )
    return out


def merge_expert_fields(atlas: dict, previous: dict | None) -> dict:
    """Carry the expert label and explanation of each unit over from a previous atlas."""
    if not previous:
        return atlas
    old = {u["unit"]: u for u in previous.get("units", [])}
    for unit in atlas["units"]:
        for key in EDITABLE_FIELDS:
            if unit["unit"] in old and old[unit["unit"]].get(key):
                unit[key] = old[unit["unit"]][key]
    return atlas


def load_atlas(path: str | Path) -> dict:
    """Read and validate an atlas file.

    Raises:
        InputError: when the file is missing, not YAML, or not a concept atlas of a known
            schema version.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("concept atlas not found", path=path, fix="run `spinefx dissect` first")
    try:
        atlas = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(
            f"not valid YAML ({exc})",
            path=path,
            fix="restore the previous version from atlas.prev.yaml",
        ) from exc
    if not isinstance(atlas, dict) or atlas.get("schema") != SCHEMA:
        raise InputError(
            "not a spinefx concept atlas",
            path=path,
            fix="pass the atlas.yaml written by `spinefx dissect`",
        )
    if atlas.get("schema_version") != SCHEMA_VERSION:
        raise InputError(
            f"atlas schema version {atlas.get('schema_version')} is not supported "
            f"(this spinefx reads version {SCHEMA_VERSION})",
            path=path,
            fix="re-run `spinefx dissect` with this version of spinefx",
        )
    return atlas


def previous_path(path: str | Path) -> Path:
    """Where :func:`save_atlas` keeps the previous version (``atlas.yaml`` -> ``atlas.prev.yaml``)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_atlas(atlas: dict, path: str | Path) -> Path:
    """Write ``atlas`` atomically; the file it replaces is kept as ``<name>.prev.yaml``."""
    path = Path(path)
    text = yaml.safe_dump(_plain(atlas), sort_keys=False, allow_unicode=True, width=100)
    if path.is_file():
        with atomic_path(previous_path(path)) as tmp:
            shutil.copyfile(path, tmp)
    write_text_atomic(path, text)
    return path


def set_unit_concept(
    atlas_path: str | Path, unit: int, label: str | None, explanation: str = ""
) -> dict:
    """Set the expert concept label and explanation of one unit and save the atlas.

    Raises:
        InputError: when ``unit`` is not in the atlas.
    """
    atlas = load_atlas(atlas_path)
    entries = {u["unit"]: u for u in atlas["units"]}
    if int(unit) not in entries:
        raise InputError(
            f"unit {unit} is not in the atlas ({len(entries)} units)",
            path=atlas_path,
            fix=f"use a unit index 0-{len(entries) - 1}",
        )
    entries[int(unit)]["concept_label"] = (label or None) and str(label).strip() or None
    entries[int(unit)]["explanation"] = str(explanation or "")
    save_atlas(atlas, atlas_path)
    return atlas

"""The calls from reporting into the classifier, dissection and detection stages, in one place.

Each function adapts one stage's public API to the value types of :mod:`spinefx.reporting.types`.
When a stage is missing from this install the function raises :class:`StageUnavailable` with
the command that would provide it, and the app shows that message instead of a panel.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from spinefx.errors import InputError, SpinefxError
from spinefx.reporting.types import UnitConcept, UnitEvidence

log = logging.getLogger(__name__)

#: Where a run keeps its concept atlas, in order of preference (relative to the run dir).
ATLAS_CANDIDATES: tuple[str, ...] = (
    "dissection/atlas.json",
    "dissection/atlas.yaml",
    "atlas.json",
    "atlas.yaml",
)


class StageUnavailable(SpinefxError):
    """A pipeline stage this feature needs is not available in this install."""


def _api(module: str, name: str, *, needed_for: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise StageUnavailable(
            f"{module}.{name} is not available in this spinefx install, needed for {needed_for}"
        ) from None


def load_classifier(run_dir: Path) -> dict[str, Any]:
    """Model, input geometry, decision threshold and dissected layer of a classifier run.

    Returns:
        keyword arguments for :class:`spinefx.reporting.analysis.ModelRun` (without run_dir).
    """
    load_run = _api("spinefx.training", "load_run", needed_for="loading a trained run")
    loaded = load_run(run_dir)
    model = loaded.model.eval()
    config = loaded.config
    from spinefx.models import DISSECTED_LAYER

    return {
        "model": model,
        "patch_size_vox": int(config.patch_size_vox),
        "spacing_mm": float(config.spacing_mm),
        "decision_threshold": float(getattr(loaded, "decision_threshold", 0.5)),
        "layer": DISSECTED_LAYER,
    }


def find_atlas(run_dir: Path) -> Path | None:
    """The concept atlas file of a run, or None when the run was not dissected."""
    for rel in ATLAS_CANDIDATES:
        if (run_dir / rel).is_file():
            return run_dir / rel
    return None


def load_atlas(path: Path) -> Any:
    """Read a concept atlas through the dissection stage's API."""
    if not Path(path).is_file():
        raise InputError("concept atlas not found", path=path, fix="run `spinefx dissect` first")
    return _api("spinefx.interpretation", "load_atlas", needed_for="concept atlases")(path)


def relevance(run: Any, patch: Any, *, top_k: int) -> tuple[tuple[UnitEvidence, ...], Any]:
    """Top units by r_k (maps at input resolution) and a Grad-CAM, for one HU patch."""
    from spinefx.preprocessing import hu_to_unit

    relevance_for_input = _api(
        "spinefx.interpretation", "relevance_for_input", needed_for="the concept panel"
    )
    x = hu_to_unit(patch.data)[None, None]
    result = relevance_for_input(run.model, x, atlas=run.atlas, layer=run.layer, top_k=top_k)
    units = tuple(
        UnitEvidence(
            unit=int(u.unit),
            relevance=float(u.relevance),
            threshold=float(u.threshold),
            activation=np.asarray(u.activation, dtype=np.float32),
        )
        for u in result.units[:top_k]
    )
    gradcam = getattr(result, "gradcam", None)
    return units, None if gradcam is None else np.asarray(gradcam, dtype=np.float32)


def atlas_concepts(run: Any) -> dict[int, UnitConcept]:
    """Unit → :class:`UnitConcept` for every unit of the run's atlas."""
    atlas = run.atlas
    base = Path(run.atlas_path).parent if run.atlas_path else run.run_dir
    out = {}
    for unit in atlas.units:
        collage = getattr(unit, "collage_path", None)
        out[int(unit.unit)] = UnitConcept(
            unit=int(unit.unit),
            threshold=float(unit.threshold),
            ranks={k: int(v) for k, v in dict(getattr(unit, "ranks", {}) or {}).items()},
            label=getattr(unit, "label", "") or "",
            explanation=getattr(unit, "explanation", "") or "",
            concept_scores={
                k: float(v) for k, v in dict(getattr(unit, "concept_scores", {}) or {}).items()
            },
            collage_path=None if not collage else (base / collage),
        )
    return out


def set_unit_concept(run: Any, unit: int, *, label: str, explanation: str) -> None:
    """Save an expert label/explanation for one unit to the atlas (atomic, previous kept)."""
    if run.atlas_path is None:
        raise InputError("this run has no concept atlas to edit", fix="run `spinefx dissect`")
    setter = _api("spinefx.interpretation", "set_unit_concept", needed_for="expert editing")
    setter(run.atlas_path, unit, label=label, explanation=explanation)
    run.atlas = load_atlas(run.atlas_path)


def locate_vertebrae(scan: Any, voxel_run_dir: Path | None) -> dict[int, np.ndarray]:
    """Vertebra centroids (world RAS+ mm) from automatic localisation (voxel classifier)."""
    if voxel_run_dir is None:
        raise InputError(
            "no centroid JSON was given and automatic localisation is off",
            fix="upload the VerSe centroid JSON, or start the app with --voxel-model RUN_DIR",
        )
    detect = _api("spinefx", "detect_fractures", needed_for="automatic localisation")
    result = detect(scan, voxel_run_dir)
    centroids = getattr(result, "centroids", result)
    return {int(k): np.asarray(v, dtype=float) for k, v in dict(centroids).items()}

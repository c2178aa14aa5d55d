"""Run a trained patch classifier and its concept atlas on one scan.

This module is where reporting meets the earlier stages: it loads a run once (model and
config, checkpoint with ``weights_only=True``), extracts the spine-aligned patches of a scan,
predicts every vertebra, and asks the dissection stage for the units most relevant to one
vertebra's prediction (r_k) and a Grad-CAM on the same layer. :class:`ScanWorkspace` caches the
per-scan work so that the app's concept panel only does one vertebra's relevance pass.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spinefx.errors import InputError
from spinefx.image import Image
from spinefx.reporting.types import (
    ScanAnalysis,
    UnitConcept,
    VertebraExplanation,
    VertebraPrediction,
)

log = logging.getLogger(__name__)

NO_ATLAS_NOTE = (
    "No concept atlas for this run, so no unit relevance or concept panel: "
    "run `spinefx dissect RUN_DIR ...` or pass --atlas."
)


@dataclass
class ModelRun:
    """A trained patch classifier loaded once from its run directory.

    Attributes:
        run_dir: the run directory.
        model: the network in eval mode (CPU).
        patch_size_vox: side of the input patch (voxels).
        spacing_mm: isotropic input voxel size.
        decision_threshold: probability at or above which a vertebra is called fractured.
        layer: the dissected layer name.
        atlas: the run's concept atlas (dissection stage object) or None.
        atlas_path: its file, or None.
    """

    run_dir: Path
    model: Any
    patch_size_vox: int
    spacing_mm: float
    decision_threshold: float
    layer: str
    atlas: Any = None
    atlas_path: Path | None = None

    def __post_init__(self) -> None:
        self.lock = threading.Lock()  # torch modules with hooks are not re-entrant

    @property
    def name(self) -> str:
        return self.run_dir.name


def load_model_run(run_dir: str | Path, *, atlas_path: str | Path | None = None) -> ModelRun:
    """Load a patch-classifier run directory (and its concept atlas, if there is one).

    Args:
        run_dir: run directory written by ``spinefx train``.
        atlas_path: concept atlas file; default the atlas found in the run directory.

    Raises:
        InputError: the folder is not a run directory, or the atlas cannot be read.
    """
    from spinefx.reporting import backends

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError("run directory not found", path=run_dir, fix="pass a `spinefx train` run")
    loaded = backends.load_classifier(run_dir)
    atlas_file = Path(atlas_path) if atlas_path else backends.find_atlas(run_dir)
    atlas = backends.load_atlas(atlas_file) if atlas_file is not None else None
    return ModelRun(run_dir=run_dir, atlas=atlas, atlas_path=atlas_file, **loaded)


def predict_vertebrae(
    run: ModelRun, patches: Mapping[int, Image], centroids: Mapping[int, np.ndarray]
) -> tuple[VertebraPrediction, ...]:
    """Fracture probability and decision for every patch (one batched forward pass per 8).

    Args:
        run: the loaded run.
        patches: vertebra label → HU patch of the run's input size, cranial first.
        centroids: vertebra label → centroid, world RAS+ mm.
    """
    import torch

    from spinefx.preprocessing import hu_to_unit

    labels = list(patches)
    probs: list[float] = []
    with run.lock, torch.inference_mode():
        for start in range(0, len(labels), 8):
            chunk = labels[start : start + 8]
            x = np.stack([hu_to_unit(patches[k].data) for k in chunk])[:, None]
            logits = run.model(torch.from_numpy(x))
            probs.extend(torch.sigmoid(logits).reshape(-1).tolist())
    return tuple(
        VertebraPrediction(
            vertebra_label=int(k),
            probability=float(p),
            fractured=bool(p >= run.decision_threshold),
            centroid_mm=tuple(float(v) for v in np.asarray(centroids[k])[:3]),
        )
        for k, p in zip(labels, probs, strict=True)
    )


class ScanWorkspace:
    """One scan under analysis: patches, predictions and cached per-vertebra explanations.

    Args:
        run: the loaded run.
        scan: the CT (HU, RAS+ mm affine).
        centroids: vertebra label → world RAS+ mm.
        name: display name (a file name, never a patient identifier).
        centroid_source: how the centroids were obtained, for the report.
        top_units: number of most relevant units per vertebra.
    """

    def __init__(
        self,
        run: ModelRun,
        scan: Image,
        centroids: Mapping[int, np.ndarray],
        *,
        name: str,
        centroid_source: str = "",
        top_units: int = 5,
    ) -> None:
        from spinefx.preprocessing import extract_vertebra_patches

        if not centroids:
            raise InputError(
                "no vertebra centroids for this scan",
                path=name,
                fix="upload the VerSe centroid JSON or use a run with automatic localisation",
            )
        self.run = run
        self.top_units = top_units
        self.patches = extract_vertebra_patches(
            scan, centroids, size_vox=run.patch_size_vox, spacing_mm=run.spacing_mm
        )
        if not self.patches:
            raise InputError(
                "none of the centroids is a thoracic or lumbar vertebra",
                path=name,
                fix="the classifier covers T1-L6; check the centroid labels",
            )
        notes = () if run.atlas is not None else (NO_ATLAS_NOTE,)
        self.analysis = ScanAnalysis(
            name=name,
            scan=scan,
            predictions=predict_vertebrae(run, self.patches, centroids),
            decision_threshold=run.decision_threshold,
            notes=notes,
            centroid_source=centroid_source,
        )
        self._explanations: dict[int, VertebraExplanation] = {}
        self._overview: bytes | None = None
        self._lock = threading.Lock()

    def overview_png(self) -> bytes:
        """Mid-sagittal overview PNG with centroids coloured by decision (rendered once)."""
        from spinefx.reporting.figures import render_scan_overview

        if self._overview is None:
            preds = self.analysis.predictions
            self._overview = render_scan_overview(
                self.analysis.scan,
                {p.vertebra_label: p.centroid_mm for p in preds},
                fractured={p.vertebra_label: p.fractured for p in preds},
            )
        return self._overview

    def explanation(self, vertebra_label: int) -> VertebraExplanation:
        """The top units (and Grad-CAM) for one vertebra, computed once and cached.

        Raises:
            InputError: unknown vertebra, or no atlas for this run.
        """
        from spinefx.reporting import backends

        label = int(vertebra_label)
        pred = self.analysis.prediction(label)
        if pred is None:
            raise InputError(f"vertebra {label} is not in this scan")
        with self._lock:
            if label not in self._explanations:
                if self.run.atlas is None:
                    raise InputError(NO_ATLAS_NOTE)
                with self.run.lock:
                    units, gradcam = backends.relevance(
                        self.run, self.patches[label], top_k=self.top_units
                    )
                self._explanations[label] = VertebraExplanation(
                    prediction=pred,
                    patch=self.patches[label],
                    units=units,
                    gradcam=gradcam,
                    layer=self.run.layer,
                )
            return self._explanations[label]

    def explanations_for_report(self) -> dict[int, VertebraExplanation]:
        """Explanations of the flagged vertebrae (or the most suspicious one when none is)."""
        if self.run.atlas is None:
            return {}
        preds = self.analysis.predictions
        chosen = [p for p in preds if p.fractured] or [max(preds, key=lambda p: p.probability)]
        return {p.vertebra_label: self.explanation(p.vertebra_label) for p in chosen}

    def concepts(self) -> dict[int, UnitConcept]:
        """Unit → general concept from the run's atlas (empty without an atlas)."""
        from spinefx.reporting import backends

        return backends.atlas_concepts(self.run) if self.run.atlas is not None else {}

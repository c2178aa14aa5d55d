"""Run a trained patch classifier and its concept atlas on one scan.

This module is where reporting meets the earlier stages: it loads a run once (model and
config, checkpoint with ``weights_only=True``), extracts the spine-aligned patches of a scan
and predicts every vertebra in one batched pass that also records the dissected layer's
activations and Grad-CAM weights. :class:`ScanWorkspace` keeps them, so a concept panel (units
ranked by r_k, their maps, Grad-CAM) is arithmetic on cached arrays, not a network pass.
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
    VertebraResult,
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
        trained: the loaded run (:class:`spinefx.runs.TrainedRun`); its other trials join
            the probability by the run's ensemble rule. None for a bare model (tests).
    """

    run_dir: Path
    model: Any
    patch_size_vox: int
    spacing_mm: float
    decision_threshold: float
    layer: str
    atlas: Any = None
    atlas_path: Path | None = None
    trained: Any = None

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


@dataclass(frozen=True)
class LayerRecord:
    """What the prediction pass kept of one vertebra for its concept panel.

    Attributes:
        activations: ``(K, *S)`` output of the dissected layer.
        gradcam_weights: ``(K,)`` spatial means of ``∂logit/∂A_k``.
    """

    activations: np.ndarray
    gradcam_weights: np.ndarray


def predict_vertebrae(
    run: ModelRun,
    patches: Mapping[int, Image],
    centroids: Mapping[int, np.ndarray],
    *,
    record_layer: bool = False,
    batch_size: int = 8,
    scan: Image | None = None,
) -> tuple[tuple[VertebraResult, ...], dict[int, LayerRecord]]:
    """Fracture probability and decision for every patch, in batches.

    Args:
        run: the loaded run.
        patches: vertebra label → HU patch of the run's input size, cranial first.
        centroids: vertebra label → centroid, world RAS+ mm.
        record_layer: also keep each vertebra's dissected-layer activations and Grad-CAM
            weights (one backward pass per batch), so concept panels need no network pass.
        batch_size: patches per forward pass.
        scan: the CT the patches come from, for the metal check (metal: not assessable).

    Returns:
        ``(predictions, records)``; ``records`` is empty unless ``record_layer``.
    """
    from spinefx.preprocessing import hu_to_unit
    from spinefx.reporting.backends import forward_with_evidence

    labels = list(patches)
    probs: list[float] = []
    records: dict[int, LayerRecord] = {}
    with run.lock:
        for start in range(0, len(labels), batch_size):
            chunk = labels[start : start + batch_size]
            x = np.stack([hu_to_unit(patches[k].data) for k in chunk])[:, None]
            p, acts, weights = forward_with_evidence(run, x, with_gradients=record_layer)
            if run.trained is not None and len(run.trained.models) > 1:
                from spinefx.inference.patch_classifier import predict_unit_patches

                others = [
                    predict_unit_patches(m, x.astype(np.float32)) for m in run.trained.models[1:]
                ]
                p = run.trained.ensemble([p, *others])
            probs.extend(float(v) for v in p)
            if record_layer:
                for i, k in enumerate(chunk):
                    records[k] = LayerRecord(acts[i].copy(), weights[i].copy())
    from spinefx.inference.patch_classifier import patch_results

    predictions = patch_results(scan, patches, centroids, probs, threshold=run.decision_threshold)
    return tuple(predictions), records


class ScanWorkspace:
    """One scan under analysis: patches, predictions and cached per-vertebra explanations.

    Args:
        run: the loaded run.
        scan: the CT (HU, RAS+ mm affine).
        centroids: vertebra label → world RAS+ mm.
        name: display name (a file name, never a patient identifier).
        centroid_source: how the centroids were obtained, for the report.
        top_units: number of most relevant units per vertebra.
        morphometry: the vertebra mask's heights and grade per label (shown beside each
            probability), or None.
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
        morphometry: Mapping[int, Mapping] | None = None,
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
        training_note = run.trained.training_note if run.trained is not None else ""
        notes += (training_note,) if training_note else ()
        predictions, self._records = predict_vertebrae(
            run, self.patches, centroids, record_layer=run.atlas is not None, scan=scan
        )
        self.analysis = ScanAnalysis(
            name=name,
            scan=scan,
            predictions=predictions,
            decision_threshold=run.decision_threshold,
            notes=notes,
            centroid_source=centroid_source,
            morphometry=dict(morphometry or {}),
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
                fractured={p.vertebra_label: bool(p.flagged) for p in preds},
            )
        return self._overview

    def explanation(self, vertebra_label: int) -> VertebraExplanation:
        """The top units (and Grad-CAM) for one vertebra, computed once and cached.

        Raises:
            InputError: unknown vertebra, or no atlas for this run.
        """

        label = int(vertebra_label)
        pred = self.analysis.prediction(label)
        if pred is None:
            raise InputError(f"vertebra {label} is not in this scan")
        with self._lock:
            if label not in self._explanations:
                if self.run.atlas is None:
                    raise InputError(NO_ATLAS_NOTE)
                units, gradcam = self._evidence(label)
                self._explanations[label] = VertebraExplanation(
                    prediction=pred,
                    patch=self.patches[label],
                    units=units,
                    gradcam=gradcam,
                    layer=self.run.layer,
                )
            return self._explanations[label]

    def _evidence(self, label: int):
        from spinefx.reporting.evidence import atlas_thresholds, gradcam_map, top_units

        record = self._records[label]
        shape = self.patches[label].shape
        try:
            thresholds = atlas_thresholds(self.run.atlas)
            units = top_units(
                record.activations, thresholds, top_k=self.top_units, input_shape=shape
            )
        except ValueError as exc:  # thresholds of another model's layer
            raise InputError(
                f"the concept atlas does not fit this model ({exc})",
                path=self.run.atlas_path,
                fix="pass the atlas written by `spinefx dissect` for this run",
            ) from None
        gradcam = gradcam_map(record.activations, record.gradcam_weights, input_shape=shape)
        return units, gradcam

    def explanations_for_report(self) -> dict[int, VertebraExplanation]:
        """Explanations of the flagged vertebrae (or the most suspicious one when none is)."""
        if self.run.atlas is None:
            return {}
        preds = self.analysis.predictions
        chosen = [p for p in preds if p.flagged] or [max(preds, key=lambda p: p.probability)]
        return {p.vertebra_label: self.explanation(p.vertebra_label) for p in chosen}

    def concepts(self) -> dict[int, UnitConcept]:
        """Unit → general concept from the run's atlas (empty without an atlas)."""
        from spinefx.reporting import backends

        return backends.atlas_concepts(self.run) if self.run.atlas is not None else {}

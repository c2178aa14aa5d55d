"""Value types of a per-scan analysis: what the app shows and what a report is built from.

These are plain data: predictions per vertebra, the units most relevant to one vertebra's
prediction (r_k, activation maps on the patch grid) and the general concept of each unit as
stored in the run's concept atlas. The stages that compute them (classifier, dissection) are
wired in :mod:`spinefx.reporting.analysis`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spinefx.image import Image
from spinefx.records import VertebraResult


@dataclass(frozen=True)
class UnitConcept:
    """The general concept of one unit, from the run's concept atlas.

    Attributes:
        unit: channel index in the dissected layer.
        threshold: dissection threshold ``T_k`` (activation units of the layer).
        ranks: correlation ranks by sample set, e.g. ``{"tp": 1, "fp": 40, "tn": 300}``
            (1 = the unit most often enabled on that set).
        correlations: fraction of the set's samples in which the unit is enabled (c_k).
        label: expert concept label ("" when none was given).
        explanation: expert free-text explanation.
        concept_scores: anatomical concept name → IoU of the unit's masks with that region.
        collage_path: PNG collage of top-activating dataset samples, or None.
    """

    unit: int
    threshold: float
    ranks: dict[str, int] = field(default_factory=dict)
    correlations: dict[str, float] = field(default_factory=dict)
    label: str = ""
    explanation: str = ""
    concept_scores: dict[str, float] = field(default_factory=dict)
    collage_path: Path | None = None

    def best_concept(self) -> tuple[str, float] | None:
        """The anatomical concept with the highest IoU, or None when there are no scores."""
        if not self.concept_scores:
            return None
        name = max(self.concept_scores, key=lambda k: self.concept_scores[k])
        return name, float(self.concept_scores[name])


@dataclass(frozen=True)
class UnitEvidence:
    """One unit's evidence for one input (relevance r_k and its map over the input).

    Attributes:
        unit: channel index in the dissected layer.
        relevance: ``r_k = Σ_x M_k(x) A_k(x)`` for this input.
        threshold: ``T_k``; the map is outlined where it exceeds it.
        activation: ``(X, Y, Z)`` activation upsampled to the patch grid (input resolution).
        mask: bool ``(X, Y, Z)``: ``M_k = A_k > T_k`` taken on the layer grid, then upsampled
            (so a unit enabled at one layer voxel always shows a region, even where the
            smoothed activation stays below ``T_k``); None = ``activation > threshold``.
    """

    unit: int
    relevance: float
    threshold: float
    activation: np.ndarray
    mask: np.ndarray | None = None

    def region(self) -> np.ndarray:
        """The bool region to outline: :attr:`mask`, else ``activation > threshold``."""
        return self.mask if self.mask is not None else self.activation > self.threshold


@dataclass(frozen=True)
class VertebraExplanation:
    """Why the classifier decided what it did for one vertebra.

    Attributes:
        prediction: the classifier output.
        patch: the HU patch the classifier saw (local frame, patch→world affine).
        units: the top units by relevance, most relevant first.
        gradcam: Grad-CAM on the same layer, ``(X, Y, Z)`` on the patch grid, or None.
        layer: name of the dissected layer.
    """

    prediction: VertebraResult
    patch: Image
    units: tuple[UnitEvidence, ...]
    gradcam: np.ndarray | None = None
    layer: str = ""


@dataclass(frozen=True)
class ScanAnalysis:
    """Predictions for all vertebrae of one scan, plus what is needed to explain them.

    Attributes:
        name: display name of the scan (file name; never a patient identifier).
        scan: the CT.
        predictions: per vertebra, cranial to caudal.
        decision_threshold: probability at or above which a vertebra is called fractured.
        notes: messages about what could not be done (e.g. no atlas for this run).
        centroid_source: "uploaded file", "automatic localisation", ...
        morphometry: per VerSe label, the vertebra mask's heights and morphometric grade
            (:func:`spinefx.morphometry.morphometry_columns`); empty without a mask.
    """

    name: str
    scan: Image
    predictions: tuple[VertebraResult, ...]
    decision_threshold: float = 0.5
    notes: tuple[str, ...] = ()
    centroid_source: str = ""
    morphometry: Mapping[int, Mapping] = field(default_factory=dict)

    def prediction(self, vertebra_label: int) -> VertebraResult | None:
        for p in self.predictions:
            if p.vertebra_label == int(vertebra_label):
                return p
        return None

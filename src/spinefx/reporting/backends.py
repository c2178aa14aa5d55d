"""The calls from reporting into the classifier, dissection and detection stages, in one place.

Each function adapts one stage's public API to the value types of :mod:`spinefx.reporting.types`.
Stage imports happen inside the functions so importing the app stays cheap.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from spinefx.errors import InputError
from spinefx.reporting.types import UnitConcept

log = logging.getLogger(__name__)

#: Where a run keeps its concept atlas, in order of preference (relative to the run dir).
ATLAS_CANDIDATES: tuple[str, ...] = ("dissection/atlas.yaml", "atlas.yaml")


def load_classifier(run_dir: Path) -> dict[str, Any]:
    """Model, input geometry, decision threshold and dissected layer of a classifier run.

    Loaded by :func:`spinefx.runs.load_trained` (``weights_only=True``): the probability is
    the run's ensemble over trials, the explanation (activations, Grad-CAM) is the first
    trial's, the model the concept atlas describes.

    Returns:
        keyword arguments for :class:`spinefx.reporting.analysis.ModelRun` (without run_dir).
    """
    from spinefx.models import DISSECTED_LAYER
    from spinefx.runs import load_trained

    run = load_trained(run_dir, expect="patch")
    return {
        "model": run.model,
        "patch_size_vox": run.patch_size_vox,
        "spacing_mm": run.spacing_mm,
        "decision_threshold": float(run.threshold),
        "layer": DISSECTED_LAYER,
        "trained": run,
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
    from spinefx.interpretation.atlas import load_atlas as read_atlas

    return read_atlas(path)


def forward_with_evidence(
    run: Any, x: np.ndarray, *, with_gradients: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """One batched pass: probabilities, the dissected layer's activations, Grad-CAM weights.

    With ``with_gradients`` the pass also backpropagates ``Σ_i logit_i``; in eval mode the
    samples do not interact (normalisation uses running or per-sample statistics), so the
    gradient with respect to sample i's activations is that of its own logit.

    Args:
        run: the loaded run (model in eval mode, layer name).
        x: ``(B, 1, S, S, S)`` float32 inputs in [0, 1].
        with_gradients: also record activations and Grad-CAM weights (needs an atlas to use).

    Returns:
        ``(probabilities (B,), activations (B, K, *s) or None, weights (B, K) or None)``.
    """
    import torch

    from spinefx.interpretation.activations import LayerRecorder

    inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if not with_gradients:
        with torch.inference_mode():
            logits = run.model(inputs)
        return torch.sigmoid(logits).reshape(-1).numpy(), None, None
    split = _split_at_layer(run.model, run.layer)
    if split is not None:  # backpropagate through the head only: same gradient, far cheaper
        front, back = split
        with torch.no_grad():
            acts = front(inputs)
        acts.requires_grad_(True)
        with torch.enable_grad():
            logits = back(acts).reshape(-1)
            logits.sum().backward()
        weights = acts.grad.flatten(2).mean(dim=2)
        run.model.zero_grad(set_to_none=True)
        probs = torch.sigmoid(logits.detach()).numpy()
        return probs, acts.detach().numpy(), weights.numpy()
    with LayerRecorder(run.model, run.layer, retain_grad=True) as rec, torch.enable_grad():
        logits = run.model(inputs).reshape(-1)
        logits.sum().backward()
        acts = rec.output.detach().float()
        weights = rec.grad.float().flatten(2).mean(dim=2)
    run.model.zero_grad(set_to_none=True)
    probs = torch.sigmoid(logits.detach()).numpy()
    return probs, acts.numpy(), weights.numpy()


def _split_at_layer(model: Any, layer: str):
    """``(front, back)`` with ``model(x) == back(front(x))`` and ``front`` ending at ``layer``.

    Known for the patch classifier's dissected layer (the encoder's last level is the encoder's
    output, followed by the head); None for any other model/layer (the full backward is used).
    """
    encoder, head = getattr(model, "encoder", None), getattr(model, "head", None)
    if layer == "encoder.level4" and encoder is not None and head is not None:
        return encoder, head
    return None


def atlas_concepts(run: Any) -> dict[int, UnitConcept]:
    """Unit → :class:`UnitConcept` for every unit of the run's atlas (schema version 1)."""
    base = Path(run.atlas_path).parent if run.atlas_path else run.run_dir
    out = {}
    for entry in run.atlas.get("units", []):
        collage = (entry.get("exports") or {}).get("collage")
        out[int(entry["unit"])] = UnitConcept(
            unit=int(entry["unit"]),
            threshold=float(entry["threshold"]),
            ranks={
                k: int(v) for k, v in (entry.get("rank") or {}).items() if k in ("tp", "fp", "tn")
            },
            correlations={
                k: float(v)
                for k, v in (entry.get("correlation") or {}).items()
                if k in ("tp", "fp", "tn") and v is not None and v == v  # NaN: empty set
            },
            label=entry.get("concept_label") or "",
            explanation=entry.get("explanation") or "",
            concept_scores={k: float(v) for k, v in (entry.get("concept_scores") or {}).items()},
            collage_path=None if not collage else base / collage,
        )
    return out


def set_unit_concept(run: Any, unit: int, *, label: str, explanation: str) -> None:
    """Save an expert label/explanation for one unit to the atlas (atomic, previous kept)."""
    if run.atlas_path is None:
        raise InputError("this run has no concept atlas to edit", fix="run `spinefx dissect`")
    from spinefx.interpretation.atlas import set_unit_concept as save_unit_concept

    run.atlas = save_unit_concept(run.atlas_path, int(unit), label or None, explanation)


def locate_vertebrae(scan: Any) -> dict[int, np.ndarray]:
    """Vertebra centroids (world RAS+ mm) from automatic localisation on the CT's anatomy
    (:func:`spinefx.inference.ct_localisation.automatic_centroids`)."""
    from spinefx.inference.ct_localisation import automatic_centroids

    centroids, _, summary = automatic_centroids(scan)
    if not centroids:
        raise InputError(
            "automatic localisation found no vertebrae in this scan"
            + (f" ({'; '.join(summary['notes'])})" if summary["notes"] else ""),
            fix="upload the VerSe centroid JSON or a vertebra mask of the scan",
        )
    return centroids

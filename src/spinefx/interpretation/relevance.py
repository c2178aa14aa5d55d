"""Why this input: unit relevance r_k = sum_x M_k(x) A_k(x) (paper eq. 2) and Grad-CAM.

Both work on one input tensor and return maps on the input grid and, when the input's
affine and the original scan are given, on the scan grid (world RAS+ mm preserved).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from spinefx.image import Image
from spinefx.interpretation.activations import LayerRecorder, positive_probability
from spinefx.interpretation.grids import map_onto_scan, upsample


@dataclass
class UnitRelevance:
    """One unit's contribution to the inference of one input.

    Attributes:
        unit: channel index k in the dissected layer.
        relevance: r_k = sum over the activation grid of ``A_k * (A_k > T_k)``.
        threshold: T_k.
        activation: ``A_k`` upsampled to the input grid ``(X, Y, Z)`` (an ``Image`` when the
            input affine is known, else an array).
        mask: bool ``A_k > T_k`` on the input grid (same type as ``activation``).
        scan_activation: ``A_k`` on the scan grid, when a scan was given.
        concept_label: the expert concept of the unit in the atlas, if any.
    """

    unit: int
    relevance: float
    threshold: float
    activation: Image | np.ndarray
    mask: Image | np.ndarray
    scan_activation: Image | None = None
    concept_label: str | None = None


def _thresholds_and_labels(atlas_or_thresholds: Any) -> tuple[np.ndarray, dict[int, str]]:
    if isinstance(atlas_or_thresholds, dict) and "units" in atlas_or_thresholds:
        units = sorted(atlas_or_thresholds["units"], key=lambda u: int(u["unit"]))
        if [int(u["unit"]) for u in units] != list(range(len(units))):
            raise ValueError("the atlas must list every unit 0..K-1 exactly once")
        thresholds = np.array([u["threshold"] for u in units], dtype=np.float64)
        labels = {u["unit"]: u.get("concept_label") for u in units if u.get("concept_label")}
        return thresholds, labels
    return np.asarray(atlas_or_thresholds, dtype=np.float64).reshape(-1), {}


def _as_batch(inputs: torch.Tensor | np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(inputs) if not torch.is_tensor(inputs) else inputs)
    x = x.float()
    if x.ndim == 3:
        x = x[None]
    if x.ndim == 4:
        x = x[None]
    return x


def layer_activations(model: nn.Module, layer: str, inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """Activations ``(K, *S)`` of ``layer`` and the model output for one input ``(C, X, Y, Z)``."""
    model.eval()
    with LayerRecorder(model, layer) as rec, torch.no_grad():
        output = model(_as_batch(inputs))
        acts = rec.output[0].float().cpu()
    return acts, output


def relevance_for_input(
    model: nn.Module,
    layer: str,
    inputs,
    atlas_or_thresholds,
    *,
    input_affine: np.ndarray | None = None,
    scan: Image | None = None,
    top_n: int | None = 5,
) -> list[UnitRelevance]:
    """Units ranked by their relevance r_k for one input (highest first, ties: lower unit).

    Args:
        model: the dissected model.
        layer: the dissected layer (dotted module name).
        inputs: one model input ``(C, X, Y, Z)`` (or ``(X, Y, Z)`` for one channel).
        atlas_or_thresholds: a loaded concept atlas (dict) or thresholds ``(K,)``.
        input_affine: ``(4, 4)`` input-grid voxel -> world RAS+ mm (the patch affine).
        scan: the original scan; with ``input_affine``, maps are also put onto its grid.
        top_n: how many units get maps (all units are ranked); None = all.
    """
    thresholds, labels = _thresholds_and_labels(atlas_or_thresholds)
    acts, _ = layer_activations(model, layer, inputs)
    if acts.shape[0] != len(thresholds):
        raise ValueError(
            f"layer {layer!r} has {acts.shape[0]} units but {len(thresholds)} thresholds were given"
        )
    thr = torch.as_tensor(thresholds, dtype=torch.float32).reshape(-1, *([1] * (acts.ndim - 1)))
    relevance = (acts * (acts > thr)).flatten(1).sum(dim=1).double().numpy()
    order = np.argsort(-relevance, kind="stable")
    input_shape = tuple(_as_batch(inputs).shape[2:])
    out = []
    for rank, k in enumerate(order):
        k = int(k)
        item = UnitRelevance(
            k,
            float(relevance[k]),
            float(thresholds[k]),
            np.empty(0),
            np.empty(0),
            concept_label=labels.get(k),
        )
        if top_n is None or rank < top_n:
            _attach_maps(item, acts[k], input_shape, input_affine, scan)
        out.append(item)
    return out


def _attach_maps(item: UnitRelevance, act: torch.Tensor, input_shape, input_affine, scan) -> None:
    up = upsample(act, input_shape).numpy()
    mask = up > item.threshold
    if input_affine is None:
        item.activation, item.mask = up, mask
        return
    item.activation = Image(up, input_affine, {"unit": item.unit})
    item.mask = Image(mask.astype(np.uint8), input_affine, {"unit": item.unit})
    if scan is not None:
        item.scan_activation = map_to_scan(item.activation, scan)


def map_to_scan(patch_map: Image, scan: Image) -> Image:
    """A map on a patch grid put onto the scan grid (``preprocessing.patch_map_to_scan`` if present)."""
    try:
        from spinefx.preprocessing import patch_map_to_scan
    except ImportError:
        data = map_onto_scan(patch_map.data, patch_map.affine, scan.affine, scan.shape)
        return scan.with_data(data)
    return patch_map_to_scan(patch_map, scan)


def grad_cam(model: nn.Module, layer: str, inputs, *, target: int | None = None) -> np.ndarray:
    """Grad-CAM of ``layer`` for one input, upsampled to the input grid ``(X, Y, Z)``.

    ``cam = relu(sum_k w_k A_k)`` with ``w_k`` the spatial mean of ``d y / d A_k``, where ``y`` is
    the positive-class logit (one-logit models) or logit ``target``. Written by hand (~20
    lines) because captum is not a dependency of spinefx.
    """
    model.eval()
    x = _as_batch(inputs).requires_grad_(True)
    with LayerRecorder(model, layer, retain_grad=True) as rec, torch.enable_grad():
        output = model(x)
        if isinstance(output, (tuple, list)):
            output = output[0]
        if output.ndim == 2 and output.shape[1] > 1:
            y = output[0, 1 if target is None else target]
        else:
            y = output.reshape(-1)[0]
        model.zero_grad(set_to_none=True)
        y.backward()
        acts, grads = rec.output.detach()[0], rec.grad[0]
    weights = grads.flatten(1).mean(dim=1).reshape(-1, *([1] * (acts.ndim - 1)))
    cam = torch.relu((weights * acts).sum(dim=0))
    return upsample(cam, tuple(x.shape[2:])).numpy()


def probability(model: nn.Module, inputs) -> float:
    """Predicted probability of the positive class for one input."""
    model.eval()
    with torch.no_grad():
        return float(positive_probability(model(_as_batch(inputs)))[0])

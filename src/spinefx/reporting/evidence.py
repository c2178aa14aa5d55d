"""Unit relevance and Grad-CAM of one vertebra from activations recorded at prediction time.

The table's forward pass (one batched forward + backward over all vertebrae of a scan, see
:func:`spinefx.reporting.backends.forward_with_evidence`) records the dissected layer's
activations ``A (K, *S)`` and the Grad-CAM channel weights ``w (K,)`` of every vertebra, so a
concept panel needs no network pass: it is the arithmetic below.

* relevance (paper eq. 2): ``r_k = Σ_x A_k(x) [A_k(x) > T_k]``; units ranked by ``r_k``
  (ties: lower unit index), as :func:`spinefx.interpretation.relevance.relevance_for_input`;
* Grad-CAM: ``relu(Σ_k w_k A_k)`` with ``w_k`` the spatial mean of ``∂logit/∂A_k``, as
  :func:`spinefx.interpretation.relevance.grad_cam`;
* maps are upsampled trilinearly to the patch grid with the dissection stage's ``upsample``;
  the outlined region is ``M_k = A_k > T_k`` on the layer grid, upsampled the same way and cut
  at 0.5 (thresholding the smoothed map instead can lose a unit whose peak is one voxel).
"""

from __future__ import annotations

import numpy as np

from spinefx.reporting.types import UnitEvidence


def unit_relevance(activations: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``r_k`` for every unit.

    Args:
        activations: ``(K, *S)`` layer output for one input.
        thresholds: ``(K,)`` dissection thresholds ``T_k``.

    Returns:
        float64 ``(K,)``.
    """
    acts = np.asarray(activations, dtype=np.float64)
    thr = np.asarray(thresholds, dtype=np.float64).reshape(-1, *([1] * (acts.ndim - 1)))
    if acts.shape[0] != thr.shape[0]:
        raise ValueError(f"{acts.shape[0]} units but {thr.shape[0]} thresholds")
    return (acts * (acts > thr)).reshape(acts.shape[0], -1).sum(axis=1)


def top_units(
    activations: np.ndarray,
    thresholds: np.ndarray,
    *,
    top_k: int,
    input_shape: tuple[int, int, int],
) -> tuple[UnitEvidence, ...]:
    """The ``top_k`` units by relevance, with their activation upsampled to the input grid."""
    from spinefx.interpretation.grids import upsample

    relevance = unit_relevance(activations, thresholds)
    order = np.argsort(-relevance, kind="stable")[:top_k]
    acts = np.asarray(activations)[order]
    maps = upsample(acts, tuple(input_shape)).numpy()
    above = acts > np.asarray(thresholds)[order].reshape(-1, *([1] * (acts.ndim - 1)))
    masks = upsample(above.astype(np.float32), tuple(input_shape)).numpy() >= 0.5
    return tuple(
        UnitEvidence(
            unit=int(k),
            relevance=float(relevance[k]),
            threshold=float(thresholds[k]),
            activation=maps[i],
            mask=masks[i],
        )
        for i, k in enumerate(order)
    )


def gradcam_map(
    activations: np.ndarray, weights: np.ndarray, *, input_shape: tuple[int, int, int]
) -> np.ndarray:
    """Grad-CAM ``relu(Σ_k w_k A_k)`` upsampled to the input grid, float32 ``(X, Y, Z)``."""
    from spinefx.interpretation.grids import upsample

    acts = np.asarray(activations, dtype=np.float32)
    w = np.asarray(weights, dtype=np.float32).reshape(-1, *([1] * (acts.ndim - 1)))
    cam = np.maximum((w * acts).sum(axis=0), 0.0)
    return upsample(cam, tuple(input_shape)).numpy()


def atlas_thresholds(atlas: dict) -> np.ndarray:
    """``T_k`` of every unit of a concept atlas, indexed by unit, float64 ``(K,)``."""
    units = sorted(atlas.get("units", []), key=lambda u: int(u["unit"]))
    if [int(u["unit"]) for u in units] != list(range(len(units))):
        raise ValueError("atlas units are not numbered 0..K-1")
    return np.array([float(u["threshold"]) for u in units], dtype=np.float64)

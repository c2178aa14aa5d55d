"""Network dissection in 3D: thresholds, enabled units, correlations and top samples per unit.

``dissect`` streams a dataset through a model several times (see
:mod:`spinefx.interpretation.quantiles`); activation memory is bounded by one batch plus
``units x bins`` histogram counters plus ``units x top_k`` kept maps. Per sample it keeps only
the label, the prediction, a few metadata fields and the spatial maximum of every unit
(``4 K`` bytes), which is what decides whether a unit is enabled, ``E_x = {k : max_x A_k > T_k}``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from spinefx.interpretation.activations import iter_activations
from spinefx.interpretation.quantiles import exact_upper_quantiles
from spinefx.progress import progress

log = logging.getLogger(__name__)

#: Sample groups by (ground truth, prediction): true/false positives/negatives.
GROUPS = ("tp", "fp", "tn", "fn")
#: Positive sets that the correlation c_k can be computed over.
POSITIVE_SETS = {"tp": ("tp",), "gt": ("tp", "fn"), "pred": ("tp", "fp")}
#: Metadata fields kept per sample (JSON-able); the affine is kept for exports.
KEPT_META = ("case_id", "level", "vertebra_label", "path", "scan_path", "split", "affine")


class TopActivating:
    """Bounded per-unit top-k of samples by score, with the unit's own activation map.

    Ties are broken by the lower sample index (the earlier sample in loader order).

    Attributes:
        scores: float32 ``(K, k)``, ``-inf`` where fewer than k samples were eligible.
        indices: int64 ``(K, k)`` sample indices, -1 where empty.
        maps: float32 ``(K, k, *S)`` the unit's activation map in that sample (``None`` when
            built with ``keep_maps=False``).
    """

    def __init__(
        self, n_units: int, k: int, spatial_shape: tuple[int, ...], *, keep_maps: bool = True
    ):
        self.scores = torch.full((n_units, k), float("-inf"))
        self.indices = torch.full((n_units, k), -1, dtype=torch.long)
        self.maps = torch.zeros((n_units, k, *spatial_shape)) if keep_maps else None
        # double buffer: updates write into the spare instead of allocating (K, k, *S) tensors
        # per batch, which fragments the C heap until memory grows with the dataset
        self._spare = torch.zeros_like(self.maps) if keep_maps else None

    def update(self, scores: torch.Tensor, maps: torch.Tensor, indices: torch.Tensor) -> None:
        """Merge a batch: ``scores`` ``(B, K)`` (``-inf`` = not eligible), ``maps`` ``(B, K, *S)``."""
        k = self.scores.shape[1]
        all_scores = torch.cat([self.scores, scores.T], dim=1)
        all_idx = torch.cat([self.indices, indices.expand(scores.shape[1], -1)], dim=1)
        order = torch.sort(all_scores, dim=1, descending=True, stable=True).indices[:, :k]
        self.scores = torch.gather(all_scores, 1, order)
        self.indices = torch.where(torch.isfinite(self.scores), torch.gather(all_idx, 1, order), -1)
        if self.maps is None:
            return
        spatial = (1,) * (self.maps.ndim - 2)
        kept = order.clamp(max=k - 1).reshape(*order.shape, *spatial).expand_as(self.maps)
        torch.gather(self.maps, 1, kept, out=self._spare)
        unit, slot = torch.nonzero(order >= k, as_tuple=True)
        if len(unit):
            self._spare[unit, slot] = maps[order[unit, slot] - k, unit]
        self.maps, self._spare = self._spare, self.maps


@dataclass
class Dissection:
    """Everything dissection learnt about one layer over one dataset.

    Attributes:
        layer: dotted module name.
        quantile: upper tail fraction q of the thresholds.
        thresholds: float64 ``(K,)`` T_k.
        labels, predictions: int64 ``(N,)`` ground truth and prediction (1 = fractured).
        probabilities: float32 ``(N,)`` predicted probability of a fracture.
        sample_max: float32 ``(N, K)`` spatial maximum of each unit per sample.
        metas: per-sample metadata (``KEPT_META`` fields).
        top_positive: top samples per unit among ground-truth positives.
        top_all: top samples per unit among all samples (indices and scores, no maps).
        input_shape, activation_shape: spatial grids ``(X, Y, Z)``.
        score: per-sample unit score used for the top lists ("max" or "mean").
        n_values, n_passes: values per unit behind T_k and passes over the data.
    """

    layer: str
    quantile: float
    thresholds: np.ndarray
    labels: np.ndarray
    predictions: np.ndarray
    probabilities: np.ndarray
    sample_max: np.ndarray
    metas: list[dict]
    top_positive: TopActivating
    top_all: TopActivating
    input_shape: tuple[int, ...]
    activation_shape: tuple[int, ...]
    score: str
    n_values: int
    n_passes: int

    @property
    def n_units(self) -> int:
        return int(self.thresholds.shape[0])

    def enabled(self) -> np.ndarray:
        """Bool ``(N, K)``: unit k enabled in sample x, i.e. ``sum M_k(x) > 0``."""
        return self.sample_max > self.thresholds[None, :].astype(np.float32)

    def groups(self) -> dict[str, np.ndarray]:
        """Bool ``(N,)`` membership of each sample in tp / fp / tn / fn."""
        return sample_groups(self.labels, self.predictions)

    def correlations(self) -> dict[str, np.ndarray]:
        """c_k over every group and positive set (see :func:`unit_correlations`)."""
        return unit_correlations(self.enabled(), self.labels, self.predictions)


def sample_groups(labels: np.ndarray, predictions: np.ndarray) -> dict[str, np.ndarray]:
    """Bool masks ``(N,)`` of true/false positives/negatives (1 = positive)."""
    gt, pred = np.asarray(labels) == 1, np.asarray(predictions) == 1
    return {"tp": gt & pred, "fp": ~gt & pred, "tn": ~gt & ~pred, "fn": gt & ~pred}


def unit_correlations(
    enabled: np.ndarray, labels: np.ndarray, predictions: np.ndarray
) -> dict[str, np.ndarray]:
    """Fraction of samples of each set in which each unit is enabled.

    Args:
        enabled: bool ``(N, K)``.
        labels, predictions: ``(N,)`` 0/1.

    Returns:
        float64 ``(K,)`` per key: ``tp`` (the paper's c_k), ``fp``, ``tn``, ``fn``, ``gt`` (all
        ground-truth positives, as the authors' notebook) and ``pred`` (predicted positives).
        NaN where the set is empty.
    """
    groups = sample_groups(labels, predictions)
    sets = {g: groups[g] for g in GROUPS}
    sets |= {
        name: np.any([groups[g] for g in members], axis=0)
        for name, members in POSITIVE_SETS.items()
        if len(members) > 1
    }
    out = {}
    for name, members in sets.items():
        n = int(members.sum())
        out[name] = enabled[members].mean(axis=0) if n else np.full(enabled.shape[1], np.nan)
    return out


def rank_units(values: np.ndarray) -> np.ndarray:
    """1-based ranks, highest value first; ties by lower unit index; NaN ranked last."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=-np.inf)
    order = np.argsort(-values, kind="stable")
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[order] = np.arange(1, len(values) + 1)
    return ranks


def dissect(
    model: nn.Module,
    layer: str,
    loader: Iterable,
    *,
    quantile: float = 0.005,
    score: str = "max",
    top_k: int = 25,
    bins: int = 2048,
    buffer_per_unit: int = 4096,
    device: str | torch.device = "cpu",
    decision_threshold: float = 0.5,
) -> Dissection:
    """Dissect ``layer`` of ``model`` over ``loader`` (unshuffled, deterministic).

    Args:
        model: any module; put in eval mode, run without gradients.
        layer: dotted name of the dissected module (its output ``(B, K, *S)``).
        loader: iterable of ``(inputs (B, C, *S_in), labels (B,), metas)`` batches.
        quantile: upper tail fraction q, ``P(a_k > T_k) = q`` (paper: 0.005).
        score: per-sample unit score for the top lists, "max" or "mean" over space.
        top_k: samples kept per unit (25 for the collages).
        bins, buffer_per_unit: see :func:`~spinefx.interpretation.quantiles.exact_upper_quantiles`.
        decision_threshold: probability above which a sample counts as predicted positive.
    """
    if score not in ("max", "mean"):
        raise ValueError(f"score must be 'max' or 'mean', got {score!r}")
    keep_large_blocks_off_the_heap()
    state: dict = {"pass": 0}

    def make_chunks():
        first = state["pass"] == 0
        state["pass"] += 1
        batches = iter_activations(
            model, layer, loader, device=device, threshold_probability=decision_threshold
        )
        for batch in progress(batches, desc=f"dissection pass {state['pass']}"):
            if first:
                _first_pass_update(state, batch, score=score, top_k=top_k)
            acts = batch.activations
            yield acts.movedim(1, -1).reshape(-1, acts.shape[1])

    result = exact_upper_quantiles(
        make_chunks, quantile=quantile, bins=bins, buffer_per_unit=buffer_per_unit
    )
    log.info(
        "thresholds of %s from %d values per unit in %d passes",
        layer,
        result.n_values,
        result.n_passes,
    )
    return Dissection(
        layer=layer,
        quantile=quantile,
        thresholds=result.thresholds,
        labels=np.concatenate(state["labels"]),
        predictions=np.concatenate(state["predictions"]),
        probabilities=np.concatenate(state["probabilities"]),
        sample_max=np.concatenate(state["sample_max"]),
        metas=state["metas"],
        top_positive=state["top_positive"],
        top_all=state["top_all"],
        input_shape=state["input_shape"],
        activation_shape=state["activation_shape"],
        score=score,
        n_values=result.n_values,
        n_passes=result.n_passes,
    )


def keep_large_blocks_off_the_heap(*, min_bytes: int = 1 << 20) -> bool:
    """Ask glibc to serve blocks of ``min_bytes`` or more with mmap (``mallopt``).

    Each pass allocates and frees activation-sized blocks while small per-sample records
    stay alive between them; glibc's default (a threshold that rises up to 32 MiB) then puts
    the big blocks on the heap, which fragments and grows by about one batch of activations
    per batch. With large blocks mmapped, they are returned to the system when freed and
    memory stays flat. Process-wide; a no-op where glibc is absent. Returns whether it applied.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        return bool(libc.mallopt(-3, int(min_bytes)))  # -3 = M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def _first_pass_update(state: dict, batch, *, score: str, top_k: int) -> None:
    acts = batch.activations
    n_units, spatial = acts.shape[1], tuple(acts.shape[2:])
    if "top_all" not in state:
        state.update(labels=[], predictions=[], probabilities=[], sample_max=[], metas=[])
        state["top_all"] = TopActivating(n_units, top_k, spatial, keep_maps=False)
        state["top_positive"] = TopActivating(n_units, top_k, spatial)
        state["activation_shape"] = spatial
        state["input_shape"] = batch.input_shape
    flat = acts.flatten(2)
    unit_max = flat.max(dim=2).values
    scores = unit_max if score == "max" else flat.mean(dim=2)
    indices = torch.arange(len(batch.labels)) + batch.first_index
    state["top_all"].update(scores, acts, indices)
    positive = (batch.labels == 1)[:, None]
    state["top_positive"].update(torch.where(positive, scores, float("-inf")), acts, indices)
    state["labels"].append(batch.labels.numpy())
    state["predictions"].append(batch.predictions.numpy())
    state["probabilities"].append(batch.scores.numpy())
    state["sample_max"].append(unit_max.numpy().astype(np.float32))
    state["metas"] += [{k: m[k] for k in KEPT_META if k in m} for m in batch.metas]

"""Exact per-unit upper quantiles of streamed activations with bounded memory.

Algorithm (exact, multi-pass; written by hand because streaming libraries give sketches with
an error bound, not the exact order statistic):

1. pass 1: per unit, count ``n``, min and max of all values.
2. the quantile is numpy's default (``method="linear"``) at ``p = 1 - q``: with
   ``h = (n - 1) p``, ``T = x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h])`` over the
   sorted values ``x``. Only the two order statistics of rank ``floor h`` and ``floor h + 1``
   are needed.
3. refinement pass: a fixed histogram of ``bins`` equal bins over the unit's current value
   range ``[lo, hi]`` (per bin: count, min and max of the values that fell in it). The bins
   holding the two target ranks give a new, narrower range ``[min of first bin, max of last
   bin]`` and the number of values below it. Bins are ordered intervals because
   ``floor((v - lo) / w)`` is monotone in ``v`` under IEEE rounding, so a value lies in the new
   range exactly when it lies in the chosen bins.
4. when the range holds at most ``buffer_per_unit`` values, a last pass collects exactly those
   values; sorting them gives the two order statistics. When the range collapses to one value
   (ties, e.g. a dead ReLU unit) that value is the answer without collecting.

Memory: ``units x bins`` counters plus a bracket buffer of at most ``units x buffer_per_unit``
values, independent of the number of samples. Passes: 3 in general (rarely one more
histogram pass per factor ``bins`` of remaining values). The source must yield the same
values on every pass (a deterministic model in eval mode over an unshuffled loader); a
mismatch is detected and raised.

With ``q = 0.005`` the fraction of values strictly above ``T`` is at most ``q`` and differs
from ``q`` by less than ``1/n`` when there are no ties at ``T``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from spinefx.errors import InputError


@dataclass(frozen=True)
class QuantileResult:
    """Per-unit thresholds and how they were found.

    Attributes:
        thresholds: float64 ``(K,)``, ``numpy.quantile(values_k, 1 - quantile)``.
        quantile: the upper tail fraction ``q``.
        n_values: number of values per unit (samples x spatial positions).
        n_passes: passes made over the data.
    """

    thresholds: np.ndarray
    quantile: float
    n_values: int
    n_passes: int


def target_ranks(n: int, quantile: float) -> tuple[int, int, float]:
    """0-based ranks ``(r0, r1)`` and weight of numpy's linear quantile at ``p = 1 - quantile``."""
    h = (n - 1) * (1.0 - quantile)
    r0 = int(np.floor(h))
    return r0, min(r0 + 1, n - 1), float(h - r0)


def exact_upper_quantiles(
    make_chunks: Callable[[], Iterable[torch.Tensor]],
    *,
    quantile: float = 0.005,
    bins: int = 2048,
    buffer_per_unit: int = 4096,
) -> QuantileResult:
    """Per-unit threshold ``T_k`` with ``P(a_k > T_k) = quantile``, exactly, in bounded memory.

    Args:
        make_chunks: called once per pass; returns an iterable of float tensors ``(M, K)``
            (rows: samples x spatial positions, columns: units), the same values every call.
        quantile: upper tail fraction ``q`` in ``(0, 1)``.
        bins: histogram bins per unit and refinement pass.
        buffer_per_unit: most values collected per unit in the final pass.

    Returns:
        :class:`QuantileResult`; ``thresholds[k] == numpy.quantile(all_values[:, k], 1 - q)``.
    """
    if not 0.0 < quantile < 1.0:
        raise InputError(f"quantile {quantile} is outside (0, 1)", fix="use e.g. 0.005")
    n, lo, hi = _extrema(make_chunks())
    if n == 0:
        raise InputError("no activations to compute thresholds from", fix="check the dataset")
    k_units = lo.numel()
    r0, r1, frac = target_ranks(n, quantile)
    below = torch.zeros(k_units, dtype=torch.int64)
    count_in = torch.full((k_units,), n, dtype=torch.int64)
    v0 = torch.full((k_units,), float("nan"), dtype=torch.float64)
    v1 = v0.clone()
    passes = 1
    while True:
        same = torch.isnan(v0) & (lo == hi)
        v0[same], v1[same] = lo[same].double(), hi[same].double()
        open_units = torch.isnan(v0)
        if not open_units.any():
            break
        hist_units = open_units & (count_in > buffer_per_unit)
        collect_units = open_units & ~hist_units
        hist, values = _refinement_pass(make_chunks(), lo, hi, hist_units, collect_units, bins=bins)
        passes += 1
        if collect_units.any():
            _resolve_collected(values, collect_units, below, count_in, r0, r1, v0, v1)
        if hist_units.any():
            _narrow(hist, hist_units, lo, hi, below, count_in, r0, r1)
    thresholds = (v0 + frac * (v1 - v0)).numpy()
    return QuantileResult(thresholds, float(quantile), int(n), passes)


def _extrema(chunks: Iterable[torch.Tensor]) -> tuple[int, torch.Tensor, torch.Tensor]:
    n, lo, hi = 0, None, None
    for chunk in chunks:
        chunk = chunk.float()
        if chunk.shape[0] == 0:
            continue
        n += chunk.shape[0]
        cmin, cmax = chunk.min(dim=0).values, chunk.max(dim=0).values
        lo = cmin if lo is None else torch.minimum(lo, cmin)
        hi = cmax if hi is None else torch.maximum(hi, cmax)
    if lo is not None and not (torch.isfinite(lo).all() and torch.isfinite(hi).all()):
        raise InputError("activations contain NaN or infinite values", fix="check the model")
    return n, lo, hi


def _refinement_pass(chunks, lo, hi, hist_units, collect_units, *, bins: int):
    """One pass: histogram (count, min, max per bin) for ``hist_units``; raw values for the rest."""
    k_units = lo.numel()
    counts = torch.zeros(k_units * bins, dtype=torch.int64)
    bin_min = torch.full((k_units * bins,), float("inf"), dtype=torch.float32)
    bin_max = torch.full((k_units * bins,), float("-inf"), dtype=torch.float32)
    width = (hi.double() - lo.double()) / bins
    width = torch.where(width > 0, width, torch.ones_like(width))
    collected: list[tuple[torch.Tensor, torch.Tensor]] = []
    hist_cols = torch.nonzero(hist_units).flatten()
    coll_cols = torch.nonzero(collect_units).flatten()
    for chunk in chunks:
        chunk = chunk.float()
        if len(hist_cols):
            sub = chunk[:, hist_cols]
            inside = (sub >= lo[hist_cols]) & (sub <= hi[hist_cols])
            idx = torch.floor((sub.double() - lo[hist_cols].double()) / width[hist_cols])
            idx = idx.clamp_(0, bins - 1).long() + (hist_cols * bins)
            flat, vals = idx[inside], sub[inside]
            counts += torch.bincount(flat, minlength=k_units * bins)
            bin_min.scatter_reduce_(0, flat, vals, reduce="amin")
            bin_max.scatter_reduce_(0, flat, vals, reduce="amax")
        if len(coll_cols):
            sub = chunk[:, coll_cols]
            inside = (sub >= lo[coll_cols]) & (sub <= hi[coll_cols])
            cols = torch.nonzero(inside)[:, 1]
            collected.append((coll_cols[cols], sub[inside]))
    hist = (counts.view(k_units, bins), bin_min.view(k_units, bins), bin_max.view(k_units, bins))
    return hist, collected


def _narrow(hist, hist_units, lo, hi, below, count_in, r0: int, r1: int) -> None:
    counts, bin_min, bin_max = hist
    for k in torch.nonzero(hist_units).flatten().tolist():
        cum = torch.cumsum(counts[k], 0) + below[k]
        if int(cum[-1]) != int(below[k] + count_in[k]):
            raise _nondeterministic()
        b0 = int(torch.searchsorted(cum, torch.tensor(r0), right=True))
        b1 = int(torch.searchsorted(cum, torch.tensor(r1), right=True))
        below[k] = cum[b0] - counts[k, b0]
        count_in[k] = cum[b1] - below[k]
        lo[k], hi[k] = bin_min[k, b0], bin_max[k, b1]


def _resolve_collected(collected, collect_units, below, count_in, r0, r1, v0, v1) -> None:
    units = torch.cat([u for u, _ in collected]) if collected else torch.zeros(0, dtype=torch.long)
    vals = torch.cat([v for _, v in collected]) if collected else torch.zeros(0)
    order = torch.argsort(vals, stable=True)
    units, vals = units[order], vals[order]
    order = torch.argsort(units, stable=True)  # grouped by unit, ascending values within
    units, vals = units[order], vals[order]
    starts = torch.searchsorted(units, torch.arange(collect_units.numel()))
    sizes = torch.bincount(units, minlength=collect_units.numel())
    for k in torch.nonzero(collect_units).flatten().tolist():
        start = int(starts[k])
        if int(count_in[k]) != int(sizes[k]):
            raise _nondeterministic()
        v0[k] = float(vals[start + r0 - int(below[k])])
        v1[k] = float(vals[start + r1 - int(below[k])])


def _nondeterministic() -> RuntimeError:
    return RuntimeError(
        "activations differed between passes over the data; dissection needs a deterministic "
        "model (eval mode) and an unshuffled loader without random augmentation"
    )

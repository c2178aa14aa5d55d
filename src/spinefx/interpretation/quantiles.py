"""Exact per-unit upper quantiles of streamed activations with bounded memory.

Algorithm (exact, multi-pass; written by hand because streaming libraries give sketches with
an error bound, not the exact order statistic):

1. pass 1: per unit, count ``n``, min and max of all values.
2. the quantile is numpy's default (``method="linear"``) at ``p = 1 - q``: with
   ``h = (n - 1) p``, ``T = x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h])`` over the
   sorted values ``x``. Only the two order statistics of rank ``floor h`` and ``floor h + 1``
   are needed.
3. refinement pass, separately for each of the two target ranks: a fixed histogram of
   ``bins`` equal bins over the current value range ``[lo, hi]`` (per bin: count, min and max
   of the values that fell in it). The bin holding the target rank gives a new range
   ``[min, max of that bin]``, at most ``1/bins`` as wide, and the number of values below it.
   Bins are ordered intervals because ``floor((v - lo) / w)`` is monotone in ``v`` under IEEE
   rounding, so a value lies in the new range exactly when it lies in the chosen bin.
4. when the range holds at most ``buffer_per_unit`` values, a last pass collects exactly those
   values; sorting them gives the two order statistics. When the range collapses to one value
   (ties, e.g. a dead ReLU unit) that value is the answer without collecting.

Memory: ``2 x units x bins`` counters plus a bracket buffer of at most
``2 x units x buffer_per_unit`` values, independent of the number of samples. Passes: 3 in general (rarely one more
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
    # Each of the two order statistics is searched on its own column: columns 0..K-1 hold
    # rank r0 of each unit, K..2K-1 rank r1 (so a bracket is always one bin, which shrinks).
    ranks = torch.tensor([r0] * k_units + [r1] * k_units, dtype=torch.int64)
    lo, hi = torch.cat([lo, lo]), torch.cat([hi, hi])
    below = torch.zeros(2 * k_units, dtype=torch.int64)
    count_in = torch.full((2 * k_units,), n, dtype=torch.int64)
    value = torch.full((2 * k_units,), float("nan"), dtype=torch.float64)
    passes = 1
    while True:
        same = torch.isnan(value) & (lo == hi)
        value[same] = lo[same].double()
        open_cols = torch.isnan(value)
        if not open_cols.any():
            break
        hist_cols = open_cols & (count_in > buffer_per_unit)
        collect_cols = open_cols & ~hist_cols
        chunks = (torch.cat([c, c], dim=1) for c in make_chunks())
        hist, values = _refinement_pass(chunks, lo, hi, hist_cols, collect_cols, bins=bins)
        passes += 1
        if collect_cols.any():
            _resolve_collected(values, collect_cols, below, count_in, ranks, value)
        if hist_cols.any():
            _narrow(hist, hist_cols, lo, hi, below, count_in, ranks)
    v0, v1 = value[:k_units], value[k_units:]
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
    for chunk in _blocks(chunks):
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


def _blocks(chunks: Iterable[torch.Tensor], *, max_values: int = 2**20):
    """Row blocks of at most ``max_values`` values, so a pass's temporaries stay small."""
    for chunk in chunks:
        chunk = chunk.float()
        rows = max(1, max_values // max(1, chunk.shape[1]))
        yield from chunk.split(rows)


def _narrow(hist, hist_cols, lo, hi, below, count_in, ranks) -> None:
    """Shrink each column's range to the one bin holding its target rank."""
    counts, bin_min, bin_max = hist
    for k in torch.nonzero(hist_cols).flatten().tolist():
        cum = torch.cumsum(counts[k], 0) + below[k]
        if int(cum[-1]) != int(below[k] + count_in[k]):
            raise _nondeterministic()
        b = int(torch.searchsorted(cum, ranks[k : k + 1], right=True))
        below[k] = cum[b] - counts[k, b]
        count_in[k] = counts[k, b]
        lo[k], hi[k] = bin_min[k, b], bin_max[k, b]


def _resolve_collected(collected, collect_cols, below, count_in, ranks, value) -> None:
    """Sort the collected values of each column and read off its target rank."""
    if collected:
        cols = torch.cat([c for c, _ in collected])
        vals = torch.cat([v for _, v in collected])
    else:
        cols, vals = torch.zeros(0, dtype=torch.long), torch.zeros(0)
    order = torch.argsort(vals, stable=True)
    cols, vals = cols[order], vals[order]
    order = torch.argsort(cols, stable=True)  # grouped by column, ascending values within
    cols, vals = cols[order], vals[order]
    n_cols = collect_cols.numel()
    starts = torch.searchsorted(cols, torch.arange(n_cols))
    sizes = torch.bincount(cols, minlength=n_cols)
    for k in torch.nonzero(collect_cols).flatten().tolist():
        if int(count_in[k]) != int(sizes[k]):
            raise _nondeterministic()
        value[k] = float(vals[int(starts[k]) + int(ranks[k] - below[k])])


def _nondeterministic() -> RuntimeError:
    return RuntimeError(
        "activations differed between passes over the data; dissection needs a deterministic "
        "model (eval mode) and an unshuffled loader without random augmentation"
    )

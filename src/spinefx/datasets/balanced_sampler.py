"""Per-epoch perfect class balance: negatives undersampled, positives oversampled.

Each epoch holds ``epoch_size // 2`` positives and as many negatives. Positives are drawn as
whole shuffled passes over all positives (each appears equally often, +-1), so with the
default ``epoch_size = 2 * N_pos`` every positive appears exactly once; negatives are drawn
without replacement while there are enough (a different random subset every epoch).

The sampler yields ``(index, augmentation_seed)`` pairs: the dataset seeds its random
augmentation from them, so an epoch is reproducible from ``(seed, epoch)`` alone whatever the
number of loader workers. It is also distributed-aware: with ``world_size > 1`` every rank
computes the same epoch and takes its own interleaved shard (use with Lightning's
``use_distributed_sampler=False``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


def _draw(pool: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` items of ``pool``: without replacement when possible, else whole passes."""
    if count <= len(pool):
        return rng.choice(pool, size=count, replace=False)
    passes = [rng.permutation(pool) for _ in range(count // len(pool) + 1)]
    return np.concatenate(passes)[:count]


def balanced_epoch_indices(
    labels: Sequence[int], *, epoch_size: int | None, seed: int, epoch: int
) -> np.ndarray:
    """Indices of one perfectly balanced, shuffled epoch.

    Args:
        labels: 0/1 label per dataset item.
        epoch_size: items per epoch (even); None for ``2 * N_pos``.
        seed, epoch: the epoch's draw is a pure function of these.

    Returns:
        int64 array of length ``epoch_size`` (half positives, half negatives).
    """
    labels = np.asarray(labels).astype(int)
    positives = np.flatnonzero(labels == 1)
    negatives = np.flatnonzero(labels == 0)
    if len(positives) == 0 or len(negatives) == 0:
        raise ValueError(
            f"balanced sampling needs both classes; got {len(positives)} fractured and "
            f"{len(negatives)} normal vertebrae in the training split"
        )
    half = len(positives) if epoch_size is None else max(1, int(epoch_size) // 2)
    rng = np.random.default_rng([seed, epoch])
    chosen = np.concatenate([_draw(positives, half, rng), _draw(negatives, half, rng)])
    return rng.permutation(chosen).astype(np.int64)


class BalancedEpochSampler(Sampler):
    """Sampler of balanced epochs (see module docstring); Lightning calls ``set_epoch``."""

    def __init__(
        self,
        labels: Sequence[int],
        *,
        epoch_size: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.labels = np.asarray(labels).astype(int)
        self.epoch_size = epoch_size
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _epoch_indices(self) -> np.ndarray:
        return balanced_epoch_indices(
            self.labels, epoch_size=self.epoch_size, seed=self.seed, epoch=self.epoch
        )

    def __len__(self) -> int:
        n = len(self._epoch_indices())
        return -(-n // self.world_size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = self._epoch_indices()
        per_rank = -(-len(indices) // self.world_size)
        padded = np.resize(indices, per_rank * self.world_size)  # wrap to equal shards
        positions = np.arange(len(padded))
        for pos in positions[self.rank :: self.world_size]:
            aug_seed = (self.seed * 1_000_003 + self.epoch * 100_003 + int(pos)) % (2**31)
            yield int(padded[pos]), int(aug_seed)

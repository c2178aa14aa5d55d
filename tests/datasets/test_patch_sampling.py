"""Balanced epochs: perfect class balance, negatives undersampled, positives oversampled."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from spinefx.datasets.balanced_sampler import BalancedEpochSampler, balanced_epoch_indices

LABELS = np.array([1] * 5 + [0] * 40)


def test_default_epoch_holds_every_positive_once_and_as_many_distinct_negatives():
    idx = balanced_epoch_indices(LABELS, epoch_size=None, seed=3, epoch=0)
    assert len(idx) == 10
    pos = [i for i in idx if LABELS[i] == 1]
    neg = [i for i in idx if LABELS[i] == 0]
    assert sorted(pos) == [0, 1, 2, 3, 4]
    assert len(neg) == 5 and len(set(neg)) == 5  # undersampled without replacement


def test_larger_epoch_oversamples_positives_evenly():
    idx = balanced_epoch_indices(LABELS, epoch_size=30, seed=1, epoch=2)
    counts = Counter(int(i) for i in idx if LABELS[i] == 1)
    assert sum(counts.values()) == 15
    assert set(counts.values()) == {3}  # each positive exactly three times
    assert sum(LABELS[idx] == 0) == 15


def test_epochs_are_seeded_and_differ():
    a = balanced_epoch_indices(LABELS, epoch_size=None, seed=7, epoch=0)
    b = balanced_epoch_indices(LABELS, epoch_size=None, seed=7, epoch=0)
    c = balanced_epoch_indices(LABELS, epoch_size=None, seed=7, epoch=1)
    assert np.array_equal(a, b)
    assert set(a[LABELS[a] == 0]) != set(c[LABELS[c] == 0])


def test_sampler_yields_augmentation_seeds_and_shards_for_ddp():
    full = BalancedEpochSampler(LABELS, seed=0)
    full.set_epoch(4)
    items = list(full)
    assert len(items) == len(full) == 10
    assert len({seed for _, seed in items}) == 10
    shards = []
    for rank in range(2):
        s = BalancedEpochSampler(LABELS, seed=0, rank=rank, world_size=2)
        s.set_epoch(4)
        shards.append(list(s))
    assert sorted(shards[0] + shards[1]) == sorted(items)


def test_one_class_only_is_an_error():
    with pytest.raises(ValueError, match="both classes"):
        balanced_epoch_indices(np.zeros(5), epoch_size=None, seed=0, epoch=0)

"""spinefx.datasets: vertebra records, splits, class balancing, augmentation, torch datasets."""

from __future__ import annotations

from spinefx.datasets.balanced_sampler import BalancedEpochSampler, balanced_epoch_indices
from spinefx.datasets.patch_augmentation import PatchAugmentationConfig, PatchAugmenter
from spinefx.datasets.patch_dataset import PatchDataset, load_patch
from spinefx.datasets.patch_manifest import read_patch_manifest, usable_vertebrae
from spinefx.datasets.splits import assign_splits, stratified_patient_split

__all__ = [
    "BalancedEpochSampler",
    "PatchAugmentationConfig",
    "PatchAugmenter",
    "PatchDataset",
    "assign_splits",
    "balanced_epoch_indices",
    "load_patch",
    "read_patch_manifest",
    "stratified_patient_split",
    "usable_vertebrae",
]

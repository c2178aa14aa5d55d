"""Torch dataset of prepared vertebra patches (``prepare`` output), with optional augmentation.

Each item is ``{"image": (1, S, S, S) float32 in [0, 1], "label": float32 0/1, "index": int}``
where S is the model's ``patch_size_vox``. Patches on disk are int16 HU NIfTI with a
patch->world affine; a patch larger than S is centre-cropped (the authors cropped 96 -> 64),
one at another spacing or smaller than S is rejected.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from spinefx.conventions import HU_CLIP
from spinefx.datasets.patch_augmentation import PatchAugmenter
from spinefx.errors import InputError


def hu_patch_to_unit(hu: np.ndarray) -> np.ndarray:
    """HU -> [0, 1] float32 with the network window ``HU_CLIP``."""
    try:
        from spinefx.preprocessing import hu_to_unit
    except ImportError:  # preprocessing stage not installed in this checkout
        lo, hi = HU_CLIP
        return ((np.clip(hu, lo, hi) - lo) / (hi - lo)).astype(np.float32)
    return np.asarray(hu_to_unit(hu), dtype=np.float32)


def centre_crop(array: np.ndarray, size_vox: int) -> np.ndarray:
    """Centre crop of a 3-D array ``(X, Y, Z)`` to ``(size, size, size)`` (each side >= size)."""
    starts = [(s - size_vox) // 2 for s in array.shape]
    return array[tuple(slice(a, a + size_vox) for a in starts)]


def load_patch(path: str | Path, *, patch_size_vox: int, spacing_mm: float) -> np.ndarray:
    """Load one patch file as ``(1, S, S, S)`` float32 in [0, 1].

    Raises:
        InputError: the file is unreadable, at a different spacing, or smaller than S.
    """
    import nibabel as nib

    try:
        image = nib.load(str(path))
        hu = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise InputError(f"cannot read patch ({exc})", path=path, fix="re-run prepare") from exc
    spacing = np.sqrt((image.affine[:3, :3] ** 2).sum(axis=0))
    if hu.ndim != 3 or not np.allclose(spacing, spacing_mm, rtol=0.02):
        raise InputError(
            f"patch has shape {hu.shape} at spacing {np.round(spacing, 3).tolist()} mm, "
            f"the model expects {spacing_mm} mm",
            path=path,
            fix=f"prepare the data with --spacing-mm {spacing_mm} (and --size-vox "
            f">= {patch_size_vox})",
        )
    if min(hu.shape) < patch_size_vox:
        raise InputError(
            f"patch {hu.shape} is smaller than the model input {patch_size_vox}^3",
            path=path,
            fix=f"prepare the data with --size-vox {patch_size_vox}",
        )
    return hu_patch_to_unit(centre_crop(hu, patch_size_vox))[None]


class PatchDataset(Dataset):
    """Vertebra patches with fracture labels.

    Args:
        paths: patch file per item.
        labels: 0/1 fracture label per item (Genant grade >= 1).
        patch_size_vox, spacing_mm: the model's input geometry.
        augment: applied when an item is requested as ``(index, seed)`` (training); plain
            integer indices (evaluation) are never augmented.
        cache: keep loaded patches in memory (for small presets; int16-sized data x 2).
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        labels: Sequence[int],
        *,
        patch_size_vox: int,
        spacing_mm: float,
        augment: PatchAugmenter | None = None,
        cache: bool = False,
    ) -> None:
        if len(paths) != len(labels):
            raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
        self.paths = [str(p) for p in paths]
        self.labels = np.asarray(labels, dtype=np.float32)
        self.patch_size_vox = patch_size_vox
        self.spacing_mm = spacing_mm
        self.augment = augment
        self._cache: dict[int, np.ndarray] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, index: int) -> np.ndarray:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        patch = load_patch(
            self.paths[index], patch_size_vox=self.patch_size_vox, spacing_mm=self.spacing_mm
        )
        if self._cache is not None:
            self._cache[index] = patch
        return patch

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        import torch

        index, seed = (key, None) if np.isscalar(key) else (int(key[0]), int(key[1]))
        patch = self._load(int(index))
        if seed is not None and self.augment is not None:
            patch = self.augment(patch, seed=seed)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(patch, dtype=np.float32)),
            "label": torch.tensor(self.labels[index]),
            "index": int(index),
        }

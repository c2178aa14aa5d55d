"""Training augmentation of vertebra patches (MONAI array transforms), seeded per sample.

Intensity (Gaussian noise, Gaussian smoothing, contrast/gamma) and spatial (left-right flip,
similarity transform = rotation + isotropic-ish zoom + small translation, elastic deformation),
as the paper describes and as the authors configured but never applied. Patches arrive scaled
to [0, 1] (HU window), shape ``(1, X, Y, Z)`` in the local spine frame (x left-right,
y anterior, z cranial). Out-of-patch samples are padded with 0 (= -1000 HU, air).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PatchAugmentationConfig:
    """Probabilities and ranges of the training augmentation (``enabled=False`` turns it off).

    Attributes:
        noise_prob, noise_std: additive Gaussian noise (std on the [0, 1] scale).
        smooth_prob, smooth_sigma_vox: Gaussian smoothing, sigma range in voxels.
        contrast_prob, contrast_gamma: gamma range of the contrast change.
        flip_lr_prob: left-right mirror (anatomically plausible; axis 0 of the patch).
        affine_prob, rotate_deg, zoom_fraction, translate_mm: similarity transform ranges
            (rotation per axis x, y, z in degrees; zoom 1 +- fraction; translation per axis).
        elastic_prob, elastic_sigma_vox, elastic_magnitude: MONAI ``Rand3DElastic`` ranges
            (sigma of the smoothing of the random field in voxels; magnitude multiplies the
            smoothed field: 100-250 gives displacements of roughly 0.5-2 voxels).
    """

    enabled: bool = True
    noise_prob: float = 0.2
    noise_std: float = 0.03
    smooth_prob: float = 0.2
    smooth_sigma_vox: tuple[float, float] = (0.25, 0.75)
    contrast_prob: float = 0.2
    contrast_gamma: tuple[float, float] = (0.7, 1.5)
    flip_lr_prob: float = 0.5
    affine_prob: float = 0.5
    rotate_deg: tuple[float, float, float] = (10.0, 10.0, 10.0)
    zoom_fraction: float = 0.1
    translate_mm: tuple[float, float, float] = (3.0, 3.0, 3.0)
    elastic_prob: float = 0.2
    elastic_sigma_vox: tuple[float, float] = (5.0, 7.0)
    elastic_magnitude: tuple[float, float] = (100.0, 250.0)

    def __post_init__(self) -> None:
        for name in ("noise", "smooth", "contrast", "flip_lr", "affine", "elastic"):
            p = getattr(self, f"{name}_prob")
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name}_prob must be in [0, 1], got {p}")


class PatchAugmenter:
    """Applies the configured random augmentation to one patch, reproducibly from a seed.

    Args:
        config: the augmentation ranges.
        spacing_mm: voxel size of the patches (to express translations in voxels).
    """

    def __init__(self, config: PatchAugmentationConfig, *, spacing_mm: float) -> None:
        from monai.transforms import (
            Compose,
            Rand3DElastic,
            RandAdjustContrast,
            RandAffine,
            RandFlip,
            RandGaussianNoise,
            RandGaussianSmooth,
        )

        c = config
        self.config = config
        s = c.smooth_sigma_vox
        transforms = [
            RandFlip(prob=c.flip_lr_prob, spatial_axis=0),
            RandAffine(
                prob=c.affine_prob,
                rotate_range=tuple(math.radians(d) for d in c.rotate_deg),
                scale_range=(c.zoom_fraction,) * 3,
                translate_range=tuple(t / spacing_mm for t in c.translate_mm),
                mode="bilinear",
                padding_mode="zeros",
            ),
            Rand3DElastic(
                prob=c.elastic_prob,
                sigma_range=c.elastic_sigma_vox,
                magnitude_range=c.elastic_magnitude,
                mode="bilinear",
                padding_mode="zeros",
            ),
            RandGaussianSmooth(prob=c.smooth_prob, sigma_x=s, sigma_y=s, sigma_z=s),
            RandAdjustContrast(prob=c.contrast_prob, gamma=c.contrast_gamma),
            RandGaussianNoise(prob=c.noise_prob, std=c.noise_std),
        ]
        self._compose = Compose(transforms)

    def __call__(self, patch: np.ndarray, *, seed: int) -> np.ndarray:
        """Augment ``patch`` (shape ``(1, X, Y, Z)``, float32 in [0, 1]) with the given seed.

        Returns:
            float32 array of the same shape, clipped to [0, 1].
        """
        import torch

        self._compose.set_random_state(seed=int(seed) % (2**32))
        out = self._compose(torch.as_tensor(patch))
        out = torch.as_tensor(out).float().clamp_(0.0, 1.0)
        return out.numpy()

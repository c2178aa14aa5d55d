"""Aggregation of a voxel fracture map to the patient and its vertebrae (Nicolaes et al. 2019, 3.3).

Patient level: fracture voxels are those with ``p(fracture) > t_p``; their connected components
(26-connectivity, ``scipy.ndimage.label``) smaller than ``t_n`` voxels are noise; a patient is
positive when any component survives (:func:`largest_components` summarises a patient by its
largest component at each ``t_p``). Vertebra level: Gaussian-weighted mean of ``p(fracture)``
in a cube around each centroid (:func:`vertebra_scores`). The ROC analysis over ``(t_p, t_n)``
is evaluation (:mod:`spinefx.evaluation.patient_roc`).

Plausibility (our addition, not in the paper): the training labels give each fractured vertebra
its own flattened ellipsoid, and two ellipsoids never touch (their axial semi-axes are 0.21 of
the pitch, so more than half a pitch of background lies between neighbours). A component that
holds the body centres of two or more vertebrae (:func:`fracture_regions`) is therefore
something the model was never taught to output; ``detect_fractures`` says so in its patient
note (on generated scans such regions also cover true fractures, so it is not a verdict).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from spinefx.image import Image

#: Default grid of probability thresholds t_p and noise thresholds t_n, in voxels of the
#: network's grid: 1 mm^3 each in the paper preset, 8 mm^3 at the cpu preset's 2 mm (CV and
#: ``detect`` both count on that grid, so a run's operating point stays consistent).
DEFAULT_PROBABILITY_THRESHOLDS = tuple(np.round(np.arange(0.1, 0.96, 0.05), 2))
DEFAULT_NOISE_THRESHOLDS_VOX = (0, 10, 25, 50, 100, 200, 400, 800, 1600, 3200, 6400)


def largest_components(
    fracture_probability: np.ndarray, *, probability_thresholds=DEFAULT_PROBABILITY_THRESHOLDS
) -> np.ndarray:
    """Voxel count of the largest connected fracture component at each probability threshold.

    Args:
        fracture_probability: ``(X, Y, Z)`` p(fracture) on a 1 mm grid.
        probability_thresholds: ``(T,)`` values of t_p (voxels with p > t_p are fracture).

    Returns:
        ``(T,)`` int64 sizes (0 where no voxel passes).
    """
    from scipy import ndimage

    structure = np.ones((3, 3, 3), dtype=bool)
    out = np.zeros(len(probability_thresholds), dtype=np.int64)
    for i, t in enumerate(probability_thresholds):
        labels, n = ndimage.label(fracture_probability > t, structure=structure)
        if n:
            out[i] = int(np.bincount(labels.ravel())[1:].max())
    return out


@dataclass(frozen=True)
class FractureRegion:
    """One connected fracture component.

    Attributes:
        voxels: its size in voxels of the map's grid.
        vertebrae: VerSe labels whose body centre lies in it, cranial first; two or more mean
            it runs across vertebrae, which no training label does (module docstring).
        centre_mm: its centre of mass, world RAS+ mm.
    """

    voxels: int
    vertebrae: tuple[int, ...]
    centre_mm: tuple[float, float, float]

    @property
    def bridges_vertebrae(self) -> bool:
        return len(self.vertebrae) >= 2


def fracture_regions(
    fracture_probability: Image,
    centroids_mm: Mapping[int, np.ndarray],
    *,
    probability_threshold: float,
    min_voxels: int = 1,
) -> list[FractureRegion]:
    """Connected fracture components (p > ``probability_threshold``), largest first.

    Args:
        fracture_probability: p(fracture) ``Image``.
        centroids_mm: VerSe label -> world RAS+ mm (body centres).
        probability_threshold: t_p.
        min_voxels: smaller components are left out (t_n for the patient decision).

    Returns:
        one :class:`FractureRegion` per kept component; a centroid counts for the component
        that holds its nearest voxel (none when that voxel is outside the grid or below t_p).
    """
    from scipy import ndimage

    from spinefx.conventions import spine_rank
    from spinefx.preprocessing.resample import bounding_box

    above = np.asarray(fracture_probability.data) > probability_threshold
    if not above.any():
        return []
    # labelled inside the box of the voxels above t_p: the same components, numbered in the
    # same (raster) order, for a fraction of the work on a full field of view
    box = bounding_box(above)
    offset = np.array([b.start for b in box])
    labels, n = ndimage.label(above[box], structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel())
    inside: dict[int, list[int]] = {}
    for lab in sorted(centroids_mm, key=spine_rank):
        ijk = np.rint(fracture_probability.world_to_voxel(np.asarray(centroids_mm[lab], float)))
        ijk = ijk - offset
        if np.all(ijk >= 0) and np.all(ijk < labels.shape):
            component = int(labels[tuple(ijk.astype(int))])
            if component:
                inside.setdefault(component, []).append(int(lab))
    kept = [c for c in range(1, n + 1) if sizes[c] >= min_voxels]
    kept.sort(key=lambda c: -sizes[c])
    centres = ndimage.center_of_mass(np.ones(labels.shape, np.uint8), labels, kept) if kept else []
    return [
        FractureRegion(
            int(sizes[c]),
            tuple(inside.get(c, ())),
            tuple(float(v) for v in fracture_probability.voxel_to_world(np.add(centre, offset))),
        )
        for c, centre in zip(kept, centres, strict=True)
    ]


def vertebra_scores(
    fracture_probability: Image,
    centroids_mm: dict[int, np.ndarray],
    *,
    cube_size_vox: int = 10,
    sigma_vox: float | None = None,
    perturb_sigma_mm: float = 0.0,
    rng: np.random.Generator | None = None,
) -> dict[int, float]:
    """Gaussian-weighted mean fracture probability in a cube around each centroid.

    Args:
        fracture_probability: p(fracture) ``Image`` (any grid; distances use its voxels).
        centroids_mm: VerSe label -> world RAS+ mm.
        cube_size_vox: cube edge in voxels (paper: 10, chosen by cross-validation).
        sigma_vox: Gaussian sigma in voxels; default ``cube_size_vox / 4`` (our choice: the
            cube edge spans +-2 sigma).
        perturb_sigma_mm: std of Gaussian noise added to each centroid coordinate (paper: 3 mm
            to simulate automatic localisation); needs ``rng``.
        rng: generator of the perturbation.

    Returns:
        label -> score in [0, 1]; NaN when the cube lies outside the image.
    """
    data = np.asarray(fracture_probability.data, dtype=np.float32)
    sigma = sigma_vox if sigma_vox is not None else cube_size_vox / 4.0
    half = cube_size_vox / 2.0
    out = {}
    for label, centre in centroids_mm.items():
        c = np.asarray(centre, float)
        if perturb_sigma_mm > 0:
            if rng is None:
                raise ValueError("perturb_sigma_mm needs an rng")
            c = c + rng.normal(0.0, perturb_sigma_mm, 3)
        ijk = fracture_probability.world_to_voxel(c)
        lo = np.maximum(np.ceil(ijk - half).astype(int), 0)
        hi = np.minimum(np.floor(ijk + half).astype(int) + 1, data.shape)
        if np.any(hi <= lo):
            out[label] = float("nan")
            continue
        grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)], indexing="ij")
        d2 = sum((g - x) ** 2 for g, x in zip(grids, ijk, strict=True))
        w = np.exp(-d2 / (2 * sigma**2))
        block = data[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        out[label] = float((w * block).sum() / w.sum())
    return out

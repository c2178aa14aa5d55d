"""Prepared training data of the voxel classifier: normalised 1 mm scans with ellipsoid labels.

A :class:`VoxelCase` holds one scan as the network sees it (RAS, 1 mm, z-scored) with its
3-class label image on the same grid. :func:`segment_batch` turns sampled centres into the
(high-res, low-res, target) arrays of one training step.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np

from spinefx.datasets.voxel_labels import IGNORE_LABEL, EllipsoidOptions, labels_from_records
from spinefx.datasets.voxel_sampling import (
    NetworkView,
    apply_augmentation,
    border_intensity,
    draw_augmentation,
    extract_segment,
    prepare_voxel_input,
    sample_centres_by_class,
    segment_pair,
)
from spinefx.errors import SpinefxError
from spinefx.image import Image
from spinefx.records import Case, VertebraRecord

log = logging.getLogger(__name__)


@dataclass
class VoxelCase:
    """One scan ready for voxel classification.

    Attributes:
        case_id: identifier.
        view: the network's input (normalised RAS isotropic image + its intensity transform);
            ``image`` is its image.
        labels: ``uint8`` label ``Image`` on the same grid (0/1/2, 255 ignore).
        vertebrae: annotated vertebrae (centroids in world mm, grades).
        pad_value: border intensity of ``image`` (segment padding).
        patient_id: patient of the scan (cross-validation folds are by patient).
    """

    case_id: str
    view: NetworkView
    labels: Image
    vertebrae: tuple[VertebraRecord, ...]
    pad_value: float
    patient_id: str = ""

    @property
    def image(self) -> Image:
        """The normalised input image (``view.image``)."""
        return self.view.image

    @functools.cached_property
    def class_voxels(self) -> dict[int, np.ndarray]:
        """Flat voxel indices of each label class present (255 excluded), computed once."""
        flat = self.labels.data.ravel()
        index = np.int32 if flat.size < 2**31 else np.int64  # half the memory of int64
        return {
            int(k): np.flatnonzero(flat == k).astype(index)
            for k in np.unique(flat)
            if k != IGNORE_LABEL
        }

    @property
    def fractured(self) -> bool:
        """Patient label: any graded vertebra with Genant grade >= 1."""
        return any(bool(v.fractured) for v in self.vertebrae if not v.foreign_material)


def make_voxel_case(
    case_id: str,
    scan: Image,
    vertebrae,
    *,
    include_cervical: bool = False,
    ellipsoid: EllipsoidOptions | None = None,
    spacing_mm: float = 1.0,
    patient_id: str = "",
    normalisation: str = "scan_zscore",
) -> VoxelCase:
    """Prepare an in-memory scan (HU) and its vertebra records at ``spacing_mm`` isotropic."""
    from spinefx.conventions import is_cervical

    records = tuple(v for v in vertebrae if include_cervical or not is_cervical(v.vertebra_label))
    view = prepare_voxel_input(scan, spacing_mm=spacing_mm, normalisation=normalisation)
    labels = labels_from_records(view.image, records, options=ellipsoid)
    return VoxelCase(
        case_id=case_id,
        view=view,
        labels=labels,
        vertebrae=records,
        pad_value=border_intensity(view.image.data),
        patient_id=patient_id or case_id,
    )


def load_voxel_cases(
    cases: list[Case],
    *,
    include_cervical: bool = False,
    ellipsoid: EllipsoidOptions | None = None,
    spacing_mm: float = 1.0,
    normalisation: str = "scan_zscore",
) -> tuple[list[VoxelCase], list[tuple[str, str]]]:
    """Load and prepare dataset cases; a bad case is logged, reported and skipped.

    Returns:
        ``(prepared, problems)`` with problems as ``(case_id, message)``.
    """
    from spinefx.io import load_scan
    from spinefx.progress import progress

    out, problems = [], []
    for case in progress(cases, desc="preparing scans"):
        try:
            if case.scan_path is None:
                raise SpinefxError("case has no CT scan")
            if not any(v.centroid_mm is not None for v in case.vertebrae):
                raise SpinefxError("case has no vertebra centroids")
            scan = load_scan(case.scan_path)
            out.append(
                make_voxel_case(
                    case.case_id,
                    scan,
                    case.vertebrae,
                    include_cervical=include_cervical,
                    ellipsoid=ellipsoid,
                    spacing_mm=spacing_mm,
                    patient_id=case.patient,
                    normalisation=normalisation,
                )
            )
        except (SpinefxError, OSError) as exc:
            log.warning("skipping case %s: %s", case.case_id, exc)
            problems.append((case.case_id, str(exc)))
    return out, problems


def segment_batch(
    case: VoxelCase,
    centres: np.ndarray,
    geometry,
    *,
    rng: np.random.Generator | None = None,
    augment: dict | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segments of one case around sampled centre voxels.

    Args:
        case: prepared case.
        centres: ``(n, 3)`` voxel indices (centre of each output block).
        geometry: ``SegmentGeometry`` of the model.
        rng: generator for augmentation draws; None disables augmentation.
        augment: keyword options of :func:`draw_augmentation`.

    Returns:
        ``(high (n, *input_vox), low (n, *lowres_input_vox), target (n, *output_vox))`` with
        float32 intensities and int64 targets (255 = ignore).
    """
    out_vox = np.asarray(geometry.output_vox)
    highs, lows, targets = [], [], []
    for centre in centres:
        start = np.asarray(centre) - (out_vox - 1) // 2
        high, low = segment_pair(case.image.data, start, geometry, pad_value=case.pad_value)
        target = extract_segment(case.labels.data, start, size_vox=out_vox, pad_value=0)
        if rng is not None:
            params = draw_augmentation(rng, **(augment or {}))
            high, low, target = apply_augmentation(
                [high, low, target], params, intensity_mask=[True, True, False]
            )
        highs.append(high)
        lows.append(low)
        targets.append(target)
    return (
        np.stack(highs).astype(np.float32),
        np.stack(lows).astype(np.float32),
        np.stack(targets).astype(np.int64),
    )


def sample_segments(
    cases: list[VoxelCase],
    n_segments: int,
    geometry,
    *,
    rng: np.random.Generator,
    class_proportions,
    augment: dict | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class-weighted segments of one sub-epoch, balanced over the whole set of ``cases``.

    The class shares hold for the sub-epoch as a whole (DeepMedic's sampling): the
    ``round(n * p_c)`` centres of class ``c`` are spread uniformly over the scans that contain
    ``c``. Balancing per scan instead would give the fractured class only the share of the
    fractured scans (about 1/8 of all segments on a typical dataset), and the network learns to
    never predict it. A class no scan contains gives its share to the others.
    """
    n_classes = len(class_proportions)
    has_class = np.array([[k in c.class_voxels for k in range(n_classes)] for c in cases])
    props = np.where(has_class.any(axis=0), np.asarray(class_proportions, dtype=float), 0.0)
    if props.sum() == 0:
        raise SpinefxError("no labelled voxel in any training scan")
    counts = rng.multinomial(n_segments, props / props.sum())
    per_case = np.zeros((len(cases), n_classes), dtype=int)
    for k, n_k in enumerate(counts):
        holders = np.flatnonzero(has_class[:, k])
        if n_k and holders.size:
            np.add.at(per_case[:, k], rng.choice(holders, size=int(n_k)), 1)
    parts = []
    for case, case_counts in zip(cases, per_case, strict=True):
        if case_counts.sum() == 0:
            continue
        centres = sample_centres_by_class(
            case.class_voxels, case_counts, case.labels.shape, rng=rng
        )
        parts.append(
            segment_batch(
                case, centres, geometry, rng=rng if augment is not None else None, augment=augment
            )
        )
    high, low, target = (np.concatenate(p) for p in zip(*parts, strict=True))
    return high, low, target


def load_voxel_cases_for(
    cases: list[Case], config
) -> tuple[list[VoxelCase], list[tuple[str, str]]]:
    """:func:`load_voxel_cases` with the settings of a ``VoxelTrainingConfig`` (cervical
    levels, ellipsoid labels, input spacing and intensity normalisation): how training,
    cross-validation and calibration all prepare their scans."""
    return load_voxel_cases(
        cases,
        include_cervical=config.include_cervical,
        ellipsoid=config.ellipsoid,
        spacing_mm=config.model.input_spacing_mm,
        normalisation=config.model.intensity_normalisation,
    )

"""Mask-driven rendering: real vertebra masks with official grades rendered into CT datasets.

Real fracture-labelled CT is scarce; real vertebra masks with official Genant grades are not.
A label map keeps the real fracture shapes, and everything else is randomised per scan
(SynthSeg-style domain randomisation): :func:`sample_render_params` / :func:`render_ct` (see
:mod:`spinefx.synthesis.mask_scan`) make one CT, :func:`generate_mask_render_dataset` writes
a VerSe-layout dataset of them, exactly like :mod:`spinefx.synthesis.dataset`::

    <out>/rawdata/sub-mr0001/sub-mr0001_ct.nii.gz               int16 HU
    <out>/derivatives/sub-mr0001/sub-mr0001_seg-vert_msk.nii.gz  uint8 VerSe labels (deformed)
    <out>/derivatives/sub-mr0001/sub-mr0001_seg-subreg_ctd.json  body centroids, VerSe JSON
    <out>/fracture_grades.csv    long VerSe form: the source scan's official grades, unchanged
    <out>/synthesis_truth.csv    per vertebra: grade, shape, source subject and scan
    <out>/sources.csv            case_id, source, source_subject, licence, shippable
    <out>/synthesis_config.yaml  seed, config and the source subjects

Case ``i`` uses ``case_rng(seed, i)`` and subject ``order[i % n]`` of a seeded permutation of
the subjects (sorted by id), so it does not depend on ``n_scans``. Each case renders one mask
of its subject (drawn), cropped to the vertebrae +- ``margin_mm``, on that crop's grid or, with
``resample_probability``, on a new grid of drawn spacing and orientation (the grid written).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import yaml

from spinefx.atomic import write_bytes_atomic, write_text_atomic
from spinefx.config import to_dict
from spinefx.conventions import SHAPE_CODES, VERTEBRA_LEVELS, level_name
from spinefx.errors import InputError
from spinefx.image import Image
from spinefx.io.centroids import save_centroids
from spinefx.morphometry.centroids import body_centroids
from spinefx.preprocessing.orientation import reorient
from spinefx.synthesis.dataset import GRADE_COLUMNS, _csv_text, case_rng, nifti_bytes
from spinefx.synthesis.mask_render_config import MaskRenderConfig
from spinefx.synthesis.mask_scan import RenderParams, render_ct, sample_render_params
from spinefx.synthesis.real_sources import SOURCES_COLUMNS, RealSubject, load_real_mask

log = logging.getLogger(__name__)

__all__ = [
    "MaskRenderConfig",
    "RenderParams",
    "case_id",
    "crop_to_labels",
    "generate_mask_render_dataset",
    "render_ct",
    "sample_render_params",
]

SOURCE = "mask_render"
TRUTH_COLUMNS = (
    "case_id",
    "label",
    "level",
    "genant_grade",
    "shape",
    "foreign_material",
    "source_subject",
    "source_scan",
    "deform_factor",
)


def case_id(index: int) -> str:
    """Subject id of case ``index`` (0-based): ``sub-mr0001`` for index 0."""
    return f"sub-mr{index + 1:04d}"


def crop_to_labels(mask: Image, *, margin_mm: float) -> Image:
    """The sub-grid of ``mask`` around its labelled voxels +- ``margin_mm`` (exact, no resampling).

    Raises:
        InputError: when the mask holds no label.
    """
    from spinefx.preprocessing.resample import crop_to

    data = np.asarray(mask.data)
    if not data.any():
        raise InputError("the vertebra mask is empty", fix="pass a mask with vertebra labels")
    return crop_to(mask, data > 0, margin_vox=np.ceil(margin_mm / mask.spacing_mm).astype(int))


def random_grid(
    crop: Image, rng: np.random.Generator, config: MaskRenderConfig
) -> tuple[tuple[int, int, int], np.ndarray] | None:
    """A new grid over the crop's extent (drawn orientation and spacing), or None to keep it.

    The slices run along the third array axis of the drawn orientation (``PIR``: sagittal
    slices, ``LPS``: axial); the grid is centred on the crop and covers its physical extent.
    """
    if rng.random() >= config.resample_probability:
        return None
    codes = str(rng.choice(config.orientations))
    inplane = float(rng.uniform(*config.inplane_spacing_mm_range))
    thick = float(rng.uniform(*config.slice_spacing_mm_range))
    oriented = reorient(crop, codes)
    spacing = np.array([inplane, inplane, thick])
    shape = np.maximum(1, np.round(oriented.extent_mm / spacing)).astype(int)
    affine = np.eye(4)
    affine[:3, :3] = oriented.affine[:3, :3] / oriented.spacing_mm * spacing
    centre = oriented.voxel_to_world((np.asarray(oriented.shape) - 1) / 2.0)
    affine[:3, 3] = centre - affine[:3, :3] @ ((shape - 1) / 2.0)
    return tuple(int(n) for n in shape), affine  # type: ignore[return-value]


def _grade_cells(label: int, scan) -> tuple[str, str]:
    if label in scan.foreign_material:
        return "x", ""
    if label not in scan.grades:
        return "", ""
    grade, shape = scan.grades[label]
    return str(int(grade)), str(SHAPE_CODES[shape] if shape else 0)


def _make_case(job) -> tuple[list[dict], list[dict], dict] | None:
    """Render and write one case (a process-pool task); its grade, truth and source rows."""
    subject, root, config, seed, index = job
    subject_name = case_id(index)
    rng = case_rng(seed, index)
    scan = subject.scans[int(rng.integers(len(subject.scans)))]
    try:
        crop = crop_to_labels(load_real_mask(scan), margin_mm=config.margin_mm)
    except InputError as exc:
        log.warning("%s: skipped, the mask of %s cannot be used: %s", subject_name, scan, exc)
        return None
    params = sample_render_params(rng, config)
    ct, labels = render_ct(crop, params, grid=random_grid(crop, rng, config))
    labels = labels.with_data(np.asarray(labels.data).astype(np.uint8))
    raw, der = root / "rawdata" / subject_name, root / "derivatives" / subject_name
    write_bytes_atomic(raw / f"{subject_name}_ct.nii.gz", nifti_bytes(ct, np.int16))
    write_bytes_atomic(der / f"{subject_name}_seg-vert_msk.nii.gz", nifti_bytes(labels, np.uint8))
    save_centroids(body_centroids(labels), der / f"{subject_name}_seg-subreg_ctd.json", ct)
    grades, truth = [], []
    for label in sorted(int(v) for v in np.unique(labels.data) if int(v) in VERTEBRA_LEVELS):
        grade, shape = _grade_cells(label, scan)
        row = {"verse_ID": index + 1, "subject_ID": index + 1, "split": "training"}
        grades.append({**row, "level": level_name(label), "label": label, "grade": grade,
                       "shape": shape})  # fmt: skip
        official = scan.grades.get(label)
        truth.append(
            {
                "case_id": subject_name,
                "label": label,
                "level": level_name(label),
                "genant_grade": "" if official is None else int(official[0]),
                "shape": (official[1] or "") if official else "",
                "foreign_material": int(label in scan.foreign_material),
                "source_subject": subject.subject_id,
                "source_scan": scan.scan_id,
                "deform_factor": ct.meta["deform_factor"],
            }
        )
    source = {
        "case_id": subject_name,
        "source": SOURCE,
        "source_subject": subject.subject_id,
        "licence": subject.licence,
        "shippable": subject.shippable,
    }
    return grades, truth, source


def generate_mask_render_dataset(
    out_dir: str | Path,
    *,
    subjects: list[RealSubject],
    n_scans: int,
    seed: int,
    config: MaskRenderConfig | None = None,
    workers: int = 1,
) -> Path:
    """Render ``n_scans`` CTs from the subjects' real masks as a VerSe-layout dataset.

    Args:
        out_dir: dataset root (created).
        subjects: real subjects (:func:`spinefx.synthesis.real_sources.find_real_subjects`);
            those without a scan are left out.
        n_scans: number of scans.
        seed: dataset seed; the same seed, config and subjects give byte-identical files.
        config: the ranges (default :class:`MaskRenderConfig()`).
        workers: processes rendering in parallel (the files do not depend on it).

    Returns:
        The dataset root.

    Raises:
        InputError: when no subject has a mask.
    """
    root = Path(out_dir)
    config = config or MaskRenderConfig()
    usable = sorted((s for s in subjects if s.scans), key=lambda s: s.subject_id)
    if not usable:
        raise InputError(
            "no real subject with a vertebra mask", fix="pass find_real_subjects(root)"
        )
    order = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(2**31,)))
    order = order.permutation(len(usable))
    jobs = [
        (usable[order[i % len(usable)]], root, config, int(seed), i) for i in range(int(n_scans))
    ]
    from spinefx.synthesis.resume import finish_cases, run_generator

    subjects_used = [
        {"subject_id": s.subject_id, "scans": [scan.scan_id for scan in s.scans]} for s in usable
    ]
    results = run_generator(  # an interrupted run's finished cases are kept
        _make_case,
        jobs,
        root=root,
        names=[case_id(i) for i in range(int(n_scans))],
        generator=SOURCE,
        seed=seed,
        config=config,
        sources=subjects_used,
        workers=workers,
        desc="mask render",
    )
    done = [r for r in results if r is not None]
    grades = [row for r in done for row in r[0]]
    truth = [row for r in done for row in r[1]]
    write_text_atomic(root / "fracture_grades.csv", _csv_text(grades, GRADE_COLUMNS))
    write_text_atomic(root / "synthesis_truth.csv", _csv_text(truth, TRUTH_COLUMNS))
    write_text_atomic(root / "sources.csv", _csv_text([r[2] for r in done], SOURCES_COLUMNS))
    provenance = {
        "source": SOURCE,
        "seed": int(seed),
        "n_scans": int(n_scans),
        "config": to_dict(config),
        "subjects": [
            {
                "subject_id": s.subject_id,
                "collection": s.collection,
                "licence": s.licence,
                "shippable": bool(s.shippable),
                "scans": [scan.scan_id for scan in s.scans],
            }
            for s in usable
        ],
    }
    write_text_atomic(root / "synthesis_config.yaml", yaml.safe_dump(provenance, sort_keys=False))
    finish_cases(root)
    log.info("rendered %d of %d scans from real masks into %s", len(done), n_scans, root)
    return root

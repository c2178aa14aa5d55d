"""Fracture simulation on real tissue: a training-data source of real CT with known grades.

Healthy vertebrae of real CTs are deformed into Genant grade 1-3 wedge, biconcave and crush
fractures (:mod:`spinefx.synthesis.deformation`, one case:
:func:`~spinefx.synthesis.real_fracture_case.make_real_fracture_case`), so a network sees real
texture with a known grade. Real fractures keep their official grades; metal is ``x``,
ungraded vertebrae are empty. Each case's canvas is one CT of one subject, the CTs cycled in a
seeded order; case ``i`` is drawn from ``case_rng(seed, i)``. Layout (as
:mod:`spinefx.synthesis.dataset`)::

    <out>/rawdata/sub-rf0001/sub-rf0001_ct.nii.gz                int16 HU, the canvas grid
    <out>/derivatives/sub-rf0001/sub-rf0001_seg-vert_msk.nii.gz   uint8 VerSe labels
    <out>/derivatives/sub-rf0001/sub-rf0001_seg-subreg_ctd.json   body centroids (VerSe JSON)
    <out>/fracture_grades.csv      long VerSe form (io.grades.LONG_COLUMNS)
    <out>/synthesis_truth.csv      per vertebra: intended / own-height loss, source and measured grade
    <out>/sources.csv              case_id, source, source_subject, licence, shippable
    <out>/synthesis_config.yaml    config, seed and the source subject and scan of every case
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import yaml

from spinefx.atomic import write_bytes_atomic, write_text_atomic
from spinefx.config import to_dict
from spinefx.conventions import level_name, spine_rank
from spinefx.errors import InputError
from spinefx.io.centroids import centroids_from_mask, save_centroids
from spinefx.synthesis.dataset import GRADE_COLUMNS, _csv_text, case_rng, nifti_bytes
from spinefx.synthesis.deformation import deform_scan, simulate_fracture
from spinefx.synthesis.genant_deformation import deform_to_genant
from spinefx.synthesis.real_fracture_case import (
    RealFractureCase,
    RealFractureConfig,
    make_real_fracture_case,
)
from spinefx.synthesis.real_sources import SOURCES_COLUMNS, RealScan, RealSubject, load_real_pair

log = logging.getLogger(__name__)

__all__ = [
    "RealFractureCase",
    "RealFractureConfig",
    "deform_scan",
    "deform_to_genant",
    "generate_real_fracture_dataset",
    "make_real_fracture_case",
    "simulate_fracture",
]

SOURCE_NAME = "real_fracture"
TRUTH_COLUMNS = (
    "case_id", "label", "level", "genant_grade", "shape", "height_loss", "own_height_loss",
    "superior_fraction", "simulated", "source_grade", "foreign_material", "fully_in_view",
    "measured_grade", "measured_loss",
)  # fmt: skip


def case_id(index: int) -> str:
    """Subject id of case ``index`` (0-based): ``sub-rf0001`` for index 0."""
    return f"sub-rf{index + 1:04d}"


def canvas_index(seed: int, index: int, n_canvases: int) -> int:
    """The canvas of case ``index``: every canvas once per cycle, each cycle in a seeded order."""
    cycle = np.random.SeedSequence(int(seed), spawn_key=(2**31 - 1, index // n_canvases))
    return int(np.random.default_rng(cycle).permutation(n_canvases)[index % n_canvases])


def _write_case(case: RealFractureCase, root: Path, subject: str) -> None:
    raw, der = root / "rawdata" / subject, root / "derivatives" / subject
    hu = np.clip(np.rint(case.ct.data), -32768, 32767)
    write_bytes_atomic(raw / f"{subject}_ct.nii.gz", nifti_bytes(case.ct.with_data(hu), np.int16))
    write_bytes_atomic(der / f"{subject}_seg-vert_msk.nii.gz", nifti_bytes(case.mask, np.uint8))
    centroids = centroids_from_mask(case.mask)
    centroids.update({k: r.centroid_mm for k, r in case.measured.items()})
    save_centroids(dict(sorted(centroids.items())), der / f"{subject}_seg-subreg_ctd.json", case.ct)


def _truth_row(case: RealFractureCase, subject: str, label: int, scan: RealScan) -> dict:
    grade = case.grades[label][0]
    t, own = case.truth.get(label, (None, 0.0))
    m, source = case.measured.get(label), scan.grades.get(label)
    shape = t.shape if t else source[1] if source and grade not in ("", "0", "x") else None
    return {
        "case_id": subject,
        "label": label,
        "level": level_name(label),
        "genant_grade": grade,
        "shape": shape or "",
        "height_loss": f"{t.height_loss:.4f}" if t else "",
        "own_height_loss": f"{own:.4f}" if t else "",
        "superior_fraction": f"{t.superior_fraction:.3f}" if t else "",
        "simulated": int(t is not None),
        "source_grade": "" if source is None else source[0],
        "foreign_material": int(grade == "x"),
        "fully_in_view": int(grade != ""),
        "measured_grade": "" if m is None or m.genant_grade is None else m.genant_grade,
        "measured_loss": "" if m is None else f"{m.height_loss:.4f}",
    }


def _rows(case: RealFractureCase, index: int, scan: RealScan) -> tuple[list[dict], list[dict]]:
    subject, grade_rows, truth_rows = case_id(index), [], []
    for k in sorted(case.grades, key=spine_rank):
        grade, shape = case.grades[k]
        grade_rows.append(
            {
                "verse_ID": index + 1,
                "subject_ID": index + 1,
                "split": "training",
                "level": level_name(k),
                "label": k,
                "grade": grade,
                "shape": shape,
            }
        )
        truth_rows.append(_truth_row(case, subject, k, scan))
    return grade_rows, truth_rows


def _make_case(job) -> tuple[list[dict], list[dict], dict | None, str]:
    """Make and write one case (a process-pool task): grade rows, truth rows, source, error."""
    subject, scan, config, root, seed, index = job
    try:
        ct, mask = load_real_pair(scan)
        case = make_real_fracture_case(ct, mask, scan, config, case_rng(seed, index))
    except (InputError, ValueError) as exc:  # one bad canvas is reported, the others finish
        log.warning("%s: skipped (canvas %s): %s", case_id(index), scan.scan_id, exc)
        return [], [], None, str(exc)
    _write_case(case, root, case_id(index))
    source = {
        "case_id": case_id(index),
        "source": SOURCE_NAME,
        "source_subject": subject.subject_id,
        "licence": subject.licence,
        "shippable": subject.shippable,
    }
    return (*_rows(case, index, scan), source, "")


def generate_real_fracture_dataset(
    out_dir: str | Path,
    *,
    subjects: list[RealSubject],
    n_scans: int,
    seed: int,
    config: RealFractureConfig | None = None,
    workers: int = 1,
) -> Path:
    """Write ``n_scans`` cases of simulated fractures on the real CTs of ``subjects``.

    Args:
        out_dir: dataset root (created).
        subjects: real subjects (from :func:`~spinefx.synthesis.real_sources.find_real_subjects`);
            only their scans with a CT are used.
        n_scans: number of cases.
        seed: dataset seed; the same seed, subjects and config give byte-identical files.
        config: simulation settings (default :class:`RealFractureConfig`).
        workers: processes making cases in parallel (same files for any number).

    Returns:
        The dataset root. A canvas that cannot be used (unreadable, no measurable vertebra) is
        logged and skipped; ``synthesis_config.yaml`` names it with the error.
    """
    root, config = Path(out_dir), config or RealFractureConfig()
    canvases = [(s, scan) for s in subjects for scan in s.ct_scans]
    if not canvases:
        raise ValueError("no subject has a CT to simulate fractures on; pass subjects with CTs")
    jobs = [
        (*canvases[canvas_index(seed, i, len(canvases))], config, root, seed, i)
        for i in range(int(n_scans))
    ]
    from spinefx.synthesis.resume import finish_cases, run_generator

    results = run_generator(  # in a pool that stops on Ctrl-C; an interrupted run's cases are kept
        _make_case,
        jobs,
        root=root,
        names=[case_id(i) for i in range(int(n_scans))],
        generator=SOURCE_NAME,
        seed=seed,
        config=config,
        sources=[[s.subject_id, scan.scan_id] for s, scan in canvases],
        workers=workers,
        desc="real-fx",
    )
    grades = [row for r in results for row in r[0]]
    truth = [row for r in results for row in r[1]]
    write_text_atomic(root / "fracture_grades.csv", _csv_text(grades, GRADE_COLUMNS))
    write_text_atomic(root / "synthesis_truth.csv", _csv_text(truth, TRUTH_COLUMNS))
    sources = [r[2] for r in results if r[2] is not None]
    write_text_atomic(root / "sources.csv", _csv_text(sources, SOURCES_COLUMNS))
    provenance = {
        "source": SOURCE_NAME,
        "seed": int(seed),
        "n_scans": int(n_scans),
        "config": to_dict(config),
        "cases": {
            case_id(j[-1]): {"subject": j[0].subject_id, "scan": j[1].scan_id, "error": r[3]}
            if r[3]
            else {"subject": j[0].subject_id, "scan": j[1].scan_id}
            for j, r in zip(jobs, results, strict=True)
        },
    }
    write_text_atomic(root / "synthesis_config.yaml", yaml.safe_dump(provenance, sort_keys=False))
    finish_cases(root)
    log.info("wrote %d simulated-fracture cases on real CT to %s", len(sources), root)
    return root

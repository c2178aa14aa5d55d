"""Prepare a dataset: one spine-aligned patch per vertebra, a manifest, an errors file.

``out_dir`` layout::

    prepare.yaml                      settings (size_vox, spacing_mm, include_cervical)
    patches/<case_id>/<LEVEL>.nii     int16 HU patch, patch->world affine
    patches/<case_id>/patches.csv     per-case fragment, written last (marks the case done)
    manifest.csv                      all vertebrae (MANIFEST_COLUMNS), rebuilt at the end
    errors.csv                        cases that failed (case_id, scan_path, error)

Every file is written atomically. A re-run skips cases whose fragment and patches are all
present and valid and recomputes the others; grades come from the current annotations, so a
corrected grade table only needs a re-run.
"""

from __future__ import annotations

import csv
import io as _stringio
import logging
import os
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from spinefx.atomic import write_text_atomic
from spinefx.config import load_config, save_config, to_dict
from spinefx.conventions import VERTEBRA_LEVELS, is_cervical, level_name
from spinefx.errors import InputError
from spinefx.records import Case, VertebraRecord

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = (
    "case_id",
    "patient_id",
    "vertebra_label",
    "level",
    "genant_grade",
    "fractured",
    "shape",
    "foreign_material",
    "split",
    "path",
    "out_of_view_fraction",
    "scan_path",
)
ERROR_COLUMNS = ("case_id", "scan_path", "error")
_FRAGMENT_COLUMNS = ("vertebra_label", "level", "path", "out_of_view_fraction")
_FRAGMENT_NAME = "patches.csv"


@dataclass(frozen=True)
class PrepareConfig:
    """Settings a prepared folder was made with (saved as ``prepare.yaml``)."""

    size_vox: int = 96
    spacing_mm: float = 1.0
    include_cervical: bool = False


@dataclass
class PrepareResult:
    """What :func:`prepare_dataset` did.

    Attributes:
        out_dir: the output folder.
        manifest: one dict per vertebra patch with :data:`MANIFEST_COLUMNS`.
        errors: one dict per failed case with :data:`ERROR_COLUMNS`.
        n_cases: cases given; ``n_resumed`` of them were already done.
        warnings: vertebrae skipped (e.g. no centroid), one line each.
    """

    out_dir: Path
    manifest: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    n_cases: int = 0
    n_resumed: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / "manifest.csv"

    @property
    def errors_path(self) -> Path:
        return self.out_dir / "errors.csv"

    @property
    def n_cases_ok(self) -> int:
        return self.n_cases - len(self.errors)

    @property
    def fractured_by_grade(self) -> dict[str, int]:
        """Count of patches per Genant grade (``""`` = ungraded)."""
        return dict(sorted(Counter(str(r["genant_grade"]) for r in self.manifest).items()))

    @property
    def mean_out_of_view_fraction(self) -> float:
        values = [float(r["out_of_view_fraction"]) for r in self.manifest]
        return float(np.mean(values)) if values else 0.0


def prepare_dataset(
    cases: Sequence[Case],
    out_dir: str | os.PathLike,
    *,
    size_vox: int = 96,
    spacing_mm: float = 1.0,
    workers: int = 1,
    include_cervical: bool = False,
    overwrite: bool = False,
    skipped: Sequence = (),
) -> PrepareResult:
    """Extract the spine-aligned patch of every vertebra of ``cases`` into ``out_dir``.

    Each case (one scan) is loaded once and all its vertebrae are extracted; cases run in
    ``workers`` processes. A failing case is recorded in ``errors.csv`` and skipped.

    Args:
        cases: from :func:`spinefx.io.load_dataset`. Centroids come from the records
            (``centroid_mm``), else the case's centroid JSON, else its vertebra mask.
        out_dir: output folder (created).
        size_vox: patch edge in voxels.
        spacing_mm: patch voxel size in mm.
        workers: parallel processes (1 = in this process).
        include_cervical: also extract C1-C7 (excluded by default, as in the paper).
        overwrite: delete previous results instead of resuming.
        skipped: problems of cases the dataset loader already dropped
            (:class:`spinefx.io.DatasetProblem`, from ``scan_dataset``): they go into
            ``errors.csv`` and the case count too, so the summary covers every case.

    Returns:
        :class:`PrepareResult` with the manifest rows and the errors.

    Raises:
        InputError: duplicate case ids, bad settings, or ``out_dir`` prepared with other
            settings (and ``overwrite`` not set).
    """
    config = _check_settings(size_vox, spacing_mm, include_cervical, workers)
    out_dir = Path(out_dir)
    _check_case_ids(cases)
    _init_out_dir(out_dir, config, overwrite=overwrite)
    loaded = {c.case_id for c in cases}
    dropped: dict[str, tuple[str, str]] = {}
    for problem in skipped:  # a loaded case may have warnings too: only dropped ones count
        if problem.case_id not in loaded:
            old = dropped.get(problem.case_id, ("", ""))
            text = f"{old[0]}; {problem.problem}" if old[0] else problem.problem
            dropped[problem.case_id] = (text, problem.path or old[1])
    result = PrepareResult(out_dir=out_dir, n_cases=len(cases) + len(dropped))
    todo = [c for c in cases if not _case_done(c, out_dir, config)]
    result.n_resumed = len(cases) - len(todo)
    failed: dict[str, str] = {}
    for case_id, error, warnings in _run(todo, out_dir, config, workers, result.n_resumed):
        result.warnings.extend(warnings)
        if error is not None:
            failed[case_id] = error
            log.warning("case %s failed and was skipped: %s", case_id, error)
    for line in result.warnings:
        log.warning("%s", line)
    for case in cases:
        if case.case_id in failed:
            scan = "" if case.scan_path is None else str(case.scan_path)
            result.errors.append(
                {"case_id": case.case_id, "scan_path": scan, "error": failed[case.case_id]}
            )
        else:
            result.manifest.extend(_manifest_rows(case, out_dir))
    result.errors.extend(
        {"case_id": case_id, "scan_path": path, "error": f"not loaded: {text}"}
        for case_id, (text, path) in sorted(dropped.items())
    )
    write_text_atomic(result.manifest_path, _csv_text(MANIFEST_COLUMNS, result.manifest))
    write_text_atomic(result.errors_path, _csv_text(ERROR_COLUMNS, result.errors))
    return result


# --- settings and folder -------------------------------------------------------------------
def _check_settings(size_vox, spacing_mm, include_cervical, workers) -> PrepareConfig:
    if int(size_vox) < 1 or not float(spacing_mm) > 0 or int(workers) < 1:
        raise InputError(
            f"invalid settings size_vox={size_vox}, spacing_mm={spacing_mm}, workers={workers}",
            fix="use size_vox >= 1, spacing_mm > 0 and workers >= 1",
        )
    return PrepareConfig(int(size_vox), float(spacing_mm), bool(include_cervical))


def _check_case_ids(cases: Sequence[Case]) -> None:
    for case in cases:
        if (
            not case.case_id
            or case.case_id in (".", "..")
            or any(sep in case.case_id for sep in ("/", "\\"))
        ):
            raise InputError(
                f"case id {case.case_id!r} cannot name a folder",
                path=case.scan_path,
                fix="use case ids without path separators (e.g. sub-verse004)",
            )
    counts = Counter(c.case_id for c in cases)
    dupes = sorted(k for k, n in counts.items() if n > 1)
    if dupes:
        raise InputError(
            f"case ids appear more than once: {dupes[:5]}",
            fix="give every scan a unique case_id (e.g. include session and split)",
        )


def _init_out_dir(out_dir: Path, config: PrepareConfig, *, overwrite: bool) -> None:
    settings = out_dir / "prepare.yaml"
    if settings.is_file():
        previous = load_config(settings, PrepareConfig)
        if overwrite:
            shutil.rmtree(out_dir / "patches", ignore_errors=True)
        elif previous != config:
            raise InputError(
                f"folder was prepared with {to_dict(previous)}, not {to_dict(config)}",
                path=settings,
                fix="prepare into a new --out folder, or pass overwrite=True (--overwrite) to "
                "replace it",
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, settings)


# --- resume ----------------------------------------------------------------------------------
def _case_dir(out_dir: Path, case_id: str) -> Path:
    return out_dir / "patches" / case_id


def _read_fragment(out_dir: Path, case_id: str) -> list[dict] | None:
    path = _case_dir(out_dir, case_id) / _FRAGMENT_NAME
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _case_done(case: Case, out_dir: Path, config: PrepareConfig) -> bool:
    from spinefx.preprocessing.patch_files import patch_file_is_valid

    rows = _read_fragment(out_dir, case.case_id)
    if rows is None:
        return False
    return all(patch_file_is_valid(out_dir / r["path"], size_vox=config.size_vox) for r in rows)


# --- work ------------------------------------------------------------------------------------
def _run(todo: list[Case], out_dir: Path, config: PrepareConfig, workers: int, resumed: int = 0):
    from functools import partial

    from spinefx.io.scan import ct_check_enabled
    from spinefx.parallel import run_jobs

    if not todo:
        return
    threads = max(1, (os.cpu_count() or 1) // max(int(workers), 1))
    yield from run_jobs(
        partial(_prepare_case_safely, out_dir=out_dir, config=config),
        todo,
        workers=workers,
        desc="prepare",
        already_done=resumed,  # Ctrl-C reports "N of M cases done" over the whole dataset
        mp_context=get_context("spawn"),  # SimpleITK's thread pool does not survive fork safely
        initializer=_init_worker,
        initargs=(threads, ct_check_enabled()),  # --no-ct-check reaches the workers
    )


def _init_worker(threads: int, ct_check: bool = True) -> None:
    import SimpleITK as sitk

    from spinefx.io.scan import set_ct_check

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    set_ct_check(ct_check)


def _prepare_case_safely(case: Case, out_dir: Path, config: PrepareConfig):
    """Run one case; any failure becomes an error message (the batch goes on)."""
    warnings: list[str] = []
    try:
        _prepare_case(case, out_dir, config, warnings)
    except Exception as exc:  # report and skip this case, whatever went wrong
        return case.case_id, f"{type(exc).__name__}: {exc}", warnings
    return case.case_id, None, warnings


def _prepare_case(case: Case, out_dir: Path, config: PrepareConfig, warnings: list[str]):
    from spinefx.io import load_scan
    from spinefx.preprocessing.patch_files import save_patch
    from spinefx.preprocessing.patches import extract_vertebra_patches

    if case.scan_path is None:
        raise InputError(f"case {case.case_id} has no CT scan", fix="add the scan path")
    scan = load_scan(case.scan_path)
    centroids = _case_centroids(case, scan)
    wanted = {r.vertebra_label for r in case.vertebrae} | set(centroids)
    wanted = {lab for lab in wanted if lab in VERTEBRA_LEVELS}
    if not config.include_cervical:
        wanted = {lab for lab in wanted if not is_cervical(lab)}
    for label in sorted(wanted - set(centroids)):
        warnings.append(f"{case.case_id} {level_name(label)}: no centroid, skipped")
    patches = (
        extract_vertebra_patches(
            scan,
            centroids,
            size_vox=config.size_vox,
            spacing_mm=config.spacing_mm,
            include_cervical=config.include_cervical,
            case_id=case.case_id,
        )
        if centroids
        else {}
    )
    case_dir = _case_dir(out_dir, case.case_id)
    for leftover in case_dir.glob(".*.part*"):  # temporary files of a killed earlier run
        leftover.unlink(missing_ok=True)
    rows = []
    for label, patch in patches.items():
        if label not in wanted:
            continue
        rel = Path("patches") / case.case_id / f"{level_name(label)}.nii"
        save_patch(patch, out_dir / rel)
        rows.append(
            {
                "vertebra_label": label,
                "level": level_name(label),
                "path": rel.as_posix(),
                "out_of_view_fraction": f"{patch.meta['out_of_view_fraction']:.6f}",
            }
        )
    fragment = case_dir / _FRAGMENT_NAME
    write_text_atomic(fragment, _csv_text(_FRAGMENT_COLUMNS, rows))


def _case_centroids(case: Case, scan) -> dict[int, np.ndarray]:
    """World centroids: annotation files first, record centroids override."""
    import spinefx.io as sio

    centroids: dict[int, np.ndarray] = {}
    if case.centroids_path is not None:
        centroids = dict(sio.load_centroids(case.centroids_path, scan))
    elif case.mask_path is not None and not any(r.centroid_mm for r in case.vertebrae):
        mask = sio.load_mask(case.mask_path)
        subregion = None
        if case.subregion_mask_path is not None:
            subregion = sio.load_mask(case.subregion_mask_path, known_labels=None)
        centroids = dict(sio.centroids_from_mask(mask, subregion_mask=subregion))
    for record in case.vertebrae:
        if record.centroid_mm is not None:
            centroids[record.vertebra_label] = np.asarray(record.centroid_mm, dtype=float)
    return centroids


# --- manifest --------------------------------------------------------------------------------
def _manifest_rows(case: Case, out_dir: Path) -> list[dict]:
    records = {r.vertebra_label: r for r in case.vertebrae}
    rows = []
    for frag in _read_fragment(out_dir, case.case_id) or []:
        label = int(frag["vertebra_label"])
        record = records.get(label) or VertebraRecord(case.case_id, label)
        grade = record.genant_grade
        rows.append(
            {
                "case_id": case.case_id,
                "patient_id": case.patient,
                "vertebra_label": label,
                "level": frag["level"],
                "genant_grade": "" if grade is None else int(grade),
                "fractured": "" if grade is None else int(grade >= 1),
                "shape": record.shape or "",
                "foreign_material": int(bool(record.foreign_material)),
                "split": record.split or case.split,
                "path": frag["path"],
                "out_of_view_fraction": frag["out_of_view_fraction"],
                "scan_path": "" if case.scan_path is None else str(case.scan_path),
            }
        )
    return rows


def _csv_text(columns: Sequence[str], rows: list[dict]) -> str:
    buffer = _stringio.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def load_prepare_config(out_dir: str | os.PathLike) -> PrepareConfig:
    """The settings a prepared folder was made with (``out_dir/prepare.yaml``)."""
    return load_config(Path(out_dir) / "prepare.yaml", PrepareConfig)


__all__ = [
    "ERROR_COLUMNS",
    "MANIFEST_COLUMNS",
    "PrepareConfig",
    "PrepareResult",
    "load_prepare_config",
    "prepare_dataset",
]

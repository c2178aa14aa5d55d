"""Dataset layouts -> :class:`spinefx.records.Case` lists, one record per vertebra.

Three layouts are detected by :func:`load_dataset`:

(a) **VerSe** (``rawdata/sub-<id>/[ses-*/]<name>_ct.nii.gz``, ``derivatives/sub-<id>/...
    <name>_seg-vert_msk.nii.gz``, ``_seg-subreg_msk``, ``_seg-subreg_ctd.json``; names
    ``sub-<letters><digits>[_split-<letters><digits>]``), joined to a grade table by series id
    (the digits of the ``split-`` entity, else of the ``sub-`` entity; VerSe19 names single-series
    subjects by subject = series) or, failing that, by the subject when it has one series. The
    grade table is ``grades=`` or a ``fracture_grades.csv`` at the dataset root. Files may also
    lie directly in the root folder (e.g. a single VerSe subject's derivatives).
(b) **BIDS-like with a per-scan TSV** (``labels.tsv`` at the root, as ctfu), joined by the
    TSV's ``ID`` = the file name before ``_ct``/``_seg-``. In ctfu the ``split-`` entity is a
    part of one scan, not a series id. A scan with masks but no CT (ctfu session 2014
    ``split-0``) becomes a case with ``scan_path=None`` (its centroids come from the mask grid)
    and is also listed as a problem, so jobs that need the CT can skip it knowingly.
(c) a **manifest CSV** for a user's own data: columns ``case_id, scan, centroids, mask, split,
    patient_id`` and per-level grade columns (``T12``, ``L1``, ... with 0-3 / ``x`` / empty);
    paths relative to the CSV.

Centroids are world RAS+ mm: from the centroid JSON when there is one, else the centre of mass
of each label of the vertebra mask (vertebral-body voxels only when a sub-region mask exists).
A case that cannot be read is reported in :attr:`DatasetLoad.problems` (and logged), never fatal.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from spinefx.conventions import LEVEL_LABELS, VERTEBRA_LEVELS
from spinefx.errors import InputError
from spinefx.image import Image
from spinefx.io.centroids import centroids_from_mask, load_centroids
from spinefx.io.grades import load_grade_table, normalise_id, normalise_split, parse_grade
from spinefx.io.nifti import read_nifti_geometry
from spinefx.io.scan import load_mask
from spinefx.records import Case, VertebraRecord

log = logging.getLogger(__name__)

#: File-name endings of the VerSe / BIDS-like layout and what they hold.
LAYOUT_SUFFIXES: dict[str, str] = {
    "_ct.nii.gz": "scan",
    "_ct.nii": "scan",
    "_seg-vert_msk.nii.gz": "mask",
    "_seg-vert_msk.nii": "mask",
    "_seg-subreg_msk.nii.gz": "subregion",
    "_seg-subreg_msk.nii": "subregion",
    "_seg-subreg_ctd.json": "centroids",
    "_seg-vb_ctd.json": "centroids",
}
GRADES_FILE = "fracture_grades.csv"
TSV_FILE = "labels.tsv"
_LEVEL_COLUMN = re.compile(r"^[CTL]\d{1,2}$", re.IGNORECASE)
_ENTITY = re.compile(r"^(?P<letters>[A-Za-z]*)(?P<digits>\d+)$")


@dataclass(frozen=True)
class DatasetProblem:
    """A case (or file) that was skipped or is incomplete, and why."""

    case_id: str
    problem: str
    path: str = ""


@dataclass
class DatasetLoad:
    """What :func:`scan_dataset` found: the usable cases and the problems met."""

    cases: list[Case] = field(default_factory=list)
    problems: list[DatasetProblem] = field(default_factory=list)

    def report(self, case_id: str, problem: str, path: object = "") -> None:
        log.warning("%s: %s%s", case_id, problem, f" ({path})" if path else "")
        self.problems.append(DatasetProblem(case_id, problem, str(path or "")))


def _problem_text(exc: Exception) -> str:
    """The message of a skipped case: an InputError's own text, else the unexpected error."""
    if isinstance(exc, InputError):
        return str(exc)
    log.debug("unexpected error while loading a case", exc_info=exc)
    return f"unexpected {type(exc).__name__}: {exc} (please report it)"


def load_dataset(
    path: str | Path, *, grades: str | Path | pd.DataFrame | None = None
) -> list[Case]:
    """Load a dataset of any supported layout (see module docstring) as cases.

    Args:
        path: dataset root folder, or a manifest ``.csv``.
        grades: grade table (path or tidy frame, see :mod:`spinefx.io.grades`) joined to the
            VerSe layout; default ``<root>/fracture_grades.csv`` when present.

    Returns:
        Cases sorted by ``case_id``; problems are logged (use :func:`scan_dataset` to get them).
    """
    return scan_dataset(path, grades=grades).cases


def scan_dataset(
    path: str | Path, *, grades: str | Path | pd.DataFrame | None = None
) -> DatasetLoad:
    """Like :func:`load_dataset`, also returning the problems met (skipped/incomplete cases)."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return _load_manifest(path)
    if not path.is_dir():
        raise InputError(
            "dataset not found", path=path, fix="pass a dataset folder or a manifest .csv"
        )
    tsv = path / TSV_FILE
    if grades is None and tsv.is_file():
        return _load_folder(path, load_grade_table(tsv), mode="tsv")
    if grades is None and (path / GRADES_FILE).is_file():
        grades = path / GRADES_FILE
    table = load_grade_table(grades) if isinstance(grades, str | Path) else grades
    return _load_folder(path, table, mode="verse")


# --- folder layouts -----------------------------------------------------------------------


def discover_files(root: Path) -> dict[str, dict[str, Path]]:
    """``{name: {"scan"|"mask"|"subregion"|"centroids": path}}`` for the layout files under root."""
    found: dict[str, dict[str, Path]] = {}
    for file in sorted(root.rglob("*")):
        if file.name.startswith(".") or not file.is_file():
            continue
        for suffix, kind in LAYOUT_SUFFIXES.items():
            if file.name.endswith(suffix):
                found.setdefault(file.name[: -len(suffix)], {}).setdefault(kind, file)
                break
    return found


def entities(name: str) -> dict[str, str]:
    """BIDS entities of a file name: ``"sub-verse004_split-verse290"`` -> ``{"sub": ..}``."""
    out = {}
    for part in name.split("_"):
        key, sep, value = part.partition("-")
        if sep:
            out[key] = value
    return out


def _digits(value: str | None) -> str:
    match = _ENTITY.match(value or "")
    return normalise_id(match["digits"]) if match else ""


def _grade_rows(name: str, table: pd.DataFrame | None, mode: str) -> pd.DataFrame | None:
    if table is None:
        return None
    if mode == "tsv":
        return table[table["series_id"] == name]
    ent = entities(name)
    series = _digits(ent.get("split")) or _digits(ent.get("sub"))
    rows = table[table["series_id"] == series]
    if rows.empty and "split" not in ent:
        subject = table[table["subject_id"] == _digits(ent.get("sub"))]
        if subject["series_id"].nunique() == 1:
            rows = subject
    return rows


def _load_folder(root: Path, table: pd.DataFrame | None, *, mode: str) -> DatasetLoad:
    files = discover_files(root)
    if not files:
        raise InputError(
            "no VerSe/BIDS files (*_ct.nii.gz, *_seg-vert_msk.nii.gz, *_ctd.json) found",
            path=root,
            fix="pass the dataset root (holding rawdata/ and derivatives/) or a manifest .csv",
        )
    result = DatasetLoad()
    for name, paths in sorted(files.items()):
        try:
            case = _folder_case(name, paths, _grade_rows(name, table, mode), mode, result)
        except Exception as exc:  # report and skip this case, whatever went wrong
            result.report(name, _problem_text(exc))
            continue
        if case is not None:
            result.cases.append(case)
    return result


def _reference(paths: dict[str, Path]) -> Image | None:
    for kind in ("scan", "mask", "subregion"):
        if kind in paths:
            return read_nifti_geometry(paths[kind])
    return None


def _centroids(paths: dict[str, Path], name: str, result: DatasetLoad) -> dict[int, np.ndarray]:
    if "centroids" in paths:
        reference = _reference(paths)
        if reference is not None:
            try:
                return load_centroids(paths["centroids"], reference)
            except InputError as exc:
                if "mask" not in paths:
                    raise
                result.report(name, f"{exc} Using the mask's centroids instead")
        else:
            result.report(name, "centroid file without an image to place it", paths["centroids"])
    if "mask" in paths:
        mask = load_mask(paths["mask"])
        sub = load_mask(paths["subregion"], known_labels=None) if "subregion" in paths else None
        return centroids_from_mask(mask, subregion_mask=sub)
    return {}


def _folder_case(name, paths, rows, mode, result: DatasetLoad) -> Case | None:
    if not {"mask", "centroids"} & set(paths):
        result.report(
            name, "no vertebra annotation (mask or centroid JSON); skipped", paths.get("scan")
        )
        return None
    if "scan" not in paths:
        result.report(name, "no CT for this case (annotations only); scan_path is None")
    if rows is not None and rows.empty:
        result.report(name, "no grades for this case in the grade table; vertebrae ungraded")
    centroids = _centroids(paths, name, result)
    ent = entities(name)
    split = ""
    if rows is not None and not rows.empty:
        split = str(rows["split"].iloc[0])
    vertebrae = _records(name, centroids, _grades_by_label(rows), split, result)
    return Case(
        case_id=name,
        scan_path=paths.get("scan"),
        mask_path=paths.get("mask"),
        subregion_mask_path=paths.get("subregion"),
        centroids_path=paths.get("centroids"),
        vertebrae=vertebrae,
        patient_id=f"sub-{ent['sub']}" if "sub" in ent else name,
        split=split,
    )


def _grades_by_label(rows: pd.DataFrame | None) -> dict[int, dict]:
    if rows is None:
        return {}
    return {int(r["vertebra_label"]): r for r in rows.to_dict("records")}


def _records(case_id, centroids, graded, split, result: DatasetLoad) -> tuple[VertebraRecord, ...]:
    labels = sorted({*(lab for lab in centroids if lab in VERTEBRA_LEVELS), *graded})
    records = []
    for label in labels:
        grade = graded.get(label, {})
        centroid = centroids.get(label)
        if centroid is None:
            result.report(case_id, f"{VERTEBRA_LEVELS[label]} is graded but not annotated")
        genant = grade.get("genant_grade")
        records.append(
            VertebraRecord(
                case_id=case_id,
                vertebra_label=label,
                centroid_mm=None if centroid is None else tuple(float(v) for v in centroid),
                genant_grade=None if genant is None or pd.isna(genant) else int(genant),
                shape=grade.get("shape") if isinstance(grade.get("shape"), str) else None,
                foreign_material=bool(grade.get("foreign_material", False)),
                split=split,
            )
        )
    return tuple(records)


# --- manifest CSV ---------------------------------------------------------------------------


def _manifest_table(path: Path) -> tuple[pd.DataFrame, list[str]]:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(
            f"cannot parse the manifest ({exc})", path=path, fix="check the CSV"
        ) from None
    table.columns = [c.strip() for c in table.columns]
    if not {"scan", "mask"} & set(table.columns):
        raise InputError(
            "manifest has neither a 'scan' nor a 'mask' column",
            path=path,
            fix="use columns case_id,scan,centroids,mask,split,patient_id,<LEVEL grade columns>",
        )
    levels = [c for c in table.columns if _LEVEL_COLUMN.match(c)]
    unknown = [c for c in levels if c.upper() not in LEVEL_LABELS]
    if unknown:
        raise InputError(
            f"grade columns {unknown} are not vertebra levels",
            path=path,
            fix="name grade columns by level: C1-C7, T1-T13, L1-L6",
        )
    return table, levels


def _load_manifest(path: Path) -> DatasetLoad:
    table, levels = _manifest_table(path)
    result = DatasetLoad()
    seen: set[str] = set()
    for index, rec in table.iterrows():
        case_id = rec.get("case_id", "").strip() or f"case{index + 1:04d}"
        if case_id in seen:
            result.report(case_id, f"line {index + 2}: duplicate case_id; skipped", path)
            continue
        seen.add(case_id)
        try:
            result.cases.append(_manifest_case(path, index, rec, case_id, levels, result))
        except Exception as exc:  # report and skip this case, whatever went wrong
            result.report(case_id, _problem_text(exc))
    return result


def _manifest_path(csv: Path, rec, column: str) -> Path | None:
    value = str(rec.get(column, "")).strip()
    if not value:
        return None
    file = Path(value) if Path(value).is_absolute() else csv.parent / value
    if not file.exists():
        raise InputError(
            f"{column} file not found: {file}", path=csv, fix="fix the path in the CSV"
        )
    return file


def _manifest_case(csv: Path, index, rec, case_id, levels, result: DatasetLoad) -> Case:
    paths = {k: _manifest_path(csv, rec, k) for k in ("scan", "centroids", "mask")}
    paths = {k: v for k, v in paths.items() if v is not None}
    if not {"centroids", "mask"} & set(paths):
        raise InputError(
            f"line {index + 2}: neither centroids nor mask given",
            path=csv,
            fix="give a centroid JSON or a vertebra mask for every case",
        )
    if "scan" not in paths:
        result.report(case_id, "no scan given (annotations only); scan_path is None", csv)
    if "centroids" in paths and "scan" in paths and paths["scan"].is_dir():
        from spinefx.io.dicom import load_dicom_series

        centroids = load_centroids(paths["centroids"], load_dicom_series(paths["scan"]))
    else:
        centroids = _centroids(paths, case_id, result)
    split = normalise_split(rec.get("split", ""))
    graded = {}
    for column in levels:
        parsed = parse_grade(rec[column], path=csv, where=f"line {index + 2} {column}")
        if parsed is not None:
            grade, foreign = parsed
            graded[LEVEL_LABELS[column.upper()]] = {
                "genant_grade": grade,
                "foreign_material": foreign,
            }
    return Case(
        case_id=case_id,
        scan_path=paths.get("scan"),
        mask_path=paths.get("mask"),
        centroids_path=paths.get("centroids"),
        vertebrae=_records(case_id, centroids, graded, split, result),
        patient_id=str(rec.get("patient_id", "")).strip() or case_id,
        split=split,
    )

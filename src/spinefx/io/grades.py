"""Fracture grade tables, read into one tidy form (one row per graded vertebra).

Sources:

* the official VerSe19 appendix ``ryai190138_appendixe1.xlsx`` (sheet ``VerSe_dataset``, one
  row per image series: ``verse_ID``, ``subject_ID``, ``dataset`` = split, ``{T1..L6}_fx-g``
  grade 0-3 / ``x`` foreign material / empty = not fully in view, ``{T1..L6}_fx-s`` shape
  0 none, 1 wedge, 2 biconcave, 3 crush);
* the same table in long form (CSV: ``verse_ID,subject_ID,split,level,label,grade,shape``),
  which is also what the synthetic generator writes as ``fracture_grades.csv``;
* the ctfu per-scan TSV (``labels.tsv``: ``ID``, ``def_T1..def_L6`` codes). Codes 0-3 are
  Genant grades, 6 is foreign material. Codes 4 (Schmorl node), 5 (malignant fracture),
  7 (non-osteoporotic deformity), 8 (malignant, no fracture) and 9 (fracture of unclear
  origin) are not osteoporotic Genant grades: such vertebrae keep ``genant_grade`` NA (so
  training and scoring leave them out, like vertebrae not fully in view) and the raw code in
  ``source_code``.

Tidy form (:data:`GRADE_COLUMNS`): ``series_id`` (str; digits without leading zeros),
``subject_id`` (str), ``split`` (``train``/``val``/``test`` where the source says
training/validation/test, else the source's text), ``level``, ``vertebra_label``,
``genant_grade`` (Int64, NA when not gradable), ``shape`` (``wedge``/``biconcave``/``crush``
or None), ``foreign_material`` (bool), ``source_code`` (the raw cell). Vertebrae with an empty
cell (not fully in view) have no row.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pandas as pd

from spinefx.conventions import FRACTURE_SHAPES, LEVEL_LABELS, SHAPE_CODES
from spinefx.errors import InputError

GRADE_COLUMNS: tuple[str, ...] = (
    "series_id",
    "subject_id",
    "split",
    "level",
    "vertebra_label",
    "genant_grade",
    "shape",
    "foreign_material",
    "source_code",
)
LONG_COLUMNS: tuple[str, ...] = (
    "verse_ID",
    "subject_ID",
    "split",
    "level",
    "label",
    "grade",
    "shape",
)
#: Appendix levels, cranial to caudal.
APPENDIX_LEVELS: tuple[str, ...] = (
    *(f"T{i}" for i in range(1, 13)),
    *(f"L{i}" for i in range(1, 7)),
)
#: ctfu ``def_*`` codes that are not Genant grades (see module docstring).
CTFU_UNGRADED_CODES: dict[int, str] = {
    4: "Schmorl node",
    5: "malignant fracture",
    7: "non-osteoporotic deformity",
    8: "malignant, no fracture",
    9: "fracture of unclear origin",
}
CTFU_FOREIGN_MATERIAL_CODE = 6


def normalise_split(raw: object) -> str:
    """``train``/``val``/``test`` for the sources' split names (``"validation public"`` ...)."""
    text = "" if _is_empty(raw) else str(raw).strip().lower()
    first = text.split()[0] if text else ""
    return _SPLIT_WORDS.get(first, text)


_SPLIT_WORDS = {
    **dict.fromkeys(("training", "train", "tr"), "train"),
    **dict.fromkeys(("validation", "val", "valid", "pubt"), "val"),
    **dict.fromkeys(("test", "testing", "doct"), "test"),
}


def normalise_id(raw: object) -> str:
    """Identifier as text; all-digit ids lose leading zeros and a float ``.0`` (``"004"``->``"4"``)."""
    if _is_empty(raw):
        return ""
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    text = str(raw).strip()
    return str(int(text)) if text.isdigit() else text


def _is_empty(value: object) -> bool:
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and value.strip() == "")
    )


def parse_grade(value: object, *, path: Path, where: str) -> tuple[int | None, bool] | None:
    """``(genant_grade, foreign_material)`` of a grade cell; None for an empty cell.

    Raises:
        InputError: a value other than 0-3, ``x`` or empty.
    """
    if _is_empty(value):
        return None
    text = str(value).strip().lower()
    if text == "x":
        return None, True
    try:
        number = float(text)
    except ValueError:
        number = -1.0
    if number not in (0.0, 1.0, 2.0, 3.0):
        raise InputError(
            f"{where}: grade {value!r} is not 0-3, x or empty",
            path=path,
            fix="use Genant grades 0-3, x for foreign material, empty when not fully in view",
        )
    return int(number), False


def parse_shape(value: object, *, path: Path, where: str) -> str | None:
    """Shape name of a shape cell (0/empty/x -> None, 1/2/3 or a name -> the name)."""
    if _is_empty(value):
        return None
    text = str(value).strip().lower()
    if text in ("x", "0", "0.0", "none"):
        return None
    if text in SHAPE_CODES:
        return text
    try:
        return FRACTURE_SHAPES[int(float(text))]
    except (ValueError, KeyError):
        raise InputError(
            f"{where}: shape {value!r} is not 0-3, a shape name, x or empty",
            path=path,
            fix="use 1 wedge, 2 biconcave, 3 crush (0 or empty for none)",
        ) from None


def _row(series, subject, split, level, grade_cell, shape_cell, *, path, where) -> dict | None:
    parsed = parse_grade(grade_cell, path=path, where=where)
    if parsed is None:
        return None
    grade, foreign = parsed
    return {
        "series_id": normalise_id(series),
        "subject_id": normalise_id(subject),
        "split": normalise_split(split),
        "level": level,
        "vertebra_label": LEVEL_LABELS[level],
        "genant_grade": grade,
        "shape": None if foreign or not grade else parse_shape(shape_cell, path=path, where=where),
        "foreign_material": foreign,
        "source_code": "" if _is_empty(grade_cell) else str(grade_cell).strip(),
    }


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(GRADE_COLUMNS))
    frame["genant_grade"] = frame["genant_grade"].astype("Int64")
    frame["vertebra_label"] = frame["vertebra_label"].astype(int)
    frame["foreign_material"] = frame["foreign_material"].astype(bool)
    return frame


def read_verse_appendix(path: str | Path) -> pd.DataFrame:
    """Read the official VerSe19 appendix workbook into the tidy form (see module doc)."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl: "Unknown extension is not supported"
            sheet = pd.read_excel(path, sheet_name="VerSe_dataset", dtype=object)
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(
            f"cannot read the VerSe appendix workbook ({exc})",
            path=path,
            fix="pass ryai190138_appendixe1.xlsx with its sheet 'VerSe_dataset'",
        ) from None
    missing = {"verse_ID", "subject_ID", "dataset"} - set(sheet.columns)
    if missing:
        raise InputError(
            f"appendix sheet lacks columns {sorted(missing)}", path=path, fix="use the original"
        )
    rows = []
    for index, rec in sheet.iterrows():
        for level in APPENDIX_LEVELS:
            where = f"row {index + 2} {level}"
            row = _row(
                rec["verse_ID"], rec["subject_ID"], rec["dataset"], level,
                rec.get(f"{level}_fx-g"), rec.get(f"{level}_fx-s"), path=path, where=where,
            )  # fmt: skip
            if row:
                rows.append(row)
    frame = _frame(rows)
    frame.attrs["series"] = sorted({normalise_id(v) for v in sheet["verse_ID"]})
    return frame


def read_long_grades(path: str | Path) -> pd.DataFrame:
    """Read a long-form grade CSV (``verse_ID,subject_ID,split,level,label,grade,shape``)."""
    path = Path(path)
    table = _read_text_table(path, sep=",")
    missing = {"verse_ID", "subject_ID", "level", "grade"} - set(table.columns)
    if missing:
        raise InputError(
            f"grade table lacks columns {sorted(missing)}",
            path=path,
            fix=f"use the long form with columns {','.join(LONG_COLUMNS)}",
        )
    rows = []
    for index, rec in table.iterrows():
        level = str(rec["level"]).strip().upper()
        where = f"line {index + 2}"
        if level not in LEVEL_LABELS:
            raise InputError(
                f"{where}: unknown level {rec['level']!r}", path=path, fix="use C1-L6/T13"
            )
        if (
            "label" in rec
            and not _is_empty(rec["label"])
            and _as_label(rec["label"]) != LEVEL_LABELS[level]
        ):
            raise InputError(
                f"{where}: label {rec['label']} does not match level {level}",
                path=path,
                fix="use VerSe numbering (20 = L1)",
            )
        row = _row(
            rec["verse_ID"], rec["subject_ID"], rec.get("split", ""), level,
            rec["grade"], rec.get("shape", ""), path=path, where=where,
        )  # fmt: skip
        if row:
            rows.append(row)
    frame = _frame(rows)
    frame.attrs["series"] = sorted({normalise_id(v) for v in table["verse_ID"]})
    return frame


def _as_label(value: str) -> int | None:
    try:
        return int(float(value))
    except ValueError:
        return None


def _read_text_table(path: Path, *, sep: str) -> pd.DataFrame:
    if not path.is_file():
        raise InputError("grade table not found", path=path, fix="check the path")
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(
            f"cannot parse the table ({exc})", path=path, fix="check the file"
        ) from None


def read_ctfu_labels(path: str | Path) -> pd.DataFrame:
    """Read a ctfu-style per-scan TSV (``ID``, ``def_<LEVEL>`` codes) into the tidy form."""
    path = Path(path)
    table = _read_text_table(path, sep="\t")
    level_columns = [c for c in table.columns if c.startswith("def_")]
    if "ID" not in table.columns or not level_columns:
        raise InputError(
            "TSV lacks an ID column or def_<LEVEL> columns",
            path=path,
            fix="use the ctfu labels.tsv layout (ID, def_T1 ... def_L6)",
        )
    rows = []
    for index, rec in table.iterrows():
        subject = rec.get("case_name") or str(rec["ID"]).split("_")[0]
        for column in level_columns:
            cell, level = rec[column], column[4:].upper()
            if _is_empty(cell) or level not in LEVEL_LABELS:
                continue
            code = _as_label(cell)
            if code in CTFU_UNGRADED_CODES:
                grade, foreign = None, False
            elif code == CTFU_FOREIGN_MATERIAL_CODE:
                grade, foreign = None, True
            elif code in (0, 1, 2, 3):
                grade, foreign = code, False
            else:
                raise InputError(
                    f"line {index + 2} {column}: unknown code {cell!r}",
                    path=path,
                    fix="use the codes of label-codes.md (0-9)",
                )
            rows.append({
                "series_id": normalise_id(rec["ID"]), "subject_id": str(subject),
                "split": normalise_split(rec.get("split", "")), "level": level,
                "vertebra_label": LEVEL_LABELS[level], "genant_grade": grade, "shape": None,
                "foreign_material": foreign, "source_code": str(code),
            })  # fmt: skip
    frame = _frame(rows)
    frame.attrs["series"] = sorted({normalise_id(v) for v in table["ID"]})
    return frame


def load_grade_table(path: str | Path) -> pd.DataFrame:
    """Read any supported grade table (xlsx appendix, long CSV, ctfu TSV) into the tidy form."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return read_verse_appendix(path)
    if suffix == ".tsv":
        return read_ctfu_labels(path)
    if suffix == ".csv":
        return read_long_grades(path)
    raise InputError(
        f"unsupported grade table format {suffix!r}",
        path=path,
        fix="pass the VerSe appendix .xlsx, a long-form .csv or a labels .tsv",
    )

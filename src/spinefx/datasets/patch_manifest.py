"""The prepared patch manifest (``prepare`` output) as a filtered, validated table.

``out_dir/manifest.csv`` has one row per vertebra patch with columns
``case_id,patient_id,vertebra_label,level,genant_grade,fractured,shape,foreign_material,split,
path,out_of_view_fraction,scan_path`` (``path`` relative to ``out_dir``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from spinefx.errors import InputError

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.csv"
REQUIRED_COLUMNS = ("case_id", "vertebra_label", "genant_grade", "path")


@dataclass(frozen=True)
class ManifestCounts:
    """How many manifest rows were kept and why the others were excluded."""

    total: int
    kept: int
    foreign_material: int
    ungraded: int
    cervical: int
    missing_file: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _as_bool(series: pd.Series) -> pd.Series:
    text = series.astype(str).str.strip().str.lower()
    return text.isin(("1", "true", "yes", "1.0"))


def read_patch_manifest(prepared_dir: str | Path) -> pd.DataFrame:
    """Read ``prepared_dir/manifest.csv`` with normalised dtypes and absolute patch paths.

    Returns:
        DataFrame with the manifest columns plus ``abs_path`` (absolute patch file path),
        ``genant_grade`` as pandas nullable Int64 (NA = ungraded), ``fractured`` as Int64
        (NA = ungraded), ``foreign_material`` as bool, ``patient_id`` filled from ``case_id``.

    Raises:
        InputError: when the manifest is missing or lacks required columns.
    """
    prepared_dir = Path(prepared_dir)
    path = prepared_dir / MANIFEST_NAME
    if not path.is_file():
        raise InputError(
            "no manifest.csv in the prepared data folder",
            path=prepared_dir,
            fix="run `spinefx prepare DATA --out DIR` first and pass that DIR",
        )
    table = pd.read_csv(path, dtype={"case_id": str, "patient_id": str, "split": str})
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(
            f"manifest lacks column(s) {missing}",
            path=path,
            fix="re-create it with `spinefx prepare`",
        )
    table["genant_grade"] = pd.to_numeric(table["genant_grade"], errors="coerce").astype("Int64")
    table["fractured"] = (table["genant_grade"] >= 1).astype("Int64")
    if "foreign_material" in table:
        table["foreign_material"] = _as_bool(table["foreign_material"])
    else:
        table["foreign_material"] = False
    if "patient_id" not in table:
        table["patient_id"] = table["case_id"]
    table["patient_id"] = table["patient_id"].fillna(table["case_id"]).astype(str)
    table["split"] = table["split"].fillna("").astype(str) if "split" in table else ""
    if "level" not in table:
        from spinefx.conventions import level_name

        table["level"] = [level_name(v) for v in table["vertebra_label"]]
    if "out_of_view_fraction" not in table:
        table["out_of_view_fraction"] = 0.0
    table["abs_path"] = [str(prepared_dir / p) for p in table["path"]]
    return table


def usable_vertebrae(
    table: pd.DataFrame, *, include_cervical: bool = False, manifest_path: str | Path = ""
) -> tuple[pd.DataFrame, ManifestCounts]:
    """Keep vertebrae usable for fracture training and scoring.

    Excludes foreign-material vertebrae (VerSe ``x``), ungraded ones (not fully in view) and,
    unless ``include_cervical``, C1-C7 (as the paper), plus rows whose patch file is missing.

    Returns:
        The kept rows (index reset) and the exclusion counts.
    """
    foreign = table["foreign_material"].to_numpy(bool)
    ungraded = table["genant_grade"].isna().to_numpy() & ~foreign
    cervical = (table["vertebra_label"].astype(int) <= 7).to_numpy() & (not include_cervical)
    cervical &= ~foreign & ~ungraded
    exists = pd.Series([Path(p).is_file() for p in table["abs_path"]]).to_numpy()
    missing = ~exists & ~foreign & ~ungraded & ~cervical
    keep = ~(foreign | ungraded | cervical | missing)
    counts = ManifestCounts(
        total=len(table),
        kept=int(keep.sum()),
        foreign_material=int(foreign.sum()),
        ungraded=int(ungraded.sum()),
        cervical=int(cervical.sum()),
        missing_file=int(missing.sum()),
    )
    if counts.missing_file:
        log.warning("%s: %d patch file(s) missing, skipped", manifest_path, counts.missing_file)
    log.info("vertebrae: %s", counts.as_dict())
    return table.loc[keep].reset_index(drop=True), counts


def combine_prepared(sources: dict[str, str | Path], out_dir: str | Path) -> Path:
    """A prepared folder whose manifest joins several prepared folders (no patch copies).

    Case and patient ids get a ``<name>:`` prefix so ids from different sources never collide;
    patch paths point into the source folders (relative to ``out_dir``). Used to train on
    "dataset A + dataset B" (the paper's VerSe + in-house) without copying patches.

    Args:
        sources: name -> prepared folder (each with ``manifest.csv``).
        out_dir: folder of the combined ``manifest.csv`` (created).

    Returns:
        ``out_dir``.
    """
    import os

    from spinefx.atomic import write_text_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = []
    for name, folder in sources.items():
        table = pd.read_csv(Path(folder) / MANIFEST_NAME, dtype={"case_id": str, "patient_id": str})
        table["case_id"] = f"{name}:" + table["case_id"].astype(str)
        patient = table["patient_id"] if "patient_id" in table else table["case_id"]
        table["patient_id"] = f"{name}:" + patient.astype(str)
        table["path"] = [
            os.path.relpath(Path(folder).resolve() / p, out_dir.resolve()) for p in table["path"]
        ]
        table["source"] = name
        frames.append(table)
    write_text_atomic(out_dir / MANIFEST_NAME, pd.concat(frames).to_csv(index=False))
    return out_dir

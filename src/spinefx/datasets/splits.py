"""Patient-level train/val/test splits: from the manifest when it has them, else stratified.

A patient never appears in two splits. Stratification is on whether the patient has any
fractured vertebra, so every split holds fractures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SPLIT_NAMES = ("train", "val", "test")
#: Split spellings found in datasets (VerSe uses training/validation/test).
_ALIASES = {"training": "train", "validation": "val", "valid": "val", "testing": "test"}


def normalise_split_names(splits: pd.Series) -> pd.Series:
    """Map dataset split spellings to ``train``/``val``/``test`` (others unchanged)."""
    low = splits.fillna("").astype(str).str.strip().str.lower()
    return low.map(lambda s: _ALIASES.get(s, s))


def stratified_patient_split(
    table: pd.DataFrame,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, list[str]]:
    """Split patients into train/val/test, stratified by "has any fracture".

    Args:
        table: rows with ``patient_id`` and ``fractured`` (0/1).
        val_fraction, test_fraction: fractions of patients per stratum (rounded, at least one
            patient per split and stratum when the stratum has three or more patients).
        seed: seed of the permutation.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` sorted patient ids.
    """
    rng = np.random.default_rng(seed)
    per_patient = table.groupby("patient_id")["fractured"].max().astype(int)
    out: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    for stratum in (0, 1):
        patients = np.array(sorted(per_patient.index[per_patient == stratum]))
        patients = patients[rng.permutation(len(patients))]
        n = len(patients)
        n_test = int(round(n * test_fraction))
        n_val = int(round(n * val_fraction))
        if n >= 3:
            n_test = max(n_test, 1 if test_fraction > 0 else 0)
            n_val = max(n_val, 1 if val_fraction > 0 else 0)
        out["test"] += patients[:n_test].tolist()
        out["val"] += patients[n_test : n_test + n_val].tolist()
        out["train"] += patients[n_test + n_val :].tolist()
    return {name: sorted(ids) for name, ids in out.items()}


def assign_splits(
    table: pd.DataFrame, *, val_fraction: float, test_fraction: float, seed: int
) -> tuple[pd.Series, dict]:
    """Split label per row, and a record of how it was made (for ``splits.json``).

    Uses the manifest's ``split`` column when it contains train, val and test (after
    normalising VerSe spellings); otherwise a seeded stratified patient-level split.

    Returns:
        (split per row aligned with ``table``, record with ``method``, ``seed`` and the case
        ids per split).
    """
    given = normalise_split_names(table["split"]) if "split" in table else None
    if given is not None and set(SPLIT_NAMES) <= set(given):
        split = given
        record = {"method": "manifest", "seed": None}
    else:
        patients = stratified_patient_split(
            table, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
        )
        lookup = {p: name for name, ids in patients.items() for p in ids}
        split = table["patient_id"].map(lookup)
        record = {
            "method": "stratified_patient",
            "seed": seed,
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
        }
    for name in SPLIT_NAMES:
        rows = table[split == name]
        record[name] = {
            "cases": sorted(set(rows["case_id"])),
            "vertebrae": int(len(rows)),
            "fractured": int(rows["fractured"].sum()),
        }
    return split.reset_index(drop=True), record

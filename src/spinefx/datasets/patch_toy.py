"""A tiny toy "prepared" folder (manifest + patch NIfTIs) for tests and smoke runs.

Not anatomy (``spinefx synth`` makes realistic scans): each patch holds a bright cylinder
("vertebral body", +300 HU cortex-like shell on +150 HU) in soft tissue, and fractured ones
are compressed along z by their Genant height loss. It exercises every code path of training
and evaluation in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from spinefx.conventions import GENANT_HEIGHT_LOSS, level_name

_LEVELS = (16, 17, 18, 19, 20, 21, 22, 23)  # T9..L4


def toy_patch(
    rng: np.random.Generator, *, size_vox: int, spacing_mm: float, genant_grade: int
) -> np.ndarray:
    """One ``(S, S, S)`` int16 HU patch: a cylinder whose height shrinks with the grade."""
    lo, hi = GENANT_HEIGHT_LOSS[genant_grade]
    loss = 0.0 if genant_grade == 0 else rng.uniform(lo, min(hi, 0.6))
    axis = (np.arange(size_vox) - (size_vox - 1) / 2) * spacing_mm
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    radius = rng.uniform(15, 20)
    half_height = rng.uniform(11, 13) * (1 - loss)
    body = (x**2 + y**2 <= radius**2) & (np.abs(z) <= half_height)
    hu = rng.normal(40.0, 30.0, size=x.shape)
    hu[body] = 150.0 + rng.normal(0, 30.0, size=int(body.sum()))
    return np.clip(hu, -1000, 2000).astype(np.int16)


def write_toy_prepared(
    out_dir: str | Path,
    *,
    n_cases: int = 12,
    size_vox: int = 16,
    spacing_mm: float = 6.0,
    seed: int = 0,
    with_split: bool = False,
) -> Path:
    """Write ``out_dir/manifest.csv`` + ``patches/<case>/<LEVEL>.nii`` like ``prepare`` does.

    Every case has 8 vertebrae (T9-L4); about a quarter are fractured (grades 1-3, each grade
    present), plus one ungraded and one foreign-material row per dataset (to be excluded).

    Returns:
        ``out_dir``.
    """
    import nibabel as nib

    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    rows = []
    for c in range(n_cases):
        case_id = f"sub-toy{c:03d}"
        split = ("train", "train", "train", "val", "test")[c % 5] if with_split else ""
        for j, label in enumerate(_LEVELS):
            grade = int((c + j) % 4) if (c + j) % 3 == 0 else 0
            rel = Path("patches") / case_id / f"{level_name(label)}.nii"
            affine = np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0])
            affine[:3, 3] = (0.0, 0.0, 30.0 * j)
            patch = toy_patch(rng, size_vox=size_vox, spacing_mm=spacing_mm, genant_grade=grade)
            (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(patch, affine), str(out_dir / rel))
            rows.append(
                {
                    "case_id": case_id,
                    "patient_id": case_id,
                    "vertebra_label": label,
                    "level": level_name(label),
                    "genant_grade": grade,
                    "fractured": int(grade >= 1),
                    "shape": "wedge" if grade else "",
                    "foreign_material": False,
                    "split": split,
                    "path": str(rel),
                    "out_of_view_fraction": 0.0,
                    "scan_path": "",
                }
            )
    rows[0] = {**rows[0], "genant_grade": None, "fractured": None}
    rows[1] = {**rows[1], "foreign_material": True}
    pd.DataFrame(rows).to_csv(out_dir / "manifest.csv", index=False)
    return out_dir

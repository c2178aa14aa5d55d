"""Make docs/figures/synthetic_vs_real.png: mid-sagittal slices of generated CTs next to a real one.

Usage: python docs/figures/make_synthetic_vs_real.py [--out docs/figures/synthetic_vs_real.png]

Panels: a real CT from ../shared/data/real/ctfu (lumbar spine with pedicle screws), then
synthetic scans: normal, Genant grade 1, 2 and 3 (the fractured vertebra marked), and pedicle
screws. Every panel uses the same bone window (W 1500 / L 300), 1 mm display grid, anterior left.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from spinefx.synthesis import case_rng, generate_case, preset  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REAL_CT = (
    ROOT.parent
    / "shared/data/real/ctfu/rawdata/sub-ctfu00001/ses-20080508/sub-ctfu00001_ses-20080508_ce-no_ct.nii.gz"
)
WINDOW = (300.0, 1500.0)  # level, width (HU)
GENANT = {1: "mild", 2: "moderate", 3: "severe"}


def sagittal(data: np.ndarray, affine: np.ndarray, x_mm: float) -> np.ndarray:
    """Sagittal slice at world x (RAS), resampled to 1 mm, anterior left, superior up."""
    img = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(data, np.float32), affine))
    arr = img.get_fdata(dtype=np.float32)
    zooms = img.header.get_zooms()
    i = int(round(np.linalg.solve(img.affine, [x_mm, 0, 0, 1])[0]))
    sl = arr[int(np.clip(i, 0, arr.shape[0] - 1))]  # (y, z)
    sl = ndimage.zoom(sl, (zooms[1], zooms[2]), order=1)
    return sl.T[::-1, ::-1]  # rows: superior first; columns: anterior first


def _config(*, grade: int | None, screws: bool):
    base = preset("default")
    fx = dataclasses.replace(
        base.fractures,
        prevalence=0.0 if grade is None else 0.25,
        osteoporotic_prevalence=0.0 if grade is None else 0.25,
        run_probability=0.0,
        grade_weights=tuple(1.0 if g == grade else 0.0 for g in (1, 2, 3)) if grade else (1, 1, 1),
    )
    acq = dataclasses.replace(
        base.acquisition,
        n_levels_range=(6, 8),
        inplane_spacing_mm_range=(0.8, 1.0),
        slice_spacing_mm_range=(1.0, 1.5),
        screw_probability=1.0 if screws else 0.0,
    )
    return dataclasses.replace(base, fractures=fx, acquisition=acq)


def find_case(*, grade: int | None, screws: bool, seed: int):
    """The first case (seeds from ``seed``) showing what the panel needs."""
    config = _config(grade=grade, screws=screws)
    for i in range(200):
        case = generate_case(config, case_rng(seed, i))
        inner = [v for v in case.vertebrae[1:-1] if v.fully_in_view]
        if not any(v.vertebra_label >= 20 for v in inner):  # thoracolumbar, like the real CT
            continue
        if screws and any(v.foreign_material for v in inner):
            return case, None
        if grade is None and not screws and len(inner) >= 5:
            return case, None
        hits = [v for v in inner if v.genant_grade == grade and not v.foreign_material]
        if grade and hits:
            return case, hits[0]
    raise RuntimeError(f"no case found for grade={grade} screws={screws}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "docs/figures/synthetic_vs_real.png"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    level, width = WINDOW
    panels = []
    if REAL_CT.is_file():
        img = nib.load(REAL_CT)
        data = np.asanyarray(img.dataobj)
        centre = img.affine @ np.r_[(np.asarray(data.shape) - 1) / 2, 1]
        panels.append(
            ("real CT (ctfu, L1-L5, screws)", sagittal(data, img.affine, centre[0] - 3), None)
        )
    for k, (title, grade, screws) in enumerate(
        (
            ("synthetic: normal", None, False),
            ("synthetic: grade 1 (mild)", 1, False),
            ("synthetic: grade 2 (moderate)", 2, False),
            ("synthetic: grade 3 (severe)", 3, False),
            ("synthetic: pedicle screws", None, True),
        )
    ):
        case, target = find_case(grade=grade, screws=screws, seed=args.seed + 100 * k)
        x_mm = float(np.median([v.centroid_mm[0] for v in case.vertebrae]))
        sl = sagittal(case.ct.data, case.ct.affine, x_mm)
        label = None
        if target is not None:
            title = f"{title}\n{target.level} {target.shape}, {100 * target.height_loss:.0f}% loss"
            label = target
        panels.append((title, sl, (case, label)))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 5.2), facecolor="black")
    for ax, (title, sl, extra) in zip(axes, panels, strict=True):
        h = min(sl.shape[0], 190)
        top = max(0, (sl.shape[0] - h) // 2)
        ax.imshow(sl[top : top + h], cmap="gray", vmin=level - width / 2, vmax=level + width / 2)
        ax.set_title(title, color="white", fontsize=9)
        ax.axis("off")
        if extra and extra[1] is not None:
            case, v = extra
            img = nib.as_closest_canonical(nib.Nifti1Image(case.ct.data, case.ct.affine))
            ijk = np.linalg.solve(img.affine, np.r_[v.centroid_mm, 1])
            zooms = img.header.get_zooms()
            row = sl.shape[0] - 1 - ijk[2] * zooms[2] - top
            col = sl.shape[1] - 1 - ijk[1] * zooms[1]
            ax.annotate(
                "",
                xy=(col - 22, row),
                xytext=(col - 45, row),
                arrowprops={"color": "yellow", "width": 1.5, "headwidth": 6},
            )
    fig.text(
        0.5,
        0.01,
        f"bone window W {width:.0f} / L {level:.0f} HU, 1 mm display grid, anterior left",
        color="white",
        ha="center",
        fontsize=9,
    )
    plt.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(args.out, dpi=110, facecolor="black")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Make docs/figures/procedural_realism.png: generated CTs next to a real one, two windows.

Usage: python docs/figures/make_procedural_realism.py [--out docs/figures/procedural_realism.png]

Columns: a real CT (VerSe subject 008, ../shared/data/real/verse) and three scans of the
procedural generator (``default`` preset, the first cases from ``--seed`` that show L2).
Rows: mid-sagittal and one axial slice through a lumbar body, each in the bone window
(W 1500 / L 300) and the soft-tissue window (W 400 / L 40). Radiological convention: the
patient's anterior on the left of sagittal views, the patient's right on the left of axial
views; axes in mm on a 1 mm display grid.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from spinefx.synthesis import case_rng, generate_case, preset  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared/data/real/verse"
REAL_CT = REAL / "rawdata/sub-verse008/sub-verse008_ct.nii.gz"
REAL_MASK = REAL / "derivatives/sub-verse008/sub-verse008_seg-vert_msk.nii.gz"
WINDOWS = {"bone": (300.0, 1500.0), "soft tissue": (40.0, 400.0)}  # level, width (HU)
AXIAL_LABEL = 21  # L2


def canonical_mm(data: np.ndarray, affine: np.ndarray, *, order: int = 1):
    """The volume in RAS on a 1 mm grid and the world position (mm) of its first voxel."""
    img = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(data, np.float32), affine))
    zooms = np.asarray(img.header.get_zooms()[:3], float)
    arr = ndimage.zoom(img.get_fdata(dtype=np.float32), zooms, order=order)
    return arr, img.affine[:3, 3]


def views(ct: np.ndarray, affine: np.ndarray, *, x_mm: float, z_mm: float):
    """Sagittal (anterior left, superior up) and axial (right left, anterior up) slices.

    Returns:
        ((sagittal, extent), (axial, extent)) with matplotlib extents in world mm.
    """
    arr, origin = canonical_mm(ct, affine)
    i = int(np.clip(round(x_mm - origin[0]), 0, arr.shape[0] - 1))
    k = int(np.clip(round(z_mm - origin[2]), 0, arr.shape[2] - 1))
    y0, y1 = origin[1], origin[1] + arr.shape[1] - 1
    z0, z1 = origin[2], origin[2] + arr.shape[2] - 1
    x0, x1 = origin[0], origin[0] + arr.shape[0] - 1
    sagittal = arr[i].T[::-1, ::-1]  # rows superior first, columns anterior first
    axial = arr[:, :, k].T[::-1, ::-1]  # rows anterior first, columns patient right first
    return (sagittal, (y1, y0, z0, z1)), (axial, (x1, x0, y0, y1))


def real_panels():
    """Views of the real CT, the axial slice through its L2 body centroid."""
    img = nib.load(REAL_CT)
    mask = nib.load(REAL_MASK)
    labels = np.asarray(mask.dataobj)
    ijk = np.argwhere(labels == AXIAL_LABEL).mean(axis=0)
    centre = mask.affine @ np.r_[ijk, 1.0]
    spine_x = mask.affine @ np.r_[np.argwhere(labels > 0).mean(axis=0), 1.0]
    return (
        views(np.asanyarray(img.dataobj), img.affine, x_mm=spine_x[0], z_mm=centre[2]),
        centre[2],
    )


def synthetic_panels(seed: int, count: int):
    """Views of the first ``count`` generated cases showing L2, with a short description."""
    config = preset("default")
    out = []
    for index in range(200):
        case = generate_case(config, case_rng(seed, index))
        target = [v for v in case.vertebrae if v.vertebra_label == AXIAL_LABEL and v.fully_in_view]
        if not target:
            continue
        x_mm = float(np.median([v.centroid_mm[0] for v in case.vertebrae]))
        acq = case.acquisition
        title = (
            f"synthetic {index}: {acq['kernel']} kernel, {acq['slice_thickness_mm']:.1f} mm,\n"
            f"noise {acq['noise_hu']:.0f} HU, contrast {acq['contrast_phase']}"
            + (", osteoporotic" if acq["osteoporotic"] else "")
        )
        z_mm = target[0].centroid_mm[2]
        out.append((title, (views(case.ct.data, case.ct.affine, x_mm=x_mm, z_mm=z_mm), z_mm)))
        if len(out) == count:
            return out
    raise RuntimeError(f"fewer than {count} cases with L2 in view from seed {seed}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "docs/figures/procedural_realism.png"))
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    columns = []
    if REAL_CT.is_file():
        columns.append(("real CT (VerSe 008, T12-L5)", real_panels()))
    columns += synthetic_panels(args.seed, 3)
    rows = [(view, window) for view in ("sagittal", "axial") for window in WINDOWS]
    fig, axes = plt.subplots(
        len(rows),
        len(columns),
        figsize=(3.6 * len(columns), 13.5),
        facecolor="black",
        squeeze=False,
    )
    for c, (title, ((sag, axial), z_mm)) in enumerate(columns):
        for r, (view, window) in enumerate(rows):
            image, extent = sag if view == "sagittal" else axial
            level, width = WINDOWS[window]
            ax = axes[r, c]
            ax.imshow(
                image,
                cmap="gray",
                vmin=level - width / 2,
                vmax=level + width / 2,
                extent=extent,
                interpolation="bilinear",
            )
            if view == "sagittal":  # about 200 mm around the axial slice (L2)
                ax.set_ylim(max(extent[2], z_mm - 110), min(extent[3], z_mm + 110))
                ax.axhline(z_mm, color="yellow", lw=0.6, ls=":")
            ax.tick_params(colors="white", labelsize=7)
            for spine in ax.spines.values():
                spine.set_color("gray")
            ax.set_xlabel(
                "anterior  ←  y (mm)  →  posterior"
                if view == "sagittal"
                else "patient right  ←  x (mm)  →  left",
                color="white",
                fontsize=7,
            )
            if c == 0:
                ax.set_ylabel(
                    f"{view}, {window} window\n"
                    + ("z (mm)" if view == "sagittal" else "y (mm), anterior up"),
                    color="white",
                    fontsize=8,
                )
        axes[0, c].set_title(title, color="white", fontsize=8)
    fig.text(
        0.5,
        0.005,
        "bone window W 1500 / L 300 HU, soft-tissue window W 400 / L 40 HU; "
        "radiological convention",
        color="white",
        ha="center",
        fontsize=8,
    )
    plt.tight_layout(rect=(0, 0.015, 1, 1))
    fig.savefig(args.out, dpi=110, facecolor="black")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

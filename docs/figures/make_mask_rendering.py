"""Make docs/figures/mask_rendering.png: real vertebra masks and CTs rendered from them.

Usage: python docs/figures/make_mask_rendering.py [--out docs/figures/mask_rendering.png]

Rows: real masks from ../shared/data/real (verse004: expert mask, official grade-2/3
fractures; verse018: predicted mask on 1 x 1 x 3 mm sagittal slices; verse007: expert mask
with its real CT in the last column for comparison). Columns: the label map with the official
grades, then random draws of :func:`spinefx.synthesis.mask_scan.render_ct` on the mask's
cropped grid (as the dataset writer renders). Mid-sagittal plane through the body centroids,
resampled to 1 mm, bone window W 1500 / L 300, anterior on the left, world mm axes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from spinefx.io import load_scan  # noqa: E402
from spinefx.preprocessing import resample_to_grid  # noqa: E402
from spinefx.synthesis.mask_render import body_centroids_mm, crop_to_labels  # noqa: E402
from spinefx.synthesis.mask_scan import render_ct, sample_render_params  # noqa: E402
from spinefx.synthesis.real_sources import find_real_subjects, load_real_mask  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared" / "data" / "real"
ROWS = (("verse004", "sub-verse004"), ("verse018", "verse018"), ("verse007", "sub-verse007"))
LEVEL, WIDTH = 300.0, 1500.0


def sagittal(image, x_mm: float, *, nearest: bool, bounds) -> tuple[np.ndarray, tuple]:
    """The world sagittal plane x = ``x_mm`` on a 1 mm grid over ``bounds`` (y0, y1, z0, z1)."""
    y0, y1, z0, z1 = bounds
    shape = (1, int(y1 - y0) + 1, int(z1 - z0) + 1)
    affine = np.eye(4)
    affine[:3, 3] = (x_mm, y0, z0)
    fill = 0 if nearest else -1024
    plane = resample_to_grid(
        image,
        shape=shape,
        affine=affine,
        interpolation="nearest" if nearest else "linear",
        fill_value=fill,
    )
    # rows: superior at the top (origin="lower"), columns: anterior (high y) on the left
    return np.asarray(plane.data[0]).T[:, ::-1], (y1, y0, z0, z1)


def _bounds(mask) -> tuple[float, float, float, float]:
    ijk = np.argwhere(np.asarray(mask.data) > 0)
    world = mask.voxel_to_world(ijk[:: max(1, len(ijk) // 20000)])
    lo, hi = world.min(0) - 25.0, world.max(0) + 25.0
    return float(lo[1]), float(hi[1]), float(lo[2]), float(hi[2])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "docs/figures/mask_rendering.png"))
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    subjects = {s.subject_id: s for s in find_real_subjects(REAL)}
    rows = [(subjects[sid], scan_id) for sid, scan_id in ROWS if sid in subjects]
    n_cols = args.draws + 2
    fig, axes = plt.subplots(
        len(rows), n_cols, figsize=(2.6 * n_cols, 4.4 * len(rows)), facecolor="black"
    )
    for r, (subject, scan_id) in enumerate(rows):
        scan = next(s for s in subject.scans if s.scan_id == scan_id)
        mask = crop_to_labels(load_real_mask(scan), margin_mm=30.0)
        centroids = body_centroids_mm(mask)
        x_mm = float(np.median([c[0] for c in centroids.values()]))
        bounds = _bounds(mask)
        ax = axes[r, 0]
        labels, extent = sagittal(mask, x_mm, nearest=True, bounds=bounds)
        shown = np.ma.masked_equal(labels, 0)
        ax.imshow(shown, cmap="tab20", origin="lower", extent=extent, interpolation="nearest")
        for label, c in centroids.items():
            grade = scan.grades.get(label)
            if grade and grade[0] > 0:
                text = f"g{grade[0]} {grade[1] or ''}"
                ax.text(c[1] + 22, c[2], text, color="yellow", fontsize=7, va="center", ha="right")
        spacing = "x".join(f"{s:.3g}" for s in mask.spacing_mm)
        ax.set_title(f"{scan_id} mask\n{mask.orientation} {spacing} mm", color="white", fontsize=8)
        for d in range(args.draws):
            params = sample_render_params(np.random.default_rng(args.seed + 100 * r + d))
            start = time.process_time()
            ct, _ = render_ct(mask, params)
            took = time.process_time() - start
            sl, extent = sagittal(ct, x_mm, nearest=False, bounds=bounds)
            ax = axes[r, d + 1]
            ax.imshow(sl, cmap="gray", vmin=LEVEL - WIDTH / 2, vmax=LEVEL + WIDTH / 2,
                      origin="lower", extent=extent)  # fmt: skip
            acq = params.acquisition
            ax.set_title(
                f"render {d + 1} ({took:.1f} s CPU)\n{acq.kernel} kernel, noise {acq.noise_sd_hu:.0f}"
                f" HU, trab {params.tissue.trabecular_hu:.0f} HU",
                color="white",
                fontsize=7,
            )
        ax = axes[r, -1]
        if scan.ct_path is not None:
            sl, extent = sagittal(load_scan(scan.ct_path), x_mm, nearest=False, bounds=bounds)
            ax.imshow(sl, cmap="gray", vmin=LEVEL - WIDTH / 2, vmax=LEVEL + WIDTH / 2,
                      origin="lower", extent=extent)  # fmt: skip
            ax.set_title(f"{scan_id}: the real CT", color="white", fontsize=8)
        else:
            ax.axis("off")
    for ax in axes.ravel():
        ax.tick_params(colors="gray", labelsize=6)
        ax.set_facecolor("black")
    for ax in axes[-1]:
        ax.set_xlabel("world y (mm), anterior left", color="gray", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("world z (mm)", color="gray", fontsize=7)
    fig.suptitle(
        "Mask-driven rendering: real vertebra masks (official Genant grades) rendered into CT"
        f" - mid-sagittal, bone window W {WIDTH:.0f} / L {LEVEL:.0f}",
        color="white",
        fontsize=10,
    )
    plt.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(args.out, dpi=100, facecolor="black")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Make docs/figures/real_fracture_simulation.png: a real vertebra deformed into Genant fractures.

Usage: python docs/figures/make_real_fracture_simulation.py [--subject verse008] [--level L3]
       [--out docs/figures/real_fracture_simulation.png]

Rows: wedge, biconcave, crush; columns: the original vertebra (official grade 0), then the
simulated grade 1, 2 and 3 fractures (:func:`spinefx.synthesis.deform_to_genant`). Every panel
is the same mid-sagittal plane of the vertebra's own frame, bone window (L 300 / W 1500 HU),
0.5 mm display grid, radiological display (anterior on the left, cranial up), axes in mm. The
panel titles give the intended loss and what spinefx's morphometry measures on the deformed mask.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from spinefx.conventions import vertebra_label  # noqa: E402
from spinefx.image import Image  # noqa: E402
from spinefx.synthesis import FractureTruth, deform_to_genant  # noqa: E402
from spinefx.synthesis.body_columns import vertebra_frame  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared/data/real"
WINDOW_HU = (-450.0, 1050.0)
#: (grade, height loss) of the simulated columns: the middle of each Genant range
LOSSES = ((1, 0.225), (2, 0.32), (3, 0.48))
#: shape -> superior fraction (biconcave: both endplates)
SHAPES = {"wedge": 0.9, "biconcave": 0.5, "crush": 0.75}


def sagittal_plane(
    ct: Image, *, origin_mm: np.ndarray, axes: np.ndarray, half_mm=(45.0, 48.0), step_mm=0.5
) -> np.ndarray:
    """The plane u = 0 of a vertebra frame: rows cranial -> caudal, columns anterior -> posterior."""
    v = np.arange(half_mm[0], -half_mm[0] - 1e-6, -step_mm)
    w = np.arange(half_mm[1], -half_mm[1] - 1e-6, -step_mm)
    ww, vv = np.meshgrid(w, v, indexing="ij")
    world = origin_mm + vv[..., None] * axes[:, 1] + ww[..., None] * axes[:, 2]
    vox = ct.world_to_voxel(world.reshape(-1, 3)).T
    return ndimage.map_coordinates(ct.data, vox, order=1, cval=-1000.0).reshape(ww.shape)


def fracture_figure(ct: Image, mask: Image, *, vertebra_label: int, out_path: Path, title: str):
    """Draw the 3 x 4 panel figure of one vertebra and write it to ``out_path`` (PNG)."""
    origin, axes, _ = vertebra_frame(mask, vertebra_label)
    half = (45.0, 48.0)
    extent = (half[0], -half[0], -half[1], half[1])  # anterior (+v) on the left
    fig, grid = plt.subplots(3, 4, figsize=(14.0, 13.5), constrained_layout=True)
    original = sagittal_plane(ct, origin_mm=origin, axes=axes, half_mm=half)
    noise = np.random.default_rng(0).standard_normal(ct.shape)
    for row, (shape, superior) in enumerate(SHAPES.items()):
        panels = [("original (official grade 0)", original)]
        for grade, loss in LOSSES:
            truth = FractureTruth(grade, shape, loss, superior_fraction=superior)
            ct2, _, measured, own = deform_to_genant(ct, mask, {vertebra_label: truth}, noise=noise)
            m = measured[vertebra_label]
            panels.append(
                (
                    f"{shape} grade {grade}: {100 * loss:.1f}% "
                    f"(own height {100 * own[vertebra_label]:.0f}%)\n"
                    f"measured: grade {m.genant_grade} {m.shape or ''} {100 * m.height_loss:.0f}%",
                    sagittal_plane(ct2, origin_mm=origin, axes=axes, half_mm=half),
                )
            )
        for col, (name, image) in enumerate(panels):
            ax = grid[row, col]
            ax.imshow(image, cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1], extent=extent)
            ax.set_title(name, fontsize=8.5)
            ax.set_xlabel("anterior <- v (mm) -> posterior", fontsize=8)
            ax.set_ylabel("caudal <- w (mm) -> cranial", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=11)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


def main() -> None:
    from spinefx.synthesis.real_sources import find_real_subjects, load_real_pair

    parser = argparse.ArgumentParser()
    parser.add_argument("--subject", default="verse008")
    parser.add_argument("--level", default="L3")
    parser.add_argument("--out", default=str(ROOT / "docs/figures/real_fracture_simulation.png"))
    args = parser.parse_args()
    subject = {s.subject_id: s for s in find_real_subjects(REAL)}[args.subject]
    scan = subject.ct_scans[0]
    ct, mask = load_real_pair(scan)
    label = vertebra_label(args.level)
    title = (
        f"Fracture simulation on real tissue: {scan.scan_id} {args.level} "
        f"({ct.orientation}, {'x'.join(f'{s:.3g}' for s in ct.spacing_mm)} mm), "
        "mid-sagittal plane of the vertebra's frame, anterior left"
    )
    print(fracture_figure(ct, mask, vertebra_label=label, out_path=Path(args.out), title=title))


if __name__ == "__main__":
    main()

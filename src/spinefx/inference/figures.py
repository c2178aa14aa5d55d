"""The screening figure: mid-sagittal overlay of p(fracture) on the network view (matplotlib)."""

from __future__ import annotations

import numpy as np

#: Fracture probabilities below this are not drawn on the overlay.
OVERLAY_MIN_PROBABILITY = 0.05


def midsagittal_figure(result, *, hu_window=(-400.0, 1000.0)):
    """Mid-sagittal slice of the 1 mm RAS network view with p(fracture) overlaid.

    The sagittal plane is the fixed-x slice through the median centroid x (or the volume
    centre); y (anterior) runs left->right, z (superior) upwards. Probabilities below
    :data:`OVERLAY_MIN_PROBABILITY` are transparent; each vertebra is marked with its level and
    score.

    Args:
        result: a :class:`~spinefx.inference.screening.DetectionResult`.
        hu_window: grey-level window in HU.

    Returns:
        a matplotlib ``Figure``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    view, frac = result.network_view, result.fracture_map_1mm
    if result.vertebrae:
        xs = [view.world_to_voxel(np.asarray(v.centroid_mm))[0] for v in result.vertebrae]
        i = int(np.clip(round(float(np.median(xs))), 0, view.shape[0] - 1))
    else:
        i = view.shape[0] // 2
    ct = np.asarray(view.data[i]).T  # (z, y)
    prob = np.asarray(frac.data[i]).T
    overlay = np.ma.masked_less(prob, OVERLAY_MIN_PROBABILITY)
    fig, ax = plt.subplots(figsize=(5, 5 * ct.shape[0] / max(ct.shape[1], 1) + 0.5))
    sp = view.spacing_mm  # isotropic grid: axes in mm from the grid origin
    extent = (-0.5 * sp[1], (ct.shape[1] - 0.5) * sp[1], -0.5 * sp[2], (ct.shape[0] - 0.5) * sp[2])
    ax.imshow(ct, cmap="gray", origin="lower", vmin=hu_window[0], vmax=hu_window[1], extent=extent)
    im = ax.imshow(
        overlay, cmap="autumn_r", origin="lower", vmin=0, vmax=1, alpha=0.6, extent=extent
    )
    for v in result.vertebrae:
        _, y, z = view.world_to_voxel(np.asarray(v.centroid_mm)) * sp
        ax.plot(y, z, "c+", ms=6)
        ax.text(y + 3, z, f"{v.level} {v.probability:.2f}", color="cyan", fontsize=7)
    state = "fracture" if result.patient_fractured else "no fracture"
    ax.set_title(f"p(fracture), sagittal slice x = {i * sp[0]:.0f} mm: patient {state}", fontsize=9)
    ax.set_xlabel("y (anterior) [mm]")
    ax.set_ylabel("z (superior) [mm]")
    fig.colorbar(im, ax=ax, fraction=0.04, label="p(fracture)")
    return fig

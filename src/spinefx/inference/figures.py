"""The screening figure: mid-sagittal overlay of p(fracture) on the network view (matplotlib).

Drawn in the display convention of every spinefx figure (:mod:`spinefx.display`): anterior on
the left, superior at the top, edge letters, ticks and the slice position in world RAS+ mm.
"""

from __future__ import annotations

import numpy as np

from spinefx.display import annotate_axes, display_slice

#: Fracture probabilities below this are not drawn on the overlay.
OVERLAY_MIN_PROBABILITY = 0.05
#: Width of the figure's image area in inches (the height follows the view's aspect, capped).
FIGURE_WIDTH_IN = 5.0
MAX_FIGURE_HEIGHT_IN = 9.0


def midsagittal_figure(result, *, hu_window=(-400.0, 1000.0)):
    """Mid-sagittal slice of the 1 mm RAS network view with p(fracture) overlaid.

    The sagittal plane is the fixed-x slice through the median centroid x (or the volume
    centre). Probabilities below :data:`OVERLAY_MIN_PROBABILITY` are transparent; each vertebra
    is marked with its level and score at its world position.

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
    through = None
    if result.vertebrae:
        through = np.median([np.asarray(v.centroid_mm, float) for v in result.vertebrae], axis=0)
    ct = display_slice(view, plane="sagittal", through_mm=through)
    prob = display_slice(frac, plane="sagittal", index=ct.index)
    overlay = np.ma.masked_less(prob.pixels, OVERLAY_MIN_PROBABILITY)
    width_mm, height_mm = ct.size_mm
    height_in = min(FIGURE_WIDTH_IN * height_mm / max(width_mm, 1e-6), MAX_FIGURE_HEIGHT_IN)
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH_IN + 1.2, max(height_in, 2.0) + 0.9))
    ax.imshow(ct.pixels, cmap="gray", vmin=hu_window[0], vmax=hu_window[1], **ct.imshow_kwargs())
    im = ax.imshow(overlay, cmap="autumn_r", vmin=0, vmax=1, alpha=0.6, **ct.imshow_kwargs())
    for v in result.vertebrae:
        _, y, z = np.asarray(v.centroid_mm, float)
        ax.plot(y, z, "c+", ms=6)
        # y - 3 mm: just right of the mark (anterior is on the left)
        ax.text(y - 3, z, f"{v.level} {v.probability:.2f}", color="cyan", fontsize=7)
    annotate_axes(ax, ct, fontsize=8)
    state = result.patient_state.lower()
    ax.set_title(f"p(fracture), sagittal slice {ct.position_label}: patient {state}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04, label="p(fracture)")
    return fig

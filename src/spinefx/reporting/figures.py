"""Slice images of vertebra patches and scans, with activation overlays, as PNG bytes.

Used by the web app's slice browser and PNG fallback, and by the HTML report. Rendering is
plain array work (window, colour map lookup, boundary pixels) plus one PIL resize, so one slice
takes a few milliseconds: much faster than a matplotlib figure per slice, which matters for the
browser.

Display convention: the one of every spinefx figure (:mod:`spinefx.display`), radiological.
Sagittal slices show anterior on the left and cranial up, axial slices anterior up and the
patient's right on the viewer's left, coronal slices cranial up and the patient's right on the
left; each image carries its edge letters and the slice's world position (``x = 12.3 mm``,
world RAS+). Patches are shown in their spine frame (x right, y anterior, z cranial), scans on
their own grid brought to RAS voxel order (a permutation/flip, no resampling). Every image keeps
its millimetre aspect ratio inside a bounded box, so a thin slab or a tall scan stays a
readable size.
"""

from __future__ import annotations

import io

import matplotlib
import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont
from skimage.segmentation import find_boundaries

from spinefx.conventions import VERTEBRA_LEVELS as VERTEBRA_LABEL_NAMES
from spinefx.conventions import level_name
from spinefx.display import LETTER_RGB, PLANES, DisplaySlice, display_slice, fit_size, plane_axis
from spinefx.errors import InputError
from spinefx.image import Image

__all__ = [
    "PLANES",
    "best_slice",
    "overview_slice",
    "png_size",
    "overlay_rgb",
    "render_patch_slice",
    "render_scan_overview",
    "slice_count",
    "window_to_gray",
]

#: Bone window (level 400 HU, width 1800 HU): vertebral cortex and endplates stay visible
#: without the washed-out look of a full [-1000, 1000] HU ramp.
BONE_WINDOW_HU: tuple[float, float] = (-500.0, 1300.0)
OUTLINE_RGB = (255, 221, 0)
CENTROID_FRACTURE_RGB = (230, 60, 50)
CENTROID_NORMAL_RGB = (60, 170, 90)
#: box the scan overview fits in (its mm aspect kept): a thin slab is capped by the width,
#: a tall scan by the height
OVERVIEW_MAX_PX: tuple[int, int] = (720, 540)


def slice_count(shape: tuple[int, int, int], *, plane: str) -> int:
    """Number of slices of a volume of ``shape`` in ``plane``."""
    return int(shape[plane_axis(plane)])


def window_to_gray(
    hu: np.ndarray, *, window_hu: tuple[float, float] = BONE_WINDOW_HU
) -> np.ndarray:
    """Map HU to uint8 grey levels with a linear window ``(low_hu, high_hu)``."""
    low, high = window_hu
    scaled = (np.asarray(hu, dtype=np.float32) - low) / max(high - low, 1e-6)
    return (np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def overlay_rgb(
    gray: np.ndarray,
    heat: np.ndarray | None = None,
    *,
    threshold: float | None = None,
    heat_max: float | None = None,
    outline: np.ndarray | None = None,
    alpha: float = 0.6,
    colormap: str = "inferno",
) -> np.ndarray:
    """Blend a heat map over a grey slice and outline its thresholded region.

    Args:
        gray: ``(H, W)`` uint8 slice.
        heat: ``(H, W)`` activation (any units) or None for the plain slice.
        threshold: outline the region ``heat > threshold`` (the unit's dissection threshold).
        outline: ``(H, W)`` bool region to outline instead of ``heat > threshold``.
        heat_max: value mapped to the top of the colour map (default: the slice's max), so all
            slices of one unit share a scale when the caller passes the volume max.
        alpha: opacity of the heat map where it is at its maximum.
        colormap: matplotlib colour map name.

    Returns:
        ``(H, W, 3)`` uint8 RGB image.
    """
    rgb = np.repeat(gray[..., None], 3, axis=2).astype(np.float32)
    if heat is not None:
        heat = np.asarray(heat, dtype=np.float32)
        top = float(heat_max) if heat_max is not None else float(np.max(heat))
        norm = np.clip(heat / top, 0.0, 1.0) if top > 0 else np.zeros_like(heat)
        colours = matplotlib.colormaps[colormap](norm)[..., :3] * 255.0
        weight = (alpha * norm**2)[..., None]  # weak activation stays transparent
        rgb = rgb * (1.0 - weight) + colours * weight
    region = outline
    if region is None and heat is not None and threshold is not None:
        region = heat > threshold
    if region is not None:
        rgb[find_boundaries(np.asarray(region, bool), mode="inner")] = OUTLINE_RGB
    return np.clip(rgb, 0, 255).astype(np.uint8)


def png_bytes(image: PILImage.Image) -> bytes:
    """Encode a PIL image as PNG."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def render_patch_slice(
    patch: Image,
    *,
    plane: str = "sagittal",
    index: int | None = None,
    heat: np.ndarray | None = None,
    threshold: float | None = None,
    region: np.ndarray | None = None,
    height_px: int = 256,
    max_width_px: int | None = None,
    window_hu: tuple[float, float] = BONE_WINDOW_HU,
) -> bytes:
    """PNG of one slice of a vertebra patch, optionally with an activation overlay.

    The slice and its activation are interpolated to the display size first (bilinear), then
    the thresholded region is outlined there, so the outline is a crisp 1-pixel line that
    follows the interpolated map rather than the coarse voxel staircase. Edge letters and the
    slice's world position are drawn on the image.

    Args:
        patch: HU patch in its local frame (patch->world affine), data ``(X, Y, Z)``.
        plane: display plane.
        index: slice index along the plane's axis; default the middle slice.
        heat: activation ``(X, Y, Z)`` on the patch grid (input resolution), or None.
        threshold: the unit's threshold ``T_k``, outlined on the slice.
        region: bool ``(X, Y, Z)`` region to outline instead of ``heat > threshold``.
        height_px: output height (less when the width cap binds).
        max_width_px: output width cap (default ``2 * height_px``).
        window_hu: grey-level window.
    """
    if heat is not None and np.shape(heat) != patch.shape:
        raise InputError(
            f"activation map shape {np.shape(heat)} does not match the patch {patch.shape}",
            fix="put the activation on the patch grid (input resolution) before rendering",
        )
    view = display_slice(patch, plane=plane, index=index)
    width_mm, height_mm = view.size_mm
    size = fit_size(
        width_mm, height_mm, max_width_px=max_width_px or 2 * height_px, max_height_px=height_px
    )
    gray = window_to_gray(_resize(view.pixels, size), window_hu=window_hu)
    heat_2d = heat_max = outline = None
    if heat is not None:
        heat_2d = _resize(_same_slice(patch.with_data(heat), view), size)
        heat_max = float(np.max(heat))
    if region is not None:
        region_2d = _same_slice(patch.with_data(np.asarray(region, np.float32)), view)
        outline = _resize(region_2d, size) >= 0.5
    rgb = overlay_rgb(gray, heat_2d, threshold=threshold, heat_max=heat_max, outline=outline)
    image = PILImage.fromarray(rgb)
    draw_orientation(image, view)
    return png_bytes(image)


def _same_slice(image: Image, view: DisplaySlice) -> np.ndarray:
    """The pixels of ``image`` (same grid as the view's volume) on the plane of ``view``."""
    return display_slice(image, plane=view.plane, index=view.index).pixels


def _resize(slice_2d: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float slice to ``size = (width, height)`` (PIL mode ``F``)."""
    img = PILImage.fromarray(np.ascontiguousarray(slice_2d, dtype=np.float32))
    return np.asarray(img.resize(size, PILImage.BILINEAR), dtype=np.float32)


def draw_orientation(image: PILImage.Image, view: DisplaySlice) -> None:
    """Edge letters (A/P, S/I, R/L) and the slice's world position, drawn onto ``image``.

    The letters sit at the middle of each edge, the position (``x = 12.3 mm``, world RAS+)
    in the top-left corner, below the top letter when the image is too narrow for both.
    """
    width, height = image.size
    draw = ImageDraw.Draw(image)
    font = _font(max(11, min(18, min(width, height) // 14)))
    pad = 3

    def box(text):
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=1)
        return left, top, right - left, bottom - top

    def put(x, y, text):
        left, top, _, _ = box(text)
        draw.text(
            (x - left, y - top),
            text,
            font=font,
            fill=LETTER_RGB,
            stroke_width=1,
            stroke_fill=(0, 0, 0),
        )

    for edge, letter in view.letters.items():
        _, _, w, h = box(letter)
        x, y = {
            "left": (pad, (height - h) / 2),
            "right": (width - w - pad, (height - h) / 2),
            "top": ((width - w) / 2, pad),
            "bottom": ((width - w) / 2, height - h - pad),
        }[edge]
        put(x, y, letter)
    label = view.position_label
    _, _, w, h = box(label)
    _, _, top_w, top_h = box(view.letters["top"])
    clear_of_top = pad + w + 4 < (width - top_w) / 2
    put(pad, pad if clear_of_top else 2 * pad + top_h, label)


def _font(size: int):
    return ImageFont.load_default(size=size)


def best_slice(
    heat: np.ndarray,
    *,
    plane: str,
    threshold: float | None = None,
    region: np.ndarray | None = None,
) -> int:
    """Index of the slice in ``plane`` where the activation mass inside the region is largest.

    The region is ``region`` when given, else ``heat > threshold``, else everywhere.
    """
    axis = plane_axis(plane)
    if region is None and threshold is not None:
        region = heat > threshold
    mass = np.where(region, heat, 0.0) if region is not None else np.abs(heat)
    other = tuple(a for a in range(3) if a != axis)
    per_slice = np.asarray(mass, dtype=np.float64).sum(axis=other)
    if not np.any(per_slice > 0):
        return int(heat.shape[axis] // 2)
    return int(np.argmax(per_slice))


def overview_slice(scan: Image, centroids_mm: dict[int, np.ndarray]) -> DisplaySlice:
    """The sagittal slice the overview shows: through the median centroid (else the middle)."""
    points = np.array(list(centroids_mm.values()), dtype=float).reshape(-1, 3)
    through = np.median(points, axis=0) if len(points) else None
    return display_slice(scan, plane="sagittal", through_mm=through)


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) of a PNG from its header."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def render_scan_overview(
    scan: Image,
    centroids_mm: dict[int, np.ndarray],
    *,
    fractured: dict[int, bool] | None = None,
    max_size_px: tuple[int, int] = OVERVIEW_MAX_PX,
    window_hu: tuple[float, float] = BONE_WINDOW_HU,
) -> bytes:
    """PNG of the mid-sagittal scan slice through the vertebra centroids, centroids marked.

    Each centroid is a dot (red: classified as fractured, green: not) labelled with its level;
    the edges carry their letters and the corner the slice's world x.

    Args:
        scan: the CT in any orientation (RAS+ mm affine).
        centroids_mm: vertebra label -> centroid in world RAS+ mm.
        fractured: vertebra label -> classifier decision.
        max_size_px: ``(width, height)`` box the image fits in, its mm aspect ratio kept.
        window_hu: grey-level window.
    """
    view = overview_slice(scan, centroids_mm)
    rows, cols = view.pixels.shape
    size = fit_size(*view.size_mm, max_width_px=max_size_px[0], max_height_px=max_size_px[1])
    gray = window_to_gray(_resize(view.pixels, size), window_hu=window_hu)
    img = PILImage.fromarray(overlay_rgb(gray))
    draw = ImageDraw.Draw(img)
    font = _font(max(10, min(14, size[1] // 30)))
    sx, sy = size[0] / cols, size[1] / rows
    fractured = fractured or {}
    for label, point in centroids_mm.items():
        col, row = view.pixel_of(point)
        cx, cy = (col + 0.5) * sx, (row + 0.5) * sy  # pixel centres in display space
        colour = CENTROID_FRACTURE_RGB if fractured.get(label) else CENTROID_NORMAL_RGB
        draw.ellipse((cx - 5, cy - 5, cx + 5, cy + 5), fill=colour, outline=(255, 255, 255))
        if int(label) in VERTEBRA_LABEL_NAMES:
            draw.text((cx + 9, cy - 7), level_name(label), fill=(255, 255, 255), font=font)
    draw_orientation(img, view)
    return png_bytes(img)

"""Slice images of vertebra patches and scans, with activation overlays, as PNG bytes.

Used by the web app's slice browser and by the HTML report. Rendering is plain array work
(window, colour map lookup, boundary pixels) plus one PIL resize, so one slice takes a few
milliseconds: much faster than a matplotlib figure per slice, which matters for the browser.

Display conventions (radiological):
    * patches are indexed in their local frame ``(x: left-right, y: anterior, z: cranial)``;
      a *sagittal* slice is a fixed ``x`` index shown with cranial up and anterior to the left,
      an *axial* slice a fixed ``z`` index shown with anterior up and the patient's right on
      the viewer's left, a *coronal* slice a fixed ``y`` index with cranial up.
    * scans are first brought to RAS+ voxel order (a permutation/flip, no resampling), then
      shown the same way with their millimetre aspect ratio.
"""

from __future__ import annotations

import io
from typing import Literal

import matplotlib
import numpy as np
from PIL import Image as PILImage
from skimage.segmentation import find_boundaries

from spinefx.conventions import VERTEBRA_LEVELS as VERTEBRA_LABEL_NAMES
from spinefx.errors import InputError
from spinefx.image import Image

Plane = Literal["sagittal", "axial", "coronal"]
PLANES: tuple[str, ...] = ("sagittal", "axial", "coronal")
#: array axis held fixed by each plane (patch/RAS voxel order x, y, z).
PLANE_AXIS: dict[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}

#: Bone window (level 400 HU, width 1800 HU): vertebral cortex and endplates stay visible
#: without the washed-out look of a full [-1000, 1000] HU ramp.
BONE_WINDOW_HU: tuple[float, float] = (-500.0, 1300.0)
OUTLINE_RGB = (255, 221, 0)
CENTROID_FRACTURE_RGB = (230, 60, 50)
CENTROID_NORMAL_RGB = (60, 170, 90)


def slice_count(shape: tuple[int, int, int], *, plane: Plane) -> int:
    """Number of slices of a volume of ``shape`` in ``plane``."""
    return int(shape[_plane_axis(plane)])


def take_slice(volume: np.ndarray, *, plane: Plane, index: int) -> np.ndarray:
    """One display-oriented 2-D slice (rows top→bottom, columns left→right) of an (x, y, z) array.

    Args:
        volume: array ``(X, Y, Z)`` in patch-frame or RAS voxel order.
        plane: ``"sagittal"`` (fixed x), ``"coronal"`` (fixed y) or ``"axial"`` (fixed z).
        index: slice index along the fixed axis; clipped to the valid range.

    Returns:
        2-D array: sagittal ``(Z, Y)`` cranial up / anterior left; coronal ``(Z, X)`` cranial
        up / patient right on the left; axial ``(Y, X)`` anterior up / patient right on the left.
    """
    axis = _plane_axis(plane)
    index = int(np.clip(index, 0, volume.shape[axis] - 1))
    sl = np.take(volume, index, axis=axis)  # sagittal (Y,Z), coronal (X,Z), axial (X,Y)
    # rows must run from high to low (cranial/anterior at the top), columns high to low
    # (anterior left for sagittal, patient right = +x on the viewer's left otherwise).
    return sl.T[::-1, ::-1]


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


def png_bytes(rgb: np.ndarray, *, pixel_aspect: float = 1.0, height_px: int = 256) -> bytes:
    """Encode an RGB array as PNG, upscaled to ``height_px`` rows.

    Args:
        rgb: ``(H, W, 3)`` uint8.
        pixel_aspect: physical width / height of one pixel (mm/mm), to keep anatomy undistorted.
        height_px: output height in pixels.
    """
    h, w = rgb.shape[:2]
    width_px = max(1, round(height_px * w * pixel_aspect / h))
    img = PILImage.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).resize(
        (width_px, height_px), PILImage.NEAREST
    )
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def render_patch_slice(
    patch: Image,
    *,
    plane: Plane = "sagittal",
    index: int | None = None,
    heat: np.ndarray | None = None,
    threshold: float | None = None,
    region: np.ndarray | None = None,
    height_px: int = 256,
    window_hu: tuple[float, float] = BONE_WINDOW_HU,
) -> bytes:
    """PNG of one slice of a vertebra patch, optionally with an activation overlay.

    The slice and its activation are interpolated to the display size first (bilinear), then
    the thresholded region is outlined there, so the outline is a crisp 1-pixel line that
    follows the interpolated map rather than the coarse voxel staircase.

    Args:
        patch: HU patch in its local frame (patch→world affine), data ``(X, Y, Z)``.
        plane: display plane.
        index: slice index along the plane's axis; default the middle slice.
        heat: activation ``(X, Y, Z)`` on the patch grid (input resolution), or None.
        threshold: the unit's threshold ``T_k``, outlined on the slice.
        region: bool ``(X, Y, Z)`` region to outline instead of ``heat > threshold``.
        height_px: output height.
        window_hu: grey-level window.
    """
    axis = _plane_axis(plane)
    if heat is not None and np.shape(heat) != patch.shape:
        raise InputError(
            f"activation map shape {np.shape(heat)} does not match the patch {patch.shape}",
            fix="put the activation on the patch grid (input resolution) before rendering",
        )
    if index is None:
        index = patch.shape[axis] // 2
    hu = take_slice(patch.data, plane=plane, index=index)
    size = _display_size(hu.shape, pixel_aspect=_pixel_aspect(patch, plane), height_px=height_px)
    gray = window_to_gray(_resize(hu, size), window_hu=window_hu)
    heat_2d = None if heat is None else _resize(take_slice(heat, plane=plane, index=index), size)
    heat_max = None if heat is None else float(np.max(heat))
    outline = None
    if region is not None:
        region_2d = take_slice(np.asarray(region, np.float32), plane=plane, index=index)
        outline = _resize(region_2d, size) >= 0.5
    rgb = overlay_rgb(gray, heat_2d, threshold=threshold, heat_max=heat_max, outline=outline)
    return png_bytes(rgb, height_px=height_px)


def _display_size(
    shape: tuple[int, int], *, pixel_aspect: float, height_px: int
) -> tuple[int, int]:
    """(width, height) in display pixels of a ``(rows, cols)`` slice."""
    rows, cols = shape
    return max(1, round(height_px * cols * pixel_aspect / rows)), height_px


def _resize(slice_2d: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float slice to ``size = (width, height)`` (PIL mode ``F``)."""
    img = PILImage.fromarray(np.ascontiguousarray(slice_2d, dtype=np.float32))
    return np.asarray(img.resize(size, PILImage.BILINEAR), dtype=np.float32)


def best_slice(
    heat: np.ndarray,
    *,
    plane: Plane,
    threshold: float | None = None,
    region: np.ndarray | None = None,
) -> int:
    """Index of the slice in ``plane`` where the activation mass inside the region is largest.

    The region is ``region`` when given, else ``heat > threshold``, else everywhere.
    """
    axis = _plane_axis(plane)
    if region is None and threshold is not None:
        region = heat > threshold
    mass = np.where(region, heat, 0.0) if region is not None else np.abs(heat)
    other = tuple(a for a in range(3) if a != axis)
    per_slice = np.asarray(mass, dtype=np.float64).sum(axis=other)
    if not np.any(per_slice > 0):
        return int(heat.shape[axis] // 2)
    return int(np.argmax(per_slice))


def canonical_view(scan: Image) -> Image:
    """The scan with its array permuted/flipped to RAS+ voxel order (no resampling).

    nibabel's orientation tools do the bookkeeping; the returned affine still maps voxels to
    the same world points, so overlays stay exact.
    """
    import nibabel as nib

    ornt = nib.orientations.io_orientation(scan.affine)
    data = nib.orientations.apply_orientation(np.asarray(scan.data), ornt)
    affine = scan.affine @ nib.orientations.inv_ornt_aff(ornt, scan.shape)
    return Image(data, affine, dict(scan.meta))


def render_scan_overview(
    scan: Image,
    centroids_mm: dict[int, np.ndarray],
    *,
    fractured: dict[int, bool] | None = None,
    height_px: int = 420,
    window_hu: tuple[float, float] = BONE_WINDOW_HU,
) -> bytes:
    """PNG of the mid-sagittal scan slice through the vertebra centroids, centroids marked.

    Each centroid is a dot (red: classified as fractured, green: not) labelled with its level.

    Args:
        scan: the CT in any orientation (RAS+ mm affine).
        centroids_mm: vertebra label → centroid in world RAS+ mm.
        fractured: vertebra label → classifier decision.
        height_px: output height.
        window_hu: grey-level window.
    """
    from PIL import ImageDraw

    from spinefx.conventions import level_name

    ras = canonical_view(scan)
    points = np.array(list(centroids_mm.values()), dtype=float).reshape(-1, 3)
    if len(points):
        x_index = int(round(float(np.median(ras.world_to_voxel(points)[:, 0]))))
    else:
        x_index = ras.shape[0] // 2
    hu = take_slice(ras.data, plane="sagittal", index=x_index)
    rows, cols = hu.shape
    size = _display_size(hu.shape, pixel_aspect=_pixel_aspect(ras, "sagittal"), height_px=height_px)
    gray = window_to_gray(_resize(hu, size), window_hu=window_hu)
    img = PILImage.fromarray(overlay_rgb(gray))
    draw = ImageDraw.Draw(img)
    sx, sy = size[0] / cols, size[1] / rows
    fractured = fractured or {}
    for label, point in centroids_mm.items():
        _, j, k = ras.world_to_voxel(np.asarray(point, dtype=float))
        # take_slice flips rows (z) and columns (y); +0.5: pixel centres in display space
        cx, cy = (cols - 1 - j + 0.5) * sx, (rows - 1 - k + 0.5) * sy
        colour = CENTROID_FRACTURE_RGB if fractured.get(label) else CENTROID_NORMAL_RGB
        draw.ellipse((cx - 5, cy - 5, cx + 5, cy + 5), fill=colour, outline=(255, 255, 255))
        if int(label) in VERTEBRA_LABEL_NAMES:
            draw.text((cx + 9, cy - 6), level_name(label), fill=(255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _pixel_aspect(image: Image, plane: Plane) -> float:
    """Physical width/height of one displayed pixel for ``plane``."""
    sx, sy, sz = image.spacing_mm
    return {"sagittal": sy / sz, "coronal": sx / sz, "axial": sx / sy}[plane]


def _plane_axis(plane: str) -> int:
    try:
        return PLANE_AXIS[plane]
    except KeyError:
        raise InputError(f"unknown plane {plane!r}", fix=f"use one of {PLANES}") from None

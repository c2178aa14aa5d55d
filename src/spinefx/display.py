"""The display convention of every static figure, written once.

Radiological display, the convention of PACS viewers (and of the app's NiiVue viewer):

* **axial** (fixed z): anterior at the top, the patient's right on the viewer's left;
* **coronal** (fixed y): superior at the top, the patient's right on the viewer's left;
* **sagittal** (fixed x): superior at the top, anterior on the viewer's left.

World space is RAS+ mm (:mod:`spinefx.conventions`), so on every plane the image's columns
run from the positive end of a world axis (left) to its negative end (right), and its rows
from the positive end (top) to the negative end (bottom). Each view carries its edge letters
(A/P, S/I, R/L) and the world coordinates of its pixels, so axis ticks and captions
("x = 58.0 mm") are world RAS+ mm, never millimetres from a grid edge.

:func:`display_slice` turns an :class:`~spinefx.image.Image` (any voxel order) plus a plane and
a world position into a :class:`DisplaySlice`: the display-ready 2-D array, its extent in world
mm and its edge letters. Figures draw that array (matplotlib: ``imshow(view.pixels,
**view.imshow_kwargs())`` then :func:`annotate_axes`; PIL: the pixels as they are, letters at
the edges) and nothing else decides orientation.

The volume is first brought to RAS voxel order by an exact permutation/flip (nibabel's
``io_orientation``: the nearest world axis of each voxel axis), so no voxel is resampled. On an
axis-aligned grid (CT, the network views) the extent is exact; on an oblique grid (a patch in
a tilted spine frame) the letters name the nearest world direction and the coordinates are
those along the slice's central row and column (:attr:`DisplaySlice.obliquity_deg` says how
far off the grid is).
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel.orientations as nio
import numpy as np

from spinefx.errors import InputError
from spinefx.image import Image

PLANES: tuple[str, ...] = ("sagittal", "axial", "coronal")
#: world (RAS) axis held fixed by each plane
PLANE_AXIS: dict[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}
#: world axes along the image's (columns, rows) in each plane
DISPLAY_AXES: dict[str, tuple[int, int]] = {"sagittal": (1, 2), "coronal": (0, 2), "axial": (0, 1)}
AXIS_NAMES = ("x", "y", "z")
#: direction letter of each world axis: (positive end, negative end)
AXIS_LETTERS = (("R", "L"), ("A", "P"), ("S", "I"))
#: colour of the edge letters (light blue: apart from the grey CT, the yellow outlines, the
#: red/green decision dots and the inferno heat map)
LETTER_RGB = (120, 220, 255)


@dataclass(frozen=True)
class DisplaySlice:
    """One plane of a volume, oriented for display, with its world geometry.

    Attributes:
        pixels: ``(rows, columns)`` values, row 0 at the top, column 0 on the left.
        plane: ``"sagittal"``, ``"coronal"`` or ``"axial"``.
        index: slice index along the fixed axis of the RAS-ordered volume.
        position_mm: world RAS+ coordinate (mm) of the slice along the fixed axis.
        extent_mm: ``(left, right, bottom, top)`` world mm of the outer pixel edges along the
            column and row axes (``left > right`` and ``top > bottom``: positive ends on the
            left and at the top), as matplotlib's ``imshow(extent=..., origin="upper")`` wants.
        letters: edge -> direction letter, edges ``left``, ``right``, ``top``, ``bottom``.
        obliquity_deg: largest angle between a voxel axis and its world axis (0: aligned).
    """

    pixels: np.ndarray
    plane: str
    index: int
    position_mm: float
    extent_mm: tuple[float, float, float, float]
    letters: dict[str, str]
    obliquity_deg: float = 0.0

    @property
    def fixed_axis(self) -> str:
        """Name of the world axis held fixed (``x`` for sagittal)."""
        return AXIS_NAMES[PLANE_AXIS[self.plane]]

    @property
    def axis_names(self) -> tuple[str, str]:
        """Names of the world axes along the columns and the rows."""
        cols, rows = DISPLAY_AXES[self.plane]
        return AXIS_NAMES[cols], AXIS_NAMES[rows]

    @property
    def pixel_size_mm(self) -> tuple[float, float]:
        """Physical (width, height) in mm of one displayed pixel."""
        left, right, bottom, top = self.extent_mm
        rows, cols = self.pixels.shape[:2]
        return (left - right) / cols, (top - bottom) / rows

    @property
    def size_mm(self) -> tuple[float, float]:
        """Physical (width, height) in mm of the whole view."""
        left, right, bottom, top = self.extent_mm
        return left - right, top - bottom

    @property
    def position_label(self) -> str:
        """World position of the slice, e.g. ``"x = 58.0 mm"``."""
        return f"{self.fixed_axis} = {self.position_mm:.1f} mm"

    @property
    def axis_labels(self) -> tuple[str, str]:
        """Axis titles of the columns and rows: world axis, unit and the directions shown."""
        cols, rows = self.axis_names
        letters = self.letters
        return (
            f"{cols} (world RAS+, mm): {letters['left']} \u2190 \u2192 {letters['right']}",
            f"{rows} (world RAS+, mm): {letters['bottom']} \u2192 {letters['top']}",
        )

    def pixel_of(self, point_mm) -> tuple[float, float]:
        """(column, row) of a world point in pixel units (pixel centres at integers)."""
        cols, rows = DISPLAY_AXES[self.plane]
        point = np.asarray(point_mm, dtype=float).reshape(3)
        width, height = self.pixel_size_mm
        left, _, _, top = self.extent_mm
        return (left - point[cols]) / width - 0.5, (top - point[rows]) / height - 0.5

    def world_of(self, column: float, row: float) -> tuple[float, float]:
        """World coordinates (mm) along the column and row axes of a pixel position."""
        width, height = self.pixel_size_mm
        left, _, _, top = self.extent_mm
        return left - (column + 0.5) * width, top - (row + 0.5) * height

    def imshow_kwargs(self) -> dict:
        """``extent`` and ``origin`` for matplotlib's ``imshow``: ticks in world mm."""
        return {"extent": self.extent_mm, "origin": "upper"}


def ras_ordered(image: Image) -> Image:
    """The image with its array permuted/flipped to RAS voxel order (no resampling).

    Every voxel keeps its world position (the affine is updated), so overlays stay exact.
    """
    ornt = nio.io_orientation(image.affine)
    if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
        return image
    data = nio.apply_orientation(np.asarray(image.data), ornt)
    affine = image.affine @ nio.inv_ornt_aff(ornt, image.shape)
    return Image(data, affine, dict(image.meta))


def display_slice(
    image: Image,
    *,
    plane: str,
    through_mm=None,
    index: int | None = None,
) -> DisplaySlice:
    """One plane of ``image`` in radiological display, with its world extent and letters.

    Args:
        image: a 3-D image in any voxel order (its affine maps voxels to RAS+ mm).
        plane: ``"sagittal"`` (fixed x), ``"coronal"`` (fixed y) or ``"axial"`` (fixed z).
        through_mm: ``(3,)`` world RAS+ point the slice passes through (nearest slice).
        index: slice index along the fixed axis of the RAS-ordered volume (a patch in its
            spine frame, x right / y anterior / z cranial, is already in that order); used
            when ``through_mm`` is None. Default: the middle slice. Clipped to the volume.

    Returns:
        :class:`DisplaySlice` whose ``pixels`` are ``(rows, columns)``: sagittal ``(Z, Y)``,
        coronal ``(Z, X)``, axial ``(Y, X)``, positive world directions at the top and left.

    Raises:
        InputError: unknown plane.
    """
    axis = plane_axis(plane)
    ras = ras_ordered(image)
    shape = ras.shape
    if through_mm is not None:
        index = int(round(float(ras.world_to_voxel(np.asarray(through_mm, float))[axis])))
    elif index is None:
        index = shape[axis] // 2
    index = int(np.clip(index, 0, shape[axis] - 1))
    two_d = np.take(np.asarray(ras.data), index, axis=axis)  # (column axis, row axis)
    pixels = two_d.T[::-1, ::-1]
    centre = (np.asarray(shape, float) - 1.0) / 2.0
    centre[axis] = index
    cols, rows = DISPLAY_AXES[plane]
    col_low, col_high = _axis_span(ras, centre, cols)
    row_low, row_high = _axis_span(ras, centre, rows)
    position = float(ras.voxel_to_world(centre)[axis])
    letters = {
        "left": AXIS_LETTERS[cols][0],
        "right": AXIS_LETTERS[cols][1],
        "top": AXIS_LETTERS[rows][0],
        "bottom": AXIS_LETTERS[rows][1],
    }
    return DisplaySlice(
        pixels=pixels,
        plane=plane,
        index=index,
        position_mm=position,
        extent_mm=(col_high, col_low, row_low, row_high),
        letters=letters,
        obliquity_deg=_obliquity_deg(ras.affine),
    )


def slice_positions_mm(image: Image, *, plane: str) -> np.ndarray:
    """World coordinate (RAS+ mm) along the fixed axis of every slice of ``plane``.

    Entry ``i`` is :attr:`DisplaySlice.position_mm` of ``display_slice(image, plane=plane,
    index=i)``: what a slider over the slices should show instead of the index.
    """
    axis = plane_axis(plane)
    ras = ras_ordered(image)
    centres = np.tile((np.asarray(ras.shape, float) - 1.0) / 2.0, (ras.shape[axis], 1))
    centres[:, axis] = np.arange(ras.shape[axis])
    return ras.voxel_to_world(centres)[:, axis]


def plane_axis(plane: str) -> int:
    """World axis held fixed by ``plane``; an :class:`InputError` for an unknown plane."""
    try:
        return PLANE_AXIS[plane]
    except KeyError:
        raise InputError(f"unknown plane {plane!r}", fix=f"use one of {PLANES}") from None


def fit_size(
    width_mm: float, height_mm: float, *, max_width_px: int, max_height_px: int
) -> tuple[int, int]:
    """(width, height) in pixels of a ``width_mm`` x ``height_mm`` view inside a box.

    The view keeps its millimetre aspect ratio and is as large as the box allows: a thin slab
    is capped by the width, a tall scan by the height.
    """
    scale = min(max_width_px / max(width_mm, 1e-6), max_height_px / max(height_mm, 1e-6))
    return max(1, round(width_mm * scale)), max(1, round(height_mm * scale))


def annotate_axes(ax, view: DisplaySlice, *, ticks: bool = True, fontsize: float = 9) -> None:
    """Edge letters on a matplotlib axes showing ``view``, and world axis titles or no ticks.

    Call after ``ax.imshow(view.pixels, **view.imshow_kwargs())``: the ticks are then world
    RAS+ mm. ``ticks=False`` (small tiles) keeps only the letters.
    """
    places = {
        "left": (0.015, 0.5, "left", "center"),
        "right": (0.985, 0.5, "right", "center"),
        "top": (0.5, 0.985, "center", "top"),
        "bottom": (0.5, 0.015, "center", "bottom"),
    }
    colour = tuple(c / 255.0 for c in LETTER_RGB)
    for edge, (x, y, ha, va) in places.items():
        ax.text(
            x,
            y,
            view.letters[edge],
            transform=ax.transAxes,
            ha=ha,
            va=va,
            color=colour,
            fontsize=fontsize,
            fontweight="bold",
            bbox={"facecolor": "black", "alpha": 0.55, "pad": 1.0, "edgecolor": "none"},
        )
    if ticks:
        xlabel, ylabel = view.axis_labels
        ax.set_xlabel(xlabel, fontsize=fontsize)
        ax.set_ylabel(ylabel, fontsize=fontsize)
        ax.tick_params(labelsize=fontsize - 1)
    else:
        ax.set_xticks([])
        ax.set_yticks([])


def _axis_span(ras: Image, centre: np.ndarray, axis: int) -> tuple[float, float]:
    """World coordinates (low, high) of the outer voxel edges along ``axis`` through ``centre``."""
    n = ras.shape[axis]
    first, last = centre.copy(), centre.copy()
    first[axis], last[axis] = 0.0, n - 1.0
    low = float(ras.voxel_to_world(first)[axis])
    high = float(ras.voxel_to_world(last)[axis])
    step = (high - low) / (n - 1) if n > 1 else float(abs(ras.affine[axis, axis]))
    return low - step / 2.0, high + step / 2.0


def _obliquity_deg(affine: np.ndarray) -> float:
    directions = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    cosines = np.clip(np.abs(np.diag(directions)), 0.0, 1.0)
    return float(np.degrees(np.arccos(cosines.min())))

"""The display convention: radiological orientation, edge letters and world-mm extents."""

from __future__ import annotations

import numpy as np
import pytest

from spinefx.display import display_slice, fit_size, ras_ordered, slice_positions_mm
from spinefx.errors import InputError
from spinefx.image import Image

#: a 1.0 x 1.2 x 1.5 mm grid whose voxel (0, 0, 0) sits at world (-40, 25, -300) mm
RAS_AFFINE = np.array(
    [[1.0, 0, 0, -40.0], [0, 1.2, 0, 25.0], [0, 0, 1.5, -300.0], [0, 0, 0, 1]], float
)


def _phantom() -> tuple[Image, dict[str, tuple[int, int, int]]]:
    """A 20 x 22 x 30 RAS grid with one marker at a known right, anterior and superior place."""
    data = np.zeros((20, 22, 30), np.float32)
    markers = {"right": (17, 8, 12), "anterior": (9, 19, 12), "superior": (9, 8, 26)}
    for value, ijk in enumerate(markers.values(), start=1):
        data[ijk] = value
    return Image(data, RAS_AFFINE), markers


def _lps_permuted(image: Image) -> Image:
    """The same voxels stored (z, y, x) with x and y reversed: another storage, same world."""
    data = np.ascontiguousarray(np.asarray(image.data)[::-1, ::-1, :].transpose(2, 1, 0))
    nx, ny, _ = image.shape
    affine = np.zeros((4, 4))
    affine[0, 2], affine[1, 1], affine[2, 0], affine[3, 3] = -1.0, -1.2, 1.5, 1.0
    affine[:3, 3] = image.voxel_to_world(np.array([nx - 1, ny - 1, 0.0]))
    return Image(data, affine)


def _where(view, value):
    rows, cols = np.nonzero(view.pixels == value)
    return int(cols[0]), int(rows[0])


@pytest.mark.parametrize("storage", ["ras", "lps_permuted"])
def test_markers_land_left_and_top_in_every_plane_whatever_the_storage(storage):
    image, markers = _phantom()
    if storage == "lps_permuted":
        image = _lps_permuted(image)
    centre = RAS_AFFINE[:3, :3] @ np.array([9.0, 8.0, 12.0]) + RAS_AFFINE[:3, 3]
    sagittal = display_slice(image, plane="sagittal", through_mm=centre)
    col, row = _where(sagittal, 2)  # anterior marker
    assert col < sagittal.pixels.shape[1] / 4  # anterior on the left
    col, row = _where(sagittal, 3)  # superior marker
    assert row < sagittal.pixels.shape[0] / 4  # superior at the top
    axial = display_slice(image, plane="axial", through_mm=centre)
    col, _ = _where(axial, 1)  # the patient's right
    assert col < axial.pixels.shape[1] / 4  # on the viewer's left
    _, row = _where(axial, 2)
    assert row < axial.pixels.shape[0] / 4  # anterior at the top
    coronal = display_slice(image, plane="coronal", through_mm=centre)
    col, _ = _where(coronal, 1)  # the patient's right
    assert col < coronal.pixels.shape[1] / 4  # on the viewer's left
    assert sagittal.letters == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    assert axial.letters == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert coronal.letters == {"left": "R", "right": "L", "top": "S", "bottom": "I"}


def test_storage_order_does_not_change_the_view():
    image, _ = _phantom()
    other = _lps_permuted(image)
    for plane in ("sagittal", "coronal", "axial"):
        a = display_slice(image, plane=plane, through_mm=(-31.0, 34.6, -282.0))
        b = display_slice(other, plane=plane, through_mm=(-31.0, 34.6, -282.0))
        np.testing.assert_array_equal(a.pixels, b.pixels)
        np.testing.assert_allclose(a.extent_mm, b.extent_mm, atol=1e-9)
        assert a.position_mm == pytest.approx(b.position_mm)


@pytest.mark.parametrize("plane", ["sagittal", "coronal", "axial"])
def test_each_pixel_is_labelled_with_its_world_coordinate(plane):
    image, markers = _phantom()
    for value, ijk in enumerate(markers.values(), start=1):
        world = image.voxel_to_world(np.array(ijk, float))
        view = display_slice(image, plane=plane, through_mm=world)
        col, row = view.pixel_of(world)
        assert view.pixels[int(round(row)), int(round(col))] == value
        assert (col, row) == pytest.approx((round(col), round(row)))  # a pixel centre
        fixed = {"sagittal": 0, "coronal": 1, "axial": 2}[plane]
        assert view.position_mm == pytest.approx(world[fixed])
        assert view.position_label == f"{'xyz'[fixed]} = {world[fixed]:.1f} mm"
        cols, rows = [a for a in range(3) if a != fixed]
        assert view.world_of(col, row) == pytest.approx((world[cols], world[rows]))


def test_extent_is_the_outer_pixel_edges_in_world_mm():
    image, _ = _phantom()
    view = display_slice(image, plane="sagittal", index=3)
    # columns: y from the most anterior voxel edge (left) to the most posterior (right)
    y_low, y_high = 25.0 - 0.6, 25.0 + 21 * 1.2 + 0.6
    z_low, z_high = -300.0 - 0.75, -300.0 + 29 * 1.5 + 0.75
    np.testing.assert_allclose(view.extent_mm, (y_high, y_low, z_low, z_high))
    assert view.position_mm == pytest.approx(-40.0 + 3.0)  # world x, not mm from the edge
    assert view.pixel_size_mm == pytest.approx((1.2, 1.5))
    assert view.imshow_kwargs() == {"extent": view.extent_mm, "origin": "upper"}
    assert view.obliquity_deg == 0.0


def test_ras_ordered_keeps_every_voxel_at_its_world_position():
    image, markers = _phantom()
    other = ras_ordered(_lps_permuted(image))
    np.testing.assert_allclose(other.affine, image.affine, atol=1e-9)
    np.testing.assert_array_equal(other.data, image.data)


def test_a_tilted_grid_reports_its_obliquity_and_keeps_the_letters():
    angle = np.radians(10.0)
    rot = np.array(
        [[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rot
    view = display_slice(Image(np.zeros((4, 5, 6)), affine), plane="sagittal")
    assert view.obliquity_deg == pytest.approx(10.0)
    assert view.letters["left"] == "A" and view.letters["top"] == "S"


def test_fit_size_caps_thin_slabs_by_width_and_tall_scans_by_height():
    assert fit_size(300.0, 40.0, max_width_px=720, max_height_px=540) == (720, 96)
    assert fit_size(300.0, 1000.0, max_width_px=720, max_height_px=540) == (162, 540)


def test_unknown_plane_is_an_input_error():
    with pytest.raises(InputError, match="plane"):
        display_slice(Image(np.zeros((2, 2, 2)), np.eye(4)), plane="oblique")


@pytest.mark.parametrize("plane", ["sagittal", "coronal", "axial"])
def test_slice_positions_are_the_world_positions_of_the_views(plane):
    image, _ = _phantom()
    other = _lps_permuted(image)
    positions = slice_positions_mm(other, plane=plane)
    for index in (0, 5, len(positions) - 1):
        view = display_slice(other, plane=plane, index=index)
        assert positions[index] == pytest.approx(view.position_mm)
    np.testing.assert_allclose(positions, slice_positions_mm(image, plane=plane))

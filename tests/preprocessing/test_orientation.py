"""Reorientation is an exact permutation/flip: every voxel keeps its world position."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from spinefx.errors import InputError
from spinefx.image import Image
from spinefx.preprocessing import reorient

ALL_AXCODES = [
    "".join(pair[f] for pair, f in zip(perm, flips, strict=True))
    for perm in itertools.permutations(["LR", "PA", "IS"])
    for flips in itertools.product([0, 1], repeat=3)
]


def _oblique_image() -> Image:
    rng = np.random.default_rng(0)
    angle = 0.3
    rot = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([0.8, 1.2, 2.5])
    affine[:3, 3] = [-40.0, 12.0, 300.0]
    return Image(rng.normal(size=(5, 6, 7)).astype(np.float32), affine)


def test_there_are_48_orientations():
    assert len(set(ALL_AXCODES)) == 48


@pytest.mark.parametrize("axcodes", ALL_AXCODES)
def test_reorient_round_trip_is_exact_for_every_orientation(axcodes):
    image = _oblique_image()
    out = reorient(image, axcodes)
    assert out.orientation == axcodes
    back = reorient(out, image.orientation)
    np.testing.assert_array_equal(back.data, image.data)
    np.testing.assert_allclose(back.affine, image.affine, atol=1e-12)


def test_reorient_keeps_world_position_of_every_voxel():
    image = _oblique_image()
    out = reorient(image, "PIR")
    # The brightest voxel must sit at the same world point in both images.
    i = np.unravel_index(np.argmax(image.data), image.shape)
    j = np.unravel_index(np.argmax(out.data), out.shape)
    np.testing.assert_allclose(image.voxel_to_world(i), out.voxel_to_world(j), atol=1e-9)


def test_reorient_pir_to_ras_known_answer():
    # PIR 1 mm: voxel axis 0 runs posterior, 1 inferior, 2 right.
    affine = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1.0]])
    data = np.arange(24).reshape(2, 3, 4)
    out = reorient(Image(data, affine), "RAS")
    assert out.shape == (4, 2, 3)
    np.testing.assert_array_equal(out.data, data[::-1, ::-1, :].transpose(2, 0, 1))


@pytest.mark.parametrize("bad", ["RAR", "XYZ", "RA", "RASS"])
def test_reorient_rejects_bad_axcodes(bad):
    with pytest.raises(InputError, match="axis codes"):
        reorient(_oblique_image(), bad)

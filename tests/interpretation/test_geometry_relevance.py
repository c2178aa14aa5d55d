"""Activation grid -> input grid -> world -> scan; relevance r_k and Grad-CAM on known maps."""

from __future__ import annotations

import numpy as np
import torch
from dissection_toy import BRIGHT_VOXEL, INPUT_AFFINE, Toy, toy_samples
from torch import nn

from spinefx.image import Image, apply_affine
from spinefx.interpretation.grids import (
    activation_affine,
    activation_to_input_voxel,
    map_onto_scan,
    sample_onto_grid,
    upsample,
)
from spinefx.interpretation.relevance import grad_cam, relevance_for_input


def test_activation_voxel_maps_to_the_centre_of_its_input_block():
    # the bright input voxel (5, 2, 6) falls in pooled cell (2, 1, 3), block [4,5]x[2,3]x[6,7]
    aff = activation_affine(INPUT_AFFINE, (8, 8, 8), (4, 4, 4))
    centre = activation_to_input_voxel(np.array([2, 1, 3]), (8, 8, 8), (4, 4, 4))
    np.testing.assert_allclose(centre, [4.5, 2.5, 6.5])
    np.testing.assert_allclose(
        apply_affine(aff, np.array([2, 1, 3])), apply_affine(INPUT_AFFINE, centre)
    )
    # the activation grid's voxel size is the stride times the input's (2 mm * 2)
    np.testing.assert_allclose(np.sqrt((aff[:3, :3] ** 2).sum(axis=0)), [4, 4, 4])


def test_upsampling_is_the_inverse_of_average_pooling_geometry():
    # a linear ramp along x sampled at activation-voxel centres is reproduced exactly inside
    x_in = np.arange(16, dtype=np.float32)
    coarse = torch.tensor(x_in.reshape(4, 4).mean(axis=1))  # block means = block centres
    up = upsample(coarse, (16,)).numpy()
    np.testing.assert_allclose(up[2:-2], x_in[2:-2], atol=1e-5)


def test_relevance_ranks_units_by_thresholded_activation_sum():
    x, _, meta = toy_samples()[3]  # bright value 4 at BRIGHT_VOXEL
    ranked = relevance_for_input(Toy(), "features.pool", x, [1.445, 1.445, 0.0])
    assert [u.unit for u in ranked] == [0, 1, 2]
    assert ranked[0].relevance == 4.0 and ranked[1].relevance == 0.0
    mask = ranked[0].mask
    assert mask.shape == (8, 8, 8) and mask[BRIGHT_VOXEL]


def test_relevance_maps_land_on_the_right_scan_voxel():
    x, _, meta = toy_samples()[3]
    # a scan in another orientation (PIR-like axes, 1 mm) around the patch
    scan_affine = np.array(
        [[0.0, 0.0, -1.0, 20.0], [-1.0, 0.0, 0.0, 60.0], [0.0, -1.0, 0.0, 50.0], [0, 0, 0, 1]]
    )
    scan = Image(np.zeros((60, 60, 60), np.int16), scan_affine)
    atlas = {"units": [{"unit": k, "threshold": t} for k, t in enumerate([1.445, 1.445, 0.0])]}
    ranked = relevance_for_input(
        Toy(), "features.pool", x, atlas, input_affine=meta["affine"], scan=scan, top_n=1
    )
    top = ranked[0]
    np.testing.assert_array_equal(top.activation.affine, INPUT_AFFINE)
    world = apply_affine(INPUT_AFFINE, np.array(BRIGHT_VOXEL, float))
    ijk = np.round(scan.world_to_voxel(world)).astype(int)
    on_scan = top.scan_activation.data
    assert on_scan[tuple(ijk)] > 1.445
    peak = np.unravel_index(np.argmax(on_scan), on_scan.shape)
    # the peak lies within the 2x2x2-input-voxel block (4 mm) around the bright voxel
    assert np.linalg.norm(scan.voxel_to_world(np.array(peak)) - world) <= 2 * np.sqrt(3) + 1e-6
    assert ranked[1].scan_activation is None  # maps only for top_n units


def test_sample_onto_grid_round_trips_a_label_map():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=(6, 7, 8))
    src = np.diag([1.0, 1.0, 1.0, 1.0])
    src[:3, 3] = [3, -2, 1]
    # a permuted, flipped target grid covering the same voxels
    perm = np.array([[0, 0, -1, 3 + 5], [1, 0, 0, -2], [0, 1, 0, 1], [0, 0, 0, 1]], float)
    there = sample_onto_grid(labels, src, perm, (7, 8, 6), order=0)
    back = sample_onto_grid(there, perm, src, (6, 7, 8), order=0)
    np.testing.assert_array_equal(back, labels)


def test_map_onto_scan_zero_outside_the_patch():
    patch_affine = np.eye(4)
    patch_affine[:3, 3] = [10, 10, 10]
    out = map_onto_scan(np.ones((4, 4, 4)), patch_affine, np.eye(4), (30, 30, 30), order=0)
    assert out.sum() == 64 and out[10:14, 10:14, 10:14].all()


def test_grad_cam_of_a_linear_model_is_the_weighted_activation():
    class Lin(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv3d(1, 2, 1, bias=False)
            with torch.no_grad():
                self.conv.weight[:] = torch.tensor([1.0, 2.0]).reshape(2, 1, 1, 1, 1)

        def forward(self, x):
            a = self.conv(x)
            return (a[:, 0].mean(dim=(1, 2, 3)) * 3 - a[:, 1].mean(dim=(1, 2, 3)))[:, None]

    x = torch.rand(1, 4, 4, 4)
    cam = grad_cam(Lin(), "conv", x)
    # dy/dA0 = 3/64, dy/dA1 = -1/64 everywhere -> cam = relu(3/64 * x - 2/64 * x) = x / 64
    np.testing.assert_allclose(cam, x[0].numpy() / 64, rtol=1e-5, atol=1e-7)


def test_nearest_mask_is_the_cell_footprint_and_never_empty_when_enabled():
    from spinefx.interpretation.grids import upsample_mask

    act = torch.zeros(4, 4, 4)
    act[2, 1, 3] = 1.0
    footprint = upsample_mask(act, 0.99, (8, 8, 8), mode="nearest")
    expected = np.zeros((8, 8, 8), bool)
    expected[4:6, 2:4, 6:8] = True
    np.testing.assert_array_equal(footprint, expected)
    # an isolated cell barely above T: its trilinear mask is empty (no voxel on its centre)
    assert not upsample_mask(act, 0.99, (8, 8, 8), mode="trilinear").any()

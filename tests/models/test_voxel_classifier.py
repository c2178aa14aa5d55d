"""Dual-pathway voxel classifier: parameter budget, receptive fields, segment geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spinefx.errors import InputError
from spinefx.models import build_model
from spinefx.models.voxel_classifier import (
    VARIANTS,
    VoxelClassifierConfig,
    count_parameters,
    geometry_for_input,
    receptive_fields,
    segment_geometry,
)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_has_the_papers_parameter_budget(variant):
    model = build_model(VoxelClassifierConfig(variant=variant))
    assert abs(count_parameters(model) - 230_000) < 0.03 * 230_000


def test_receptive_fields_match_the_paper():
    assert receptive_fields(VoxelClassifierConfig()) == {
        "normal": (17, 17, 17),
        "subsampled": (51, 51, 51),
    }
    # 2-D variants see 17^2 in the sagittal (y, z) plane; x is the slice axis
    assert receptive_fields(VoxelClassifierConfig(variant="1slice"))["normal"] == (1, 17, 17)
    assert receptive_fields(VoxelClassifierConfig(variant="5slices"))["normal"] == (5, 17, 17)


def _input_support(grad: torch.Tensor) -> tuple[int, ...]:
    nz = np.nonzero(grad.abs().numpy() > 0)
    return tuple(int(a.max() - a.min() + 1) for a in nz)


def test_measured_receptive_field_of_one_output_voxel():
    """Gradient of one output voxel is non-zero exactly on 17^3 high-res and 17^3 low-res voxels."""
    config = VoxelClassifierConfig(dropout=0.0)
    model = build_model(config).eval()
    geo = segment_geometry(config, output_vox=9)
    hi = torch.randn(1, 1, *geo.input_vox, requires_grad=True)
    lo = torch.randn(1, 1, *geo.lowres_input_vox, requires_grad=True)
    out = model(hi, lo)
    assert out.shape == (1, 3, 9, 9, 9)
    out[0, 2, 4, 4, 4].backward()
    assert _input_support(hi.grad[0, 0]) == (17, 17, 17)
    assert _input_support(lo.grad[0, 0]) == (17, 17, 17)  # 17 low-res voxels = 51 mm


def test_segment_sizes_are_validated_with_a_fix():
    config = VoxelClassifierConfig()
    geo = geometry_for_input(config, input_vox=25)
    assert geo.output_vox == (9, 9, 9) and geo.lowres_input_vox == (19, 19, 19)
    with pytest.raises(InputError, match="segment size 26 does not fit"):
        geometry_for_input(config, input_vox=26)
    with pytest.raises(InputError, match="multiple of 3"):
        segment_geometry(config, output_vox=10)


def test_lowres_segment_is_centred_on_the_highres_segment():
    for variant in VARIANTS:
        geo = segment_geometry(VoxelClassifierConfig(variant=variant), output_vox=12)
        for a in range(3):
            hi_centre = (geo.input_vox[a] - 1) / 2
            lo_centre = geo.lowres_offset_vox[a] + 3 * (geo.lowres_input_vox[a] - 1) / 2
            assert hi_centre == lo_centre


def test_training_segments_give_the_same_output_block_for_every_variant():
    from spinefx.models.voxel_classifier import training_geometry

    shapes = {v: training_geometry(VoxelClassifierConfig(variant=v)) for v in VARIANTS}
    assert {g.output_vox for g in shapes.values()} == {(9, 9, 9)}
    assert shapes["3d"].input_vox == (25, 25, 25)
    assert shapes["1slice"].input_vox == (9, 25, 25)
    assert shapes["5slices"].input_vox == (13, 25, 25)

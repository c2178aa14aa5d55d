"""Network dissection of the voxel classifier: both pathways, concept grid, concept IoU."""

from __future__ import annotations

import numpy as np
import pytest

from spinefx.interpretation.voxel_dissection import (
    PATHWAY_LAYERS,
    VertebraSegments,
    concept_comparison,
    dissect_voxel_run,
)


def test_each_sample_is_the_output_block_centred_on_its_vertebra(
    synthetic_dataset, voxel_run, tmp_path
):
    from spinefx.io import load_dataset
    from spinefx.runs import load_trained

    run = load_trained(voxel_run(tmp_path / "v"))
    cases = load_dataset(synthetic_dataset)[:1]
    segments = VertebraSegments(cases, run.config.model, output_vox=24)
    (high, low), label, meta = segments[0]
    geometry = segments.geometry
    assert tuple(high.shape[1:]) == geometry.input_vox
    assert tuple(low.shape[1:]) == geometry.lowres_input_vox
    assert meta["grid_shape"] == (24, 24, 24)
    centre = meta["affine"] @ np.array([12, 12, 12, 1.0])
    entry = segments.entries[0]
    spacing = run.config.model.input_spacing_mm
    assert np.abs(centre[:3] - np.asarray(entry.centroid_mm)).max() <= spacing
    assert label == entry.fractured


def test_both_pathways_are_dissected_on_their_own_grids(synthetic_dataset, voxel_run, tmp_path):
    run_dir = voxel_run(tmp_path / "v")
    result = dissect_voxel_run(run_dir, synthetic_dataset, quantile=0.05, max_cases=2)
    normal, sub = result["dissections"]["normal"], result["dissections"]["subsampled"]
    assert normal.layer == f"voxel.{PATHWAY_LAYERS['normal']}"
    assert normal.activation_shape == (24, 24, 24)
    assert sub.activation_shape == (8, 8, 8)  # one cell per 3^3 block of the output
    assert normal.input_shape == sub.input_shape == (24, 24, 24)
    assert len(normal.labels) == result["n_vertebrae"] > 0
    assert np.all((normal.probabilities >= 0) & (normal.probabilities <= 1))
    np.testing.assert_allclose(normal.probabilities, sub.probabilities)
    comparison = concept_comparison(
        normal, ("vertebral_body",), top=3, samples_per_unit=2, n_draws=200
    )
    assert 0.0 <= comparison["top_mean_iou"] <= 1.0
    assert comparison["all_units_mean_iou"] > 0, "the concept masks must land on the samples"


def test_unknown_pathway_is_an_input_error(synthetic_dataset, voxel_run, tmp_path):
    from spinefx.errors import InputError

    with pytest.raises(InputError, match="unknown pathways"):
        dissect_voxel_run(voxel_run(tmp_path / "v"), synthetic_dataset, pathways=("fc",))

"""Concept atlas file (round trip, previous version, expert edits kept) and concept regions."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from dissection_toy import Toy, toy_loader

from spinefx.errors import InputError
from spinefx.interpretation.atlas import (
    build_atlas,
    load_atlas,
    merge_expert_fields,
    previous_path,
    save_atlas,
    set_unit_concept,
)
from spinefx.interpretation.concepts import concept_regions, iou_accumulate
from spinefx.interpretation.dissection import dissect, rank_units


@pytest.fixture(scope="module")
def atlas():
    d = dissect(Toy(), "features.pool", toy_loader(), top_k=3)
    corr = d.correlations()
    ranks = {k: rank_units(v) for k, v in corr.items()}
    return build_atlas(d, correlations=corr, ranks=ranks, concept_scores={0: {"body": 0.5}})


def test_atlas_holds_thresholds_ranks_and_top_samples(atlas, tmp_path):
    path = save_atlas(atlas, tmp_path / "atlas.yaml")
    loaded = load_atlas(path)
    unit0 = loaded["units"][0]
    assert unit0["threshold"] == pytest.approx(1.445)
    assert unit0["rank"]["tp"] == 1 and loaded["units"][1]["rank"]["tn"] == 1
    assert unit0["correlation"]["fp"] is None  # no false positives: NaN stored as null
    assert [s["case_id"] for s in unit0["top_samples"]] == ["case3", "case2", "case1"]
    assert unit0["concept_scores"] == {"body": 0.5}
    assert loaded["groups"] == {"tp": 4, "fp": 0, "tn": 4, "fn": 0}


def test_edits_are_saved_atomically_with_the_previous_version_kept(atlas, tmp_path):
    path = save_atlas(atlas, tmp_path / "atlas.yaml")
    set_unit_concept(path, 0, "superior endplate", "fires on endplate depressions")
    assert load_atlas(path)["units"][0]["concept_label"] == "superior endplate"
    assert load_atlas(previous_path(path))["units"][0]["concept_label"] is None
    set_unit_concept(path, 1, "", "")
    assert load_atlas(previous_path(path))["units"][0]["concept_label"] == "superior endplate"
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]
    with pytest.raises(InputError, match="unit 9"):
        set_unit_concept(path, 9, "x")


def test_rerun_keeps_expert_labels(atlas):
    old = yaml.safe_load(yaml.safe_dump(atlas))
    old["units"][2]["concept_label"] = "dead unit"
    old["units"][2]["explanation"] = "never fires"
    fresh = yaml.safe_load(yaml.safe_dump(atlas))
    merged = merge_expert_fields(fresh, old)
    assert merged["units"][2]["concept_label"] == "dead unit"
    assert merged["units"][2]["explanation"] == "never fires"
    assert merged["units"][0]["concept_label"] is None


def test_not_an_atlas_is_an_input_error(tmp_path):
    bad = tmp_path / "atlas.yaml"
    bad.write_text("schema: something-else\n")
    with pytest.raises(InputError, match="not a spinefx concept atlas"):
        load_atlas(bad)
    bad.write_text("schema: spinefx-concept-atlas\nschema_version: 99\n")
    with pytest.raises(InputError, match="schema version 99"):
        load_atlas(bad)


def _two_vertebrae():
    """Patch 10x10x30 (1 mm): body of L1 (label 20) at z 10-19, L2 (21) at z 0-5, T12 at 24-29."""
    vert = np.zeros((10, 10, 30), np.int32)
    sub = np.zeros_like(vert)
    vert[2:8, 2:8, 10:20] = 20
    sub[2:8, 2:8, 10:20] = 50
    vert[2:8, 8:10, 12:18] = 20
    sub[2:8, 8:10, 12:18] = 41  # posterior arch
    vert[2:8, 2:8, 0:6] = 21
    vert[2:8, 2:8, 24:30] = 19
    zone = np.zeros_like(vert)
    zone[3:6, 3:6, 17:20] = 20
    return vert, sub, zone


def test_concept_regions_on_a_hand_built_spine():
    vert, sub, zone = _two_vertebrae()
    regions = concept_regions(
        vertebra_mask=vert,
        subregion_mask=sub,
        fracture_zone=zone,
        vertebra_label=20,
        endplate_band_mm=2.0,
    )
    body = np.zeros_like(vert, bool)
    body[2:8, 2:8, 10:20] = True
    np.testing.assert_array_equal(regions["vertebral_body"], body)
    sup = np.zeros_like(body)
    sup[2:8, 2:8, 18:20] = True
    np.testing.assert_array_equal(regions["superior_endplate"], sup)
    inf = np.zeros_like(body)
    inf[2:8, 2:8, 10:12] = True
    np.testing.assert_array_equal(regions["inferior_endplate"], inf)
    disc = np.zeros_like(body)
    disc[2:8, 2:8, 6:10] = True  # between L2 (top z=5) and L1 (bottom z=10)
    disc[2:8, 2:8, 20:24] = True  # between L1 and T12
    np.testing.assert_array_equal(regions["intervertebral_disc"], disc)
    assert regions["posterior_elements"].sum() == 6 * 2 * 6
    assert regions["adjacent_vertebra"].sum() == 2 * 6 * 6 * 6
    assert regions["fracture_zone"].sum() == 27


def test_iou_counts():
    a = np.zeros((4, 4, 4), bool)
    b = np.zeros_like(a)
    a[:2] = True
    b[1:3] = True
    assert iou_accumulate(a, b) == (16, 48)

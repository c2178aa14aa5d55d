"""The body-centre heatmap network: target, peaks, spine chain, training cases and training."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spinefx.image import Image
from spinefx.inference.body_heatmap import PEAK_MIN_DISTANCE_MM, heatmap_peaks
from spinefx.inference.ct_localisation import _spine_chain
from spinefx.models.body_heatmap import load_heatmap_net
from spinefx.preprocessing.heatmap_grid import HEATMAP_GRID_MM, scale_hu
from spinefx.training.body_heatmap import (
    HeatmapRecipe,
    _crop,
    build_cases,
    heatmap_target,
    train_heatmap,
)


def _grid(shape=(30, 30, 60), origin=(-60.0, -60.0, -100.0)) -> Image:
    affine = np.diag([HEATMAP_GRID_MM] * 3 + [1.0])
    affine[:3, 3] = origin
    return Image(np.zeros(shape, np.float32), affine)


def _spine(n=7, pitch=27.0, x=3.0, y=-5.0, z0=90.0) -> np.ndarray:
    return np.array([[x + 0.5 * i, y - 0.7 * i, z0 - pitch * i] for i in range(n)])


def test_target_is_one_at_each_centre_and_gaussian_around_it():
    grid = _grid()
    centres = _spine(3)
    t = heatmap_target(grid, centres)
    assert t.shape == grid.shape and t.max() <= 1.0
    for c in centres:
        v = np.round(grid.world_to_voxel(c[None])[0]).astype(int)
        here = grid.voxel_to_world(v[None].astype(float))[0]
        expected = np.exp(-np.sum((here - c) ** 2) / (2 * 6.0**2))
        assert t[tuple(v)] == pytest.approx(expected, rel=1e-5)
    far = grid.world_to_voxel(np.array([[50.0, 50.0, -90.0]]))[0].astype(int)
    assert t[tuple(far)] < 1e-6


def test_peaks_recover_the_centres_they_were_drawn_from():
    grid = _grid()
    centres = _spine(6)
    peaks = heatmap_peaks(grid.with_data(heatmap_target(grid, centres)))
    assert len(peaks) == len(centres)
    for c in centres:
        assert np.min(np.linalg.norm(peaks - c, axis=1)) < 1.0


def test_peaks_closer_than_the_minimum_distance_merge_and_weak_ones_are_dropped():
    grid = _grid()
    c = np.array([[0.0, 0.0, 0.0]])
    near = c + [0.0, 0.0, PEAK_MIN_DISTANCE_MM * 0.6]
    t = np.maximum(heatmap_target(grid, c), 0.8 * heatmap_target(grid, near))
    weak = 0.1 * heatmap_target(grid, np.array([[0.0, 0.0, 60.0]]))
    peaks = heatmap_peaks(grid.with_data(np.maximum(t, weak)))
    assert len(peaks) == 1
    assert np.linalg.norm(peaks[0] - c[0]) < 3.0


def test_spine_chain_keeps_the_column_and_drops_peaks_off_it():
    spine = _spine(8)
    off = np.array([[70.0, 20.0, 30.0], [-60.0, 40.0, -50.0]])  # a rib head, a bowel loop
    rng = np.random.default_rng(0)
    pts = rng.permutation(np.vstack([spine, off]))
    chain = _spine_chain(pts)
    assert np.allclose(chain, spine)  # cranial first, the outliers gone


def test_spine_chain_of_one_peak_is_that_peak():
    assert _spine_chain(np.array([[1.0, 2.0, 3.0]])).shape == (1, 3)


def test_scale_hu_is_clipped():
    assert scale_hu(np.array([-3000.0, 0.0, 5000.0])).tolist() == [-1.0, 0.0, 2.0]


def test_crop_is_the_requested_size_even_for_a_small_case():
    rng = np.random.default_rng(1)
    x = np.zeros((10, 20, 30), np.float32)
    t = np.zeros_like(x)
    t[5, 10, 15] = 1.0
    for _ in range(5):
        cx, ct = _crop(x, t, 32, rng)
        assert cx.shape == ct.shape == (32, 32, 32)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("heatmap")
    recipe = HeatmapRecipe(n_procedural=1, steps=2, batch=1, patch_vox=32, seed=3)
    weights = train_heatmap(out, recipe, None)
    return out, recipe, weights


def test_training_writes_weights_and_what_made_them(tiny_run):
    out, recipe, weights = tiny_run
    meta = json.loads((out / "body_heatmap.json").read_text())
    assert meta["recipe"]["seed"] == 3 and meta["shippable"] is True
    assert [c["source"] for c in meta["cases"]] == ["procedural"]
    net = load_heatmap_net(weights)
    assert sum(p.numel() for p in net.parameters()) > 0


def test_cases_are_deterministic_per_seed_and_a_build_resumes(tiny_run, tmp_path):
    out, recipe, _ = tiny_run
    again = build_cases(tmp_path, recipe, None)
    name = again[0]["name"]
    with (
        np.load(out / "cases" / f"{name}.npz") as a,
        np.load(tmp_path / "cases" / f"{name}.npz") as b,
    ):
        assert np.array_equal(a["x"], b["x"]) and np.array_equal(a["t"], b["t"])
        assert b["t"].max() > 0.9  # the bodies are in the target
    stamp = (tmp_path / "cases" / f"{name}.npz").stat().st_mtime_ns
    build_cases(tmp_path, recipe, None)  # nothing to do: the case is kept
    assert (tmp_path / "cases" / f"{name}.npz").stat().st_mtime_ns == stamp


def test_rendered_cases_follow_the_licence_rule(real_data, tmp_path):
    recipe = HeatmapRecipe(mask_subjects=["verse004"], draws_per_mask=1, n_procedural=0)
    cases = build_cases(tmp_path, recipe, real_data)
    assert [c["subject"] for c in cases] == ["verse004"] and cases[0]["shippable"]
    nc = HeatmapRecipe(mask_subjects=["verse018"], draws_per_mask=1, n_procedural=0,
                       shippable_only=True)  # fmt: skip
    assert build_cases(tmp_path / "nc", nc, real_data) == []


def test_heatmap_localisation_runs_from_the_cli_and_anchors_only_agreed_levels(tiny_run, tmp_path):
    """The whole path on a procedural scan with the tiny network: ``spinefx localise
    --localiser heatmap`` writes its outputs, or refuses an implausible answer (exit 1,
    nothing written); every level it gives is uncertain (or it fell back to the bone
    analysis, saying so)."""
    from spinefx.cli import main
    from spinefx.inference.ct_localisation import (
        HEATMAP_FALLBACK_NOTE,
        HEATMAP_NOTE,
        localise_spine,
    )
    from spinefx.io import load_scan
    from spinefx.models.body_heatmap import load_heatmap_net
    from spinefx.synthesis import generate_dataset

    _, _, weights = tiny_run
    root = generate_dataset(tmp_path / "s", n_scans=1, seed=5, preset="default")
    ct = next(root.glob("rawdata/*/*_ct.nii.gz"))
    loc = localise_spine(load_scan(ct), body_net=load_heatmap_net(weights))
    if loc.source == "heatmap":  # a level is anchored only where both methods agree
        assert all("agree" in v.level_note for v in loc.vertebrae
                   if v.level_confidence == "anchored")  # fmt: skip
        assert HEATMAP_NOTE in loc.notes
    else:
        assert HEATMAP_FALLBACK_NOTE in loc.notes
    code = main(["localise", str(ct), "--out", str(tmp_path / "o"), "--localiser", "heatmap",
                 "--heatmap-weights", str(weights), "--allow-empty"])  # fmt: skip
    if code == 0:
        summary = json.loads((tmp_path / "o" / "localisation.json").read_text())
        assert summary["localiser"] == loc.source
    else:  # a two-step network's peaks: refused by the plausibility check, nothing written
        assert code == 1 and not (tmp_path / "o" / "localisation.json").exists()


class _Silent:
    """A heatmap network that answers nothing (what the trained one does on a texture it
    never saw)."""

    def eval(self):
        return self

    def __call__(self, x):
        import torch

        return torch.full_like(x, -20.0)


def test_a_heatmap_without_a_spine_falls_back_to_the_bone_analysis_and_says_so(tmp_path):
    from spinefx.inference.ct_localisation import (
        HEATMAP_FALLBACK_NOTE,
        automatic_centroids,
        localise_spine,
    )
    from spinefx.io import load_scan
    from spinefx.synthesis import generate_dataset

    root = generate_dataset(tmp_path / "s", n_scans=1, seed=7001, preset="default")
    scan = load_scan(next(root.glob("rawdata/*/*_ct.nii.gz")))
    bone = localise_spine(scan)
    fell = localise_spine(scan, body_net=_Silent())
    assert bone.vertebrae and fell.source == "anatomy"
    assert [v.label for v in fell.vertebrae] == [v.label for v in bone.vertebrae]
    assert np.allclose([v.centroid_mm for v in fell.vertebrae],
                       [v.centroid_mm for v in bone.vertebrae])  # fmt: skip
    assert HEATMAP_FALLBACK_NOTE in fell.notes and HEATMAP_FALLBACK_NOTE not in bone.notes
    assert automatic_centroids(scan, body_net=_Silent())[2]["localiser"] == "anatomy"


def test_missing_or_wrong_heatmap_weights_are_an_input_error(tmp_path):
    from spinefx.errors import InputError
    from spinefx.models.body_heatmap import load_heatmap_net

    with pytest.raises(InputError, match="no body-heatmap weights"):
        load_heatmap_net(tmp_path / "absent.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not torch")
    with pytest.raises(InputError, match="not body-heatmap weights"):
        load_heatmap_net(bad)


def test_installed_heatmap_weights_verify_and_a_changed_file_is_named(tiny_run, tmp_path):
    from spinefx.errors import InputError
    from spinefx.release.weights import install_heatmap
    from spinefx.runs.shipped import HEATMAP_FOLDER, _heatmap_problems

    out, _, weights = tiny_run
    installed = install_heatmap(weights, tmp_path)
    assert installed == tmp_path / HEATMAP_FOLDER / "body_heatmap.pt"
    meta = json.loads(installed.with_name("body_heatmap.json").read_text())
    assert meta["sha256"] and meta["code_version"] and meta["shippable"]
    assert _heatmap_problems(installed.parent) == []
    load_heatmap_net(installed)
    installed.write_bytes(installed.read_bytes() + b"x")
    assert _heatmap_problems(installed.parent) == [f"changed: {HEATMAP_FOLDER}/body_heatmap.pt"]
    # weights trained on a non-commercial collection never ship
    nc = tmp_path / "nc"
    nc.mkdir()
    (nc / "body_heatmap.pt").write_bytes(weights.read_bytes())
    record = json.loads((out / "body_heatmap.json").read_text())
    record["shippable"] = False
    record["cases"] = [{"licence": "CC BY-NC-SA 4.0", "shippable": False}]
    (nc / "body_heatmap.json").write_text(json.dumps(record))
    with pytest.raises(InputError, match="may not ship"):
        install_heatmap(nc / "body_heatmap.pt", tmp_path / "other")
    assert not (tmp_path / "other").exists()
    # a record that is missing or truncated is named, in install and in verify
    (nc / "body_heatmap.json").unlink()
    with pytest.raises(InputError, match="must come with their body_heatmap.json"):
        install_heatmap(nc / "body_heatmap.pt", tmp_path / "other")
    record_file = installed.with_name("body_heatmap.json")
    record_file.write_text(record_file.read_text()[:40])
    problems = _heatmap_problems(installed.parent)
    assert len(problems) == 1 and "unreadable heatmap record" in problems[0]


def test_the_squared_error_then_focal_schedule_is_recorded(tmp_path):
    recipe = HeatmapRecipe(n_procedural=1, steps=1, loss="mse", focal_steps=1, batch=1,
                           patch_vox=32, seed=4)  # fmt: skip
    train_heatmap(tmp_path, recipe, None)
    meta = json.loads((tmp_path / "body_heatmap.json").read_text())
    assert meta["recipe"]["loss"] == "mse" and meta["recipe"]["focal_steps"] == 1
    assert np.isfinite(meta["final_loss"])


def test_the_bone_analysis_completes_the_heatmap_spine_only_on_it():
    """A body the heatmap missed (in a gap or past an end) comes from the bone analysis when it
    lies on the heatmap's line; one off it (the aorta in front) or on a peak does not."""
    from spinefx.inference.ct_localisation import (
        LocalisedVertebra,
        SpineLocalisation,
        _completed,
    )

    spine = _spine(7)  # cranial first, 27 mm apart
    peaks = spine[[0, 1, 3, 4]]  # the heatmap missed the 3rd and the last two
    bone = [spine[2], spine[5], spine[1] + [0, 0, 3.0], spine[6] + [0.0, 30.0, 0.0]]
    loc = SpineLocalisation(
        [LocalisedVertebra(0, c, "uncertain", "") for c in bone], np.zeros((0, 3))
    )
    points, added = _completed(peaks, loc)
    assert np.allclose(points, spine[[0, 1, 2, 3, 4, 5]])
    assert added.tolist() == [False, False, True, False, False, True]


def test_a_real_ct_is_a_training_case_only_when_named(real_data, tmp_path):
    from spinefx.errors import InputError

    recipe = HeatmapRecipe(mask_subjects=[], ct_subjects=["verse007"], n_procedural=0)
    cases = build_cases(tmp_path, recipe, real_data)
    assert [(c["source"], c["subject"]) for c in cases] == [("real_ct", "verse007")]
    with np.load(tmp_path / "cases" / f"{cases[0]['name']}.npz") as z:
        assert z["x"].shape == z["t"].shape and z["t"].max() > 0.9
    assert build_cases(tmp_path / "none", HeatmapRecipe(mask_subjects=[], n_procedural=0),
                       real_data) == []  # fmt: skip
    with pytest.raises(InputError, match="no real CT of subject"):
        build_cases(tmp_path, HeatmapRecipe(ct_subjects=["verse018"], n_procedural=0), real_data)
    with pytest.raises(InputError, match="does not allow shipping"):
        build_cases(tmp_path, HeatmapRecipe(ct_subjects=["ctfu00001"], shippable_only=True,
                                            n_procedural=0), real_data)  # fmt: skip


def test_levels_from_the_sacrum_stay_anchored_only_up_to_where_both_methods_agree():
    """Counted from the sacrum (caudal end), a level is anchored while every heatmap body below
    it matches one bone-analysis body; a body split into two peaks breaks the count above it."""
    from spinefx.inference.ct_localisation import LocalisedVertebra, _agreed_from_sacrum

    def bodies(points, **kw):
        return [LocalisedVertebra(0, np.asarray(c, float), "anchored", "", **kw) for c in points]

    spine = _spine(6)  # cranial first
    bone = bodies(spine)
    assert _agreed_from_sacrum(bodies(spine + 2.0), bone, 27.0) == [True] * 6
    # the 4th body answered by two peaks at its endplates: one matches, the other not
    split = np.vstack([spine[:3], spine[3] + [0, 0, 8.0], spine[3] - [0, 0, 6.0], spine[4:]])
    assert _agreed_from_sacrum(bodies(split), bone, 27.0) == [False] * 4 + [True] * 3
    # a body the bone analysis inferred from the spacing confirms nothing
    inferred = bodies(spine)
    inferred[4].inferred = True
    assert _agreed_from_sacrum(bodies(spine), inferred, 27.0) == [False] * 5 + [True]

"""Level assignment by matching the inter-centroid pitch profile to the T1-L5 reference."""

from __future__ import annotations

import numpy as np
import pytest

from spinefx.inference.localisation import (
    PROFILE_LABELS,
    assign_levels,
    localisation_errors,
    profile_costs,
    profile_offset,
    reference_pitch_mm,
    spine_order,
)

N_DRAWS = 40


def _chain(first, n, scale, rng, *, noise_mm=1.5, shorten=None):
    """Centroids of ``n`` levels from VerSe ``first`` on a kyphotic arc (cranial first).

    Pitches are the reference pitches times ``scale``; ``shorten=(i, f)`` shortens pitch ``i``
    by the fraction ``f`` (a fractured body); each coordinate gets uniform +-``noise_mm``.
    """
    i0 = PROFILE_LABELS.index(first)
    pitch = reference_pitch_mm()[i0 : i0 + n - 1] * scale
    if shorten is not None:
        pitch[shorten[0]] *= 1.0 - shorten[1]
    s = np.concatenate([[0.0], np.cumsum(pitch)])
    radius = rng.uniform(200.0, 350.0)
    theta = s / radius + rng.uniform(-0.3, 0.3)
    pts = np.stack([np.zeros_like(s), radius * np.cos(theta), -radius * np.sin(theta)], 1)
    pts[:, 0] = 15.0 * np.sin(s / 120.0)  # mild scoliosis: the path is curved in 3-D
    return pts + rng.uniform(-noise_mm, noise_mm, pts.shape)


def _level_errors(first, n, scale, *, seed, **kw):
    rng = np.random.default_rng(seed)
    return np.array(
        [profile_offset(_chain(first, n, scale, rng, **kw))[0] - first for _ in range(N_DRAWS)]
    )


def test_reference_pitch_follows_the_morphometry_table():
    pitch = reference_pitch_mm()
    assert pitch.shape == (16,)
    assert pitch[0] == pytest.approx(15.0 / 2 + 4.0 + (15.0 + 7.5 / 11) / 2)  # T1/T2
    assert pitch[11] == pytest.approx(22.5 / 2 + 6.0 + 25.0 / 2)  # T12/L1 (T12's disc)
    assert pitch[-1] == pytest.approx(26.5 / 2 + (8.5 + 2.5 * 3 / 4) + 27.0 / 2)  # L4/L5
    assert np.all(np.diff(pitch) > 0)


@pytest.mark.parametrize("n", [2, 5, 7, 17])
def test_noise_free_chains_are_labelled_exactly_for_every_window(n):
    rng = np.random.default_rng(0)
    for first in PROFILE_LABELS[: len(PROFILE_LABELS) - n + 1]:
        pts = _chain(first, n, 1.0, rng, noise_mm=0.0)
        label, scale, cost = profile_offset(pts)
        assert label == first
        assert scale == pytest.approx(1.0, abs=0.01)
        assert list(assign_levels(pts)) == list(range(first, first + n))


def test_scale_is_fitted_and_reported():
    rng = np.random.default_rng(1)
    costs = profile_costs(_chain(17, 6, 0.92, rng, noise_mm=0.0))
    assert sorted(costs) == list(range(8, 20))  # T1..T12 as first of a 6-level window
    scale, cost = costs[17]
    assert scale == pytest.approx(0.92, abs=0.03)  # shrunk slightly towards 1 by the prior
    assert cost == min(c for _, c in costs.values())
    assert profile_costs(np.zeros((1, 3))) == {}


@pytest.mark.parametrize("scale", [0.92, 1.08])
@pytest.mark.parametrize(
    ("first", "n"),
    [(17, 5), (16, 7), (20, 5)],  # T10-L2, T9-L3, L1-L5: windows with lumbar levels
)
def test_windows_with_the_thoracolumbar_step_are_mostly_exact(first, n, scale):
    err = _level_errors(first, n, scale, seed=first * 10 + n)
    # measured (seeded, 40 draws): exact 0.65-0.95, within one level 0.82-1.0
    assert np.mean(err == 0) >= 0.5
    assert np.mean(np.abs(err) <= 1) >= 0.75


@pytest.mark.parametrize("scale", [0.92, 1.08])
def test_mid_thoracic_windows_are_placed_by_size_only(scale):
    # T3-T8: the pitch grows ~4 % a level, so an 8 % size change looks like a ~2-level shift;
    # the size prior pulls towards the reference size -> biased by 2-3 levels. Measured
    # (seeded, 40 draws): scale 0.92 -> always 2 levels cranial at most (median -2);
    # 1.08 -> median 3 levels caudal, worst 5; reference size -> always within one level
    err = _level_errors(10, 6, scale, seed=3)
    assert np.median(np.abs(err)) <= 3
    assert np.mean(np.abs(err) <= 3) >= 0.8
    assert np.sign(np.median(err)) == (-1 if scale < 1 else 1)  # bigger spine -> more caudal
    exact = _level_errors(10, 6, 1.0, seed=3)
    assert np.mean(np.abs(exact) <= 1) >= 0.9  # at the reference size: within one level


def test_shortened_pitch_of_a_fracture_keeps_the_junction_labels():
    # T10-L3 with the T10/T11 pitch shortened by 25 % (fractured T11)
    pts = _chain(17, 7, 1.0, np.random.default_rng(0), noise_mm=0.0, shorten=(1, 0.25))
    assert list(assign_levels(pts)) == list(range(17, 24))
    err = _level_errors(17, 7, 1.0, seed=4, shorten=(1, 0.25))
    # measured (seeded, 40 draws): exact 0.82 (0.72 without the fracture), within one 1.0
    assert np.mean(err == 0) >= 0.65
    assert np.mean(np.abs(err) <= 1) >= 0.9


def test_single_component_falls_back_to_the_caudal_anchor():
    assert list(assign_levels(np.zeros((1, 3)))) == [24]
    assert list(assign_levels(np.zeros((1, 3)), anchor_label=19)) == [19]
    with pytest.raises(ValueError, match="anchor"):
        assign_levels(np.zeros((2, 3)), anchor="middle")


def _rates(cases, anchor):
    identified = total = 0
    per_case = []
    for case in cases:
        truth = {
            v.vertebra_label: np.asarray(v.centroid_mm, float)
            for v in case.vertebrae
            if v.centroid_mm is not None
        }
        pts = np.array(list(truth.values()))
        pred = assign_levels(pts[spine_order(pts)], anchor=anchor)
        err = localisation_errors(pred, truth)
        identified += round(err["identification_rate"] * err["n_truth"])
        total += err["n_truth"]
        per_case.append(err["identification_rate"])
    return identified / total, per_case


def test_profile_beats_the_caudal_anchor_on_synthetic_scans(tmp_path):
    from spinefx.io import load_dataset
    from spinefx.synthesis import generate_dataset

    generate_dataset(tmp_path, n_scans=3, seed=5, preset="small")
    cases = load_dataset(tmp_path)
    profile, per_profile = _rates(cases, "profile")
    caudal, per_caudal = _rates(cases, "caudal")
    # measured with the realistic generator (2026-12): profile 0.375 (cases 0, 1, 0; on 8 scans
    # 0.50), caudal anchor 0.0 (no case reaches L5; 0.11 on 8 scans). Before the generator
    # rework the same seed gave 11/17 vs 0/17. Short `small` windows give the profile little
    # to match; real-CT localisation is issue 14.
    assert profile >= 0.3
    assert caudal <= 0.2
    assert profile - caudal >= 0.3


def _column(n: int, pitch_mm: float = 30.0, *, outlier_mm: float = 0.0):
    from spinefx.conventions import SPINE_ORDER

    labels = SPINE_ORDER[SPINE_ORDER.index(16) : SPINE_ORDER.index(16) + n]
    return {
        k: np.array([outlier_mm * (i == n // 2), 5.0 * np.sin(i / 3), i * -pitch_mm])
        for i, k in enumerate(labels)
    }


def test_a_plausible_automatic_localisation_passes():
    from spinefx.inference.localisation import check_localisation

    check_localisation(_column(8))


@pytest.mark.parametrize(
    ("centroids", "message"),
    [
        (_column(12, pitch_mm=8.0), "gaps"),  # 12 "levels" in 90 mm
        (_column(4, pitch_mm=90.0), "gaps"),
        (_column(8, outlier_mm=35.0), "off the spine line"),  # e.g. a marker on a rib
    ],
)
def test_implausible_automatic_localisations_are_refused(centroids, message):
    from spinefx.errors import InputError
    from spinefx.inference.localisation import check_localisation

    with pytest.raises(InputError, match=message) as err:
        check_localisation(centroids)
    assert "--centroids" in str(err.value)

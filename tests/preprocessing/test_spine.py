"""Spine curve and vertebra frames: known answers, handedness, robustness to bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spinefx.errors import InputError
from spinefx.preprocessing import SpineCurve, spine_frames


def _straight(labels=range(18, 25), step_mm=30.0) -> dict[int, np.ndarray]:
    # label 18 = T11 (cranial) ... 24 = L5 (caudal): z decreases with the label
    return {lab: np.array([5.0, -10.0, -step_mm * (lab - 18)]) for lab in labels}


def _assert_rotation(axes: np.ndarray) -> None:
    np.testing.assert_allclose(axes.T @ axes, np.eye(3), atol=1e-9)
    assert np.linalg.det(axes) == pytest.approx(1.0)


def test_straight_vertical_spine_gives_identity_frames():
    curve, frames = spine_frames(_straight())
    assert curve.length_mm == pytest.approx(180.0)
    for label, frame in frames.items():
        np.testing.assert_allclose(frame.axes, np.eye(3), atol=1e-9)
        np.testing.assert_allclose(frame.origin_mm, _straight()[label])


def test_unordered_input_gives_the_same_frames():
    ordered = _straight()
    shuffled = {k: ordered[k] for k in (21, 18, 24, 19, 23, 20, 22)}
    _, a = spine_frames(ordered)
    _, b = spine_frames(shuffled)
    for label in ordered:
        np.testing.assert_allclose(a[label].axes, b[label].axes)


def test_tilted_straight_spine_tangent_is_the_line_and_points_cranially():
    direction = np.array([0.3, 0.4, 1.0]) / np.linalg.norm([0.3, 0.4, 1.0])
    centroids = {lab: -direction * 25.0 * (lab - 20) for lab in range(20, 25)}
    _, frames = spine_frames(centroids)
    for frame in frames.values():
        _assert_rotation(frame.axes)
        np.testing.assert_allclose(frame.axes[:, 2], direction, atol=1e-9)
        assert frame.axes[0, 0] > 0.9  # x ~ patient right
        assert frame.axes[1, 1] > 0.8  # y ~ anterior
        assert frame.axes[:, 0][1] == pytest.approx(0.0, abs=1e-12)  # x has no A component


def test_curved_spine_tangent_matches_circle():
    # Centroids on a sagittal circle (kyphosis) of radius 200 mm: tangent is known exactly.
    radius, angles = 200.0, np.linspace(-0.6, 0.6, 9)
    labels = list(range(8, 17))  # T1..T9, cranial first -> largest z first
    pts = {
        lab: np.array([0.0, radius * np.cos(a), radius * np.sin(a)])
        for lab, a in zip(labels, angles[::-1], strict=True)
    }
    curve, frames = spine_frames(pts)
    assert curve.length_mm == pytest.approx(radius * 1.2, rel=1e-3)
    for lab, a in zip(labels[2:-2], angles[::-1][2:-2], strict=True):
        expected = np.array([0.0, -np.sin(a), np.cos(a)])
        np.testing.assert_allclose(frames[lab].axes[:, 2], expected, atol=2e-3)
        _assert_rotation(frames[lab].axes)


def test_arc_length_parameterisation_and_frame_round_trip():
    curve = SpineCurve(np.array([[0, 0, 0], [0, 10, 30], [5, 15, 60], [5, 10, 90.0]]))
    s = np.linspace(0, curve.length_mm, 200)
    steps = np.linalg.norm(np.diff(curve.position(s), axis=0), axis=1)
    np.testing.assert_allclose(steps, curve.length_mm / 199, rtol=2e-3)
    _, frames = spine_frames({20: [1.0, 2.0, 3.0], 21: [1.0, 4.0, -27.0]})
    p = np.array([[3.0, -2.0, 7.0]])
    np.testing.assert_allclose(frames[20].to_world(frames[20].to_local(p)), p)


def test_one_and_two_centroids():
    _, one = spine_frames({22: np.array([1.0, 2.0, 3.0])})
    np.testing.assert_allclose(one[22].axes, np.eye(3))
    _, two = spine_frames({22: np.array([0.0, 0.0, 0.0]), 21: np.array([0.0, 30.0, 30.0])})
    z = np.array([0.0, 1.0, 1.0]) / np.sqrt(2)
    for frame in two.values():
        np.testing.assert_allclose(frame.axes[:, 2], z, atol=1e-9)
        _assert_rotation(frame.axes)


def test_duplicate_positions_and_non_vertebra_labels_are_tolerated():
    centroids = _straight()
    centroids[25] = centroids[24].copy()  # L6 at the same point as L5
    centroids[26] = np.array([0.0, 0.0, -500.0])  # sacrum: ignored
    _, frames = spine_frames(centroids)
    assert 26 not in frames and 25 in frames
    np.testing.assert_allclose(frames[25].axes, np.eye(3), atol=1e-9)


@pytest.mark.parametrize(
    "centroids, match",
    [
        ({20: [np.nan, 0, 0]}, "finite"),
        ({20: [0, 0]}, "finite"),
        ({99: [0, 0, 0]}, "unknown vertebra label"),
        ({}, "no vertebra centroids"),
    ],
)
def test_bad_centroids_raise_input_error(centroids, match):
    with pytest.raises(InputError, match=match):
        spine_frames(centroids)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(*[st.floats(-15, 15)] * 2),
        min_size=2,
        max_size=10,
    )
)
def test_frames_are_always_right_handed_rotations(offsets):
    centroids = {18 + i: np.array([dx, dy, -32.0 * i]) for i, (dx, dy) in enumerate(offsets)}
    _, frames = spine_frames(centroids)
    for frame in frames.values():
        _assert_rotation(frame.axes)
        assert frame.axes[1, 1] > 0  # y keeps pointing anterior

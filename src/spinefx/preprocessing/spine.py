"""The spine curve and the local frame of each vertebra.

A smooth interpolating spline (scipy) runs through the vertebral-body centroids, ordered
caudal -> cranial by :func:`spinefx.conventions.spine_rank`, and is parameterised by arc
length in mm. Each vertebra gets a right-handed orthonormal frame:

* origin = its centroid (world RAS+ mm);
* z = unit tangent of the curve at the centroid, pointing cranially;
* y = world anterior ``(0, 1, 0)`` projected onto the plane normal to z (so the frame
  follows sagittal and coronal curvature, e.g. kyphosis and scoliosis, without twisting);
* x = y x z, which points to the patient's right (RAS +x).

For a straight vertical spine in any scan the frame is the identity (x = R, y = A, z = S).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from spinefx.conventions import SPINE_ORDER, level_name, spine_rank
from spinefx.errors import InputError

#: Centroids closer than this are treated as one point of the curve.
DUPLICATE_TOLERANCE_MM = 1e-3
_ANTERIOR = np.array([0.0, 1.0, 0.0])
_RIGHT = np.array([1.0, 0.0, 0.0])
_SUPERIOR = np.array([0.0, 0.0, 1.0])


@dataclass(frozen=True, eq=False)
class VertebraFrame:
    """The local frame of one vertebra.

    Attributes:
        vertebra_label: VerSe label id.
        origin_mm: centroid in world RAS+ mm, shape ``(3,)``.
        axes: ``(3, 3)`` rotation whose columns are the frame's x (patient right),
            y (anterior) and z (cranial tangent) unit vectors in world RAS+; ``det = +1``.
    """

    vertebra_label: int
    origin_mm: np.ndarray
    axes: np.ndarray

    @property
    def level(self) -> str:
        return level_name(self.vertebra_label)

    def to_world(self, local_mm: np.ndarray) -> np.ndarray:
        """Map frame coordinates ``(..., 3)`` (mm) to world RAS+ mm."""
        return np.asarray(local_mm, dtype=float) @ self.axes.T + self.origin_mm

    def to_local(self, world_mm: np.ndarray) -> np.ndarray:
        """Map world RAS+ mm ``(..., 3)`` to frame coordinates (mm); inverse of ``to_world``."""
        return (np.asarray(world_mm, dtype=float) - self.origin_mm) @ self.axes


class SpineCurve:
    """Arc-length parameterised spline through ordered centroids (caudal -> cranial).

    Args:
        points_mm: ``(N, 3)`` world points ordered caudal -> cranial, N >= 1, consecutive
            points distinct. One point gives a vertical line through it (world S axis), two a
            straight segment, three a quadratic and more a cubic interpolating spline.
    """

    def __init__(self, points_mm: np.ndarray):
        points = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3)
        self.points_mm = points
        if len(points) == 1:
            self._knots = np.zeros(1)
            self._spline = None
            self.length_mm = 0.0
            return
        # imported here: scipy.interpolate costs 0.8 s to import, and screening never needs it
        from scipy.interpolate import make_interp_spline

        chord = np.linalg.norm(np.diff(points, axis=0), axis=1)
        knots = np.concatenate([[0.0], np.cumsum(chord)])
        spline = make_interp_spline(knots, points, k=min(3, len(points) - 1))
        # Re-parameterise chord length -> true arc length by dense quadrature.
        dense = np.linspace(0.0, knots[-1], 64 * len(points))
        speed = np.linalg.norm(spline(dense, 1), axis=1)
        arc = np.concatenate([[0.0], np.cumsum((speed[1:] + speed[:-1]) / 2 * np.diff(dense))])
        self._spline = spline
        self._dense_t, self._dense_s = dense, arc
        self._knots = np.interp(knots, dense, arc)
        self.length_mm = float(arc[-1])

    @property
    def knot_arc_mm(self) -> np.ndarray:
        """Arc length (mm, from the caudal end) of each input point."""
        return self._knots

    def position(self, arc_mm: np.ndarray | float) -> np.ndarray:
        """World points ``(..., 3)`` at arc lengths ``arc_mm`` (extrapolates beyond the ends)."""
        arc = np.asarray(arc_mm, dtype=float)
        if self._spline is None:
            return self.points_mm[0] + arc[..., None] * _SUPERIOR
        return self._spline(self._arc_to_t(arc))

    def tangent(self, arc_mm: np.ndarray | float) -> np.ndarray:
        """Unit tangents ``(..., 3)`` pointing cranially at arc lengths ``arc_mm``."""
        arc = np.asarray(arc_mm, dtype=float)
        if self._spline is None:
            return np.broadcast_to(_SUPERIOR, (*arc.shape, 3)).copy()
        d = self._spline(self._arc_to_t(arc), 1)
        return d / np.linalg.norm(d, axis=-1, keepdims=True)

    def _arc_to_t(self, arc: np.ndarray) -> np.ndarray:
        return np.interp(arc, self._dense_s, self._dense_t)


def frame_from_tangent(origin_mm: np.ndarray, tangent: np.ndarray, *, label: int) -> VertebraFrame:
    """Build the right-handed frame with z = ``tangent`` and y = projected world anterior.

    Where the tangent is (almost) antero-posterior, the anterior projection is undefined; the
    frame then takes x = world right projected instead.
    """
    z = np.asarray(tangent, dtype=float)
    z = z / np.linalg.norm(z)
    if abs(z @ _ANTERIOR) < 0.99:
        y = _ANTERIOR - (_ANTERIOR @ z) * z
        y /= np.linalg.norm(y)
        x = np.cross(y, z)
    else:
        x = _RIGHT - (_RIGHT @ z) * z
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
    return VertebraFrame(int(label), np.asarray(origin_mm, dtype=float), np.stack([x, y, z], 1))


def spine_frames(
    centroids: Mapping[int, np.ndarray],
) -> tuple[SpineCurve, dict[int, VertebraFrame]]:
    """Fit the spine curve through ``centroids`` and build every vertebra's local frame.

    Args:
        centroids: VerSe label id -> vertebral-body centroid in world RAS+ mm ``(3,)``, in any
            order. Non-vertebra labels (sacrum 26, coccyx 27) are ignored.

    Returns:
        ``(curve, frames)``; ``frames`` maps each vertebra label to its :class:`VertebraFrame`.

    Raises:
        InputError: no vertebra centroids, a centroid that is not 3 finite numbers, or an
            unknown label.
    """
    items = _validated(centroids)
    caudal_first = sorted(items, key=lambda kv: -spine_rank(kv[0]))
    points = [caudal_first[0][1]]
    for _, p in caudal_first[1:]:
        if np.linalg.norm(p - points[-1]) > DUPLICATE_TOLERANCE_MM:
            points.append(p)
    curve = SpineCurve(np.array(points))
    frames = {}
    for label, p in caudal_first:
        arc = curve.knot_arc_mm[int(np.argmin(np.linalg.norm(curve.points_mm - p, axis=1)))]
        frames[label] = frame_from_tangent(p, curve.tangent(arc), label=label)
    return curve, frames


def _validated(centroids: Mapping[int, np.ndarray]) -> list[tuple[int, np.ndarray]]:
    items = []
    for label, value in dict(centroids).items():
        try:
            label = int(label)
        except (TypeError, ValueError):
            raise InputError(
                f"centroid label {label!r} is not an integer",
                fix="use VerSe label ids (20 = L1)",
            ) from None
        if label not in SPINE_ORDER:
            if label in (26, 27):
                continue
            level_name(label)  # raises InputError naming the valid ids
        point = np.asarray(value, dtype=float).reshape(-1)
        if point.shape != (3,) or not np.all(np.isfinite(point)):
            raise InputError(
                f"centroid of {level_name(label)} is {value!r}, not 3 finite world mm values",
                fix="check the centroid file or the mask of this vertebra",
            )
        items.append((label, point))
    if not items:
        raise InputError(
            "no vertebra centroids given", fix="provide a centroid JSON or a vertebra mask"
        )
    return items

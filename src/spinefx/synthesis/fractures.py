"""Genant fractures of synthetic vertebrae: sampling the truth and the height-loss field.

A fracture is a loss of body height ``loss`` (fraction of the vertebra's own normal height,
Genant's definition) with a shape: *wedge* (anterior height lost), *biconcave* (the middle
lost, endplates pushed in) or *crush* (the whole body lower). The loss field ``lambda(u, v)``
over the body cross-section says how much height is lost at each point; the generator moves
the endplates by it. The field is flat at the points where morphometry measures (10 % of the
depth inside the anterior/posterior margins and the centre), so the intended grade is what a
measurement of the rendered mask finds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinefx.conventions import GENANT_HEIGHT_LOSS, SHAPE_CODES
from spinefx.synthesis.config import FractureConfig

SHAPES: tuple[str, ...] = ("wedge", "biconcave", "crush")


@dataclass(frozen=True)
class FractureTruth:
    """Ground truth of one vertebra.

    Attributes:
        genant_grade: 0-3.
        shape: "wedge" / "biconcave" / "crush", or None for grade 0.
        height_loss: fraction of the normal body height lost (0 for grade 0).
        superior_fraction: share of the loss taken by the superior endplate (0-1).
    """

    genant_grade: int = 0
    shape: str | None = None
    height_loss: float = 0.0
    superior_fraction: float = 1.0

    @property
    def shape_code(self) -> int:
        """VerSe shape code: 0 none, 1 wedge, 2 biconcave, 3 crush."""
        return 0 if self.shape is None else SHAPE_CODES[self.shape]


def sample_height_loss(grade: int, rng: np.random.Generator, *, config: FractureConfig) -> float:
    """A height loss drawn uniformly inside the Genant range of ``grade`` (1-3)."""
    low, high = GENANT_HEIGHT_LOSS[grade]
    high = min(high, config.severe_max_loss)
    m = config.boundary_margin
    return float(rng.uniform(low + m, high - m))


def sample_fractures(
    n_vertebrae: int, rng: np.random.Generator, *, config: FractureConfig, osteoporotic: bool
) -> list[FractureTruth]:
    """Fracture truth for ``n_vertebrae`` consecutive vertebrae (cranial to caudal).

    Fractures start with the patient's prevalence and continue to the next vertebra with
    ``config.run_probability`` (runs of adjacent fractures, as in osteoporosis).
    """
    prevalence = config.osteoporotic_prevalence if osteoporotic else config.prevalence
    start_p = prevalence * (1.0 - config.run_probability)
    grade_p = np.asarray(config.grade_weights, float) / np.sum(config.grade_weights)
    shape_p = np.asarray(config.shape_weights, float) / np.sum(config.shape_weights)
    truths: list[FractureTruth] = []
    previous = False
    for _ in range(n_vertebrae):
        p = config.run_probability if previous else start_p
        fractured = bool(rng.random() < p)
        if fractured:
            grade = int(rng.choice([1, 2, 3], p=grade_p))
            shape = str(rng.choice(SHAPES, p=shape_p))
            truths.append(
                FractureTruth(
                    genant_grade=grade,
                    shape=shape,
                    height_loss=sample_height_loss(grade, rng, config=config),
                    superior_fraction=float(rng.uniform(0.6, 1.0)),
                )
            )
        else:
            truths.append(FractureTruth())
        previous = fractured
    return truths


def loss_field(u_rel: np.ndarray, v_rel: np.ndarray, truth: FractureTruth) -> np.ndarray:
    """Fraction of height lost at body cross-section points.

    Args:
        u_rel: lateral position / body half-width (-1..1 inside the body), any shape.
        v_rel: antero-posterior position / body half-depth (+1 anterior margin), same shape.
        truth: the vertebra's fracture.

    Returns:
        ``lambda`` of the same shape, in ``[0, truth.height_loss]``.
    """
    loss = truth.height_loss
    if truth.genant_grade == 0 or loss <= 0:
        return np.zeros(np.broadcast(u_rel, v_rel).shape, np.float32)
    if truth.shape == "wedge":
        # zero behind -0.3 (posterior third), full from +0.6 forward; linear in between
        ramp = np.clip((v_rel + 0.3) / 0.9, 0.0, 1.0)
        return (loss * ramp * np.ones_like(u_rel)).astype(np.float32)
    if truth.shape == "biconcave":
        r = np.sqrt(u_rel**2 + v_rel**2)
        return (loss * np.clip((0.65 - r) / 0.4, 0.0, 1.0)).astype(np.float32)
    return np.full(np.broadcast(u_rel, v_rel).shape, loss, np.float32)


def posterior_loss(truth: FractureTruth) -> float:
    """Height lost at the posterior wall (how much the spine shortens at this vertebra)."""
    return truth.height_loss if truth.shape == "crush" else 0.0


def wedge_angle_rad(truth: FractureTruth, *, height_mm: float, depth_mm: float) -> float:
    """Local kyphotic angulation caused by an anterior height loss (radians)."""
    if truth.shape != "wedge":
        return 0.0
    return float(np.arctan(truth.height_loss * height_mm / depth_mm))

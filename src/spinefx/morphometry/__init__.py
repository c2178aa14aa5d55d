"""Vertebral morphometry: body heights along the spine axis, Genant grade and shape from masks."""

from spinefx.morphometry.grading import deformities, grade_deformity
from spinefx.morphometry.heights import BodyHeights, body_voxels, measure_heights
from spinefx.morphometry.measure import (
    MORPHOMETRY_COLUMNS,
    VertebraMorphometry,
    format_table,
    measure_vertebrae,
    morphometry_columns,
    with_morphometry,
)

__all__ = [
    "MORPHOMETRY_COLUMNS",
    "BodyHeights",
    "VertebraMorphometry",
    "body_voxels",
    "deformities",
    "format_table",
    "grade_deformity",
    "measure_heights",
    "measure_vertebrae",
    "morphometry_columns",
    "with_morphometry",
]

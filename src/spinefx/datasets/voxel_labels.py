"""Dense 3-class label images from sparse vertebra annotations (Nicolaes et al. 2019, sec. 3.1).

Each annotated vertebra becomes an ellipsoid around its centroid, labelled normal (1) or
fractured (2; Genant mild, moderate and severe together); everything else is background (0).
Vertebrae that must not teach the network (foreign material, ungraded) are filled with
``IGNORE_LABEL`` (255) so the loss skips them.

The paper gives no numbers for the ellipsoids; our choices (all options below):

* ``d`` = mean distance to the annotated neighbours along the spine (the vertebral pitch,
  body + disc), or ``default_pitch_mm`` for a lone vertebra;
* semi-axis along the local spine axis ``axial_fraction * d`` (0.3: a body is ~0.8 d high, so
  ~0.1 d at each endplate plus the disc stays background, "voxels near the vertebra border
  are labelled background");
* in-plane semi-axes ``radial_fraction * d`` (0.45: inside the vertebral body, which is ~1.2 d
  wide and ~1 d deep);
* fractured vertebrae are flattened: axial semi-axis times ``fracture_flattening`` (0.7,
  i.e. a moderate 30 % height loss);
* the local spine axis is the central difference of the neighbouring centroids (cranial
  direction), world +z for a lone vertebra; where ellipsoids overlap the voxel goes to the
  vertebra of smallest normalised ellipsoid distance.

All geometry is in world RAS+ mm; the label image lives on the grid of ``reference``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinefx.conventions import spine_rank
from spinefx.image import Image
from spinefx.records import VertebraRecord

BACKGROUND, NORMAL, FRACTURED = 0, 1, 2
IGNORE_LABEL = 255


@dataclass(frozen=True)
class EllipsoidOptions:
    """Shape of the label ellipsoids (see the module docstring for the reasoning)."""

    axial_fraction: float = 0.3
    radial_fraction: float = 0.45
    fracture_flattening: float = 0.7
    default_pitch_mm: float = 28.0


def vertebra_class(record: VertebraRecord) -> int:
    """Label value of one annotated vertebra: 1 normal, 2 fractured, 255 ignore."""
    if record.foreign_material or record.genant_grade is None:
        return IGNORE_LABEL
    return FRACTURED if record.genant_grade >= 1 else NORMAL


def spine_axes(centroids_mm: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Unit spine tangent (pointing cranially) at each centroid, from its neighbours.

    Args:
        centroids_mm: VerSe label -> world RAS+ mm ``(3,)``.

    Returns:
        label -> unit vector ``(3,)`` in world space.
    """
    labels = sorted(centroids_mm, key=spine_rank)  # cranial first
    pts = np.array([np.asarray(centroids_mm[lab], float) for lab in labels])
    out = {}
    for i, lab in enumerate(labels):
        if len(labels) == 1:
            vec = np.array([0.0, 0.0, 1.0])
        else:
            vec = pts[max(i - 1, 0)] - pts[min(i + 1, len(labels) - 1)]
        norm = np.linalg.norm(vec)
        out[lab] = vec / norm if norm > 0 else np.array([0.0, 0.0, 1.0])
    return out


def vertebra_pitch_mm(
    centroids_mm: dict[int, np.ndarray], *, default_mm: float
) -> dict[int, float]:
    """Mean distance (mm) from each centroid to its annotated neighbours along the spine."""
    labels = sorted(centroids_mm, key=spine_rank)
    pts = [np.asarray(centroids_mm[lab], float) for lab in labels]
    out = {}
    for i, lab in enumerate(labels):
        d = [np.linalg.norm(pts[i] - pts[j]) for j in (i - 1, i + 1) if 0 <= j < len(pts)]
        out[lab] = float(np.mean(d)) if d else default_mm
    return out


def ellipsoid_label_image(
    reference: Image,
    centroids_mm: dict[int, np.ndarray],
    classes: dict[int, int],
    *,
    options: EllipsoidOptions | None = None,
) -> Image:
    """Label image (uint8) of ellipsoids around the centroids on the grid of ``reference``.

    Args:
        reference: image whose grid (shape + affine) the labels take (the 1 mm scan).
        centroids_mm: VerSe label -> vertebral-body centroid in world RAS+ mm.
        classes: VerSe label -> 1 (normal), 2 (fractured) or 255 (ignore); see
            :func:`vertebra_class`. Centroids without a class are ignored (255).
        options: ellipsoid shape.

    Returns:
        ``Image`` with ``uint8`` data of ``reference.shape``: 0 background, 1 normal,
        2 fractured, 255 ignore.
    """
    opts = options or EllipsoidOptions()
    shape = reference.shape
    labels = np.zeros(shape, dtype=np.uint8)
    best = np.full(shape, np.inf, dtype=np.float32)
    axes = spine_axes(centroids_mm)
    pitch = vertebra_pitch_mm(centroids_mm, default_mm=opts.default_pitch_mm)
    inv = np.linalg.inv(reference.affine)
    for lab, centre in centroids_mm.items():
        cls = int(classes.get(lab, IGNORE_LABEL))
        axial = opts.axial_fraction * pitch[lab]
        if cls == FRACTURED:
            axial *= opts.fracture_flattening
        radial = opts.radial_fraction * pitch[lab]
        box = _voxel_box(inv, np.asarray(centre, float), max(axial, radial), shape)
        if box is None:
            continue
        grids = np.meshgrid(*[np.arange(lo, hi) for lo, hi in box], indexing="ij")
        ijk = np.stack(grids, axis=-1).astype(float)
        rel = ijk @ reference.affine[:3, :3].T + reference.affine[:3, 3] - centre
        along = rel @ axes[lab]
        perp2 = np.maximum((rel**2).sum(-1) - along**2, 0.0)
        q = (along / axial) ** 2 + perp2 / radial**2
        sl = tuple(slice(lo, hi) for lo, hi in box)
        take = (q <= 1.0) & (q < best[sl])
        best[sl][take] = q[take]
        labels[sl][take] = cls
    return reference.with_data(labels, kind="voxel_labels")


def _voxel_box(inv_affine, centre_mm, radius_mm, shape):
    """Voxel index ranges ``[(lo, hi)] * 3`` covering a ball, clipped to the grid; None if outside."""
    corners = np.array(
        [[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float
    )
    pts = centre_mm + radius_mm * corners
    ijk = pts @ inv_affine[:3, :3].T + inv_affine[:3, 3]
    lo = np.maximum(np.floor(ijk.min(0)).astype(int), 0)
    hi = np.minimum(np.ceil(ijk.max(0)).astype(int) + 1, shape)
    if np.any(hi <= lo):
        return None
    return [(int(a), int(b)) for a, b in zip(lo, hi, strict=True)]


def labels_from_records(
    reference: Image, records, *, options: EllipsoidOptions | None = None
) -> Image:
    """Label image from a case's :class:`~spinefx.records.VertebraRecord` list (with centroids)."""
    centroids = {
        r.vertebra_label: np.asarray(r.centroid_mm, float)
        for r in records
        if r.centroid_mm is not None
    }
    classes = {r.vertebra_label: vertebra_class(r) for r in records}
    return ellipsoid_label_image(reference, centroids, classes, options=options)

"""Vertebral-body centroids from vertebra masks: what the networks are centred on.

A vertebra mask's centre of mass lies between body and posterior elements; VerSe centroid files
and both networks mean the *body* centroid. :func:`body_centroids` takes morphometry's body
estimate and falls back to the whole vertebra's centre of mass where a body cannot be measured.
:func:`vertebra_mask_centroids` is what ``--mask`` does on ``predict``, ``detect`` and ``report``:
read a VerSe or TotalSegmentator mask (:mod:`spinefx.io.vertebra_masks`), take body centroids,
and check that they can belong to the scan.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from spinefx.conventions import VERTEBRA_LEVELS
from spinefx.errors import SpinefxError
from spinefx.image import Image

log = logging.getLogger(__name__)


def body_centroids(mask: Image) -> dict[int, np.ndarray]:
    """Body centroid (world RAS+ mm) of every vertebra label of a VerSe-id mask, by label."""
    from spinefx.io import centroids_from_mask
    from spinefx.morphometry.measure import measure_vertebrae

    centroids = {int(k): v for k, v in centroids_from_mask(mask).items() if k in VERTEBRA_LEVELS}
    try:
        measured = {m.vertebra_label: m.centroid_mm for m in measure_vertebrae(mask)}
    except (SpinefxError, ValueError, IndexError) as exc:  # unmeasurable mask: keep the COM
        log.warning("body centroids fall back to the vertebra centres of mass: %s", exc)
        measured = {}
    return {k: np.asarray(measured.get(k, v), float) for k, v in sorted(centroids.items())}


def vertebra_mask_centroids(
    path: str | Path, scan: Image, *, numbering: str = "auto"
) -> dict[int, np.ndarray]:
    """Body centroids of the vertebra mask at ``path``, checked against ``scan``.

    Raises:
        InputError: an unreadable, binary or ambiguous mask, or one that cannot belong to the
            scan (out of its grid, levels in an impossible order), naming the file.
    """
    from spinefx.io.centroids import check_centroid_geometry
    from spinefx.io.vertebra_masks import load_vertebra_mask

    mask = load_vertebra_mask(path, numbering=numbering)
    centroids = body_centroids(mask.image)
    check_centroid_geometry(centroids, scan, path=path)
    return centroids

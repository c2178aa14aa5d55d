"""Vertebra centroids: VerSe centroid JSON read/write and centroids of label masks.

A VerSe centroid JSON is a list: first ``{"direction": ["P", "I", "R"]}`` (the axis codes of
the voxel grid the indices refer to), then ``{"label": 20, "X": .., "Y": .., "Z": ..}`` entries
holding **voxel indices** of the vertebral-body centroid. The indices refer to the reference
scan *reoriented to those axis codes* (``nibabel.as_closest_canonical``-style flips and
permutations); this module converts them to world RAS+ mm at the boundary, so centroids never
travel as indices. Older VerSe files without a direction entry refer to the scan's own grid.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from spinefx.atomic import write_text_atomic
from spinefx.conventions import NON_VERTEBRA_LABELS, VERTEBRA_LEVELS
from spinefx.errors import InputError
from spinefx.image import Image

log = logging.getLogger(__name__)

#: Labels a centroid file may hold: the vertebrae plus sacrum (26) and coccyx (27).
CENTROID_LABELS: frozenset[int] = frozenset({*VERTEBRA_LEVELS, *NON_VERTEBRA_LABELS})
#: VerSe sub-region labels of the vertebral body (corpus border and corpus).
BODY_SUBREGION_LABELS: tuple[int, ...] = (49, 50)


def _file_to_image_index(codes: tuple[str, ...], reference: Image) -> np.ndarray:
    """4x4 map from voxel indices of ``reference`` reoriented to ``codes`` to its own indices."""
    import nibabel.orientations as nio

    own = nio.io_orientation(reference.affine)
    target = nio.axcodes2ornt(codes)
    transform = nio.ornt_transform(own, target)
    return nio.inv_ornt_aff(transform, reference.shape)


def _direction(entries: list, path: Path, reference: Image) -> tuple[str, ...]:
    for entry in entries:
        if isinstance(entry, dict) and "direction" in entry:
            raw = entry["direction"]
            if not isinstance(raw, (list, tuple, str)):
                raise InputError(
                    f"direction entry {raw!r} is not a list of axis codes",
                    path=path,
                    fix='write it as e.g. {"direction": ["P", "I", "R"]}',
                )
            codes = tuple(str(c).upper() for c in raw)
            if len(codes) != 3 or any(sum(c in pair for c in codes) != 1 for pair in _AXES):
                raise InputError(
                    f"direction entry {entry['direction']!r} is not three axis codes",
                    path=path,
                    fix='write it as e.g. {"direction": ["P", "I", "R"]}',
                )
            return codes
    log.warning(
        "%s: no direction entry; assuming the indices refer to the scan's own grid (%s)",
        path,
        reference.orientation,
    )
    return tuple(reference.orientation)


_AXES = ("LR", "AP", "IS")


def _read_entries(path: Path) -> list:
    if not path.is_file():
        raise InputError("centroid file not found", path=path, fix="check the path")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(
            f"not valid JSON ({exc})", path=path, fix="pass a VerSe centroid JSON file"
        ) from None
    if isinstance(entries, dict) and "centroids" in entries:  # tolerate {"centroids": [...]}
        entries = entries["centroids"]
    if not isinstance(entries, list):
        raise InputError(
            "a VerSe centroid JSON must be a list of entries",
            path=path,
            fix='write [{"direction": [...]}, {"label": 20, "X": .., "Y": .., "Z": ..}, ...]',
        )
    return entries


def _parse_label_entry(entry, path: Path) -> tuple[int, np.ndarray]:
    try:
        raw = entry["label"]
        value = float(raw)
        ijk = np.array([float(entry["X"]), float(entry["Y"]), float(entry["Z"])])
    except (KeyError, TypeError, ValueError, OverflowError):
        raise InputError(
            f"malformed centroid entry {entry!r}",
            path=path,
            fix='each entry needs "label", "X", "Y", "Z" (voxel indices)',
        ) from None
    if isinstance(raw, bool) or not np.isfinite(value) or value != int(value):
        raise InputError(
            f"vertebra label {raw!r} is not a whole number",
            path=path,
            fix="labels are VerSe ids (whole numbers): 1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6",
        )
    label = int(value)
    if label not in CENTROID_LABELS:
        raise InputError(
            f"unknown vertebra label {label}",
            path=path,
            fix="use VerSe numbering: 1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6, 28 T13 "
            "(26 sacrum, 27 coccyx)",
        )
    if not np.all(np.isfinite(ijk)):
        raise InputError(f"centroid of label {label} is not finite", path=path, fix="fix it")
    return label, ijk


def load_centroids(
    path: str | Path, reference: Image, *, outside: str = "error"
) -> dict[int, np.ndarray]:
    """Read a VerSe centroid JSON as world coordinates.

    Args:
        path: the JSON file.
        reference: the scan (or its mask: same grid) whose voxel grid the indices refer to.
            Only its affine and shape are used.
        outside: ``"error"`` raises for a centroid outside the scan, ``"keep"`` returns it.

    Returns:
        ``{vertebra_label: array (3,) in RAS+ mm}``, in file order.

    Raises:
        InputError: missing or malformed file, unknown label, duplicate label, or a centroid
            outside the reference grid (naming the label and the file).
    """
    path = Path(path)
    entries = _read_entries(path)
    codes = _direction(entries, path, reference)
    to_image = _file_to_image_index(codes, reference)
    centroids: dict[int, np.ndarray] = {}
    for entry in entries:
        if isinstance(entry, dict) and "direction" in entry and "label" not in entry:
            continue
        label, ijk_file = _parse_label_entry(entry, path)
        if label in centroids:
            raise InputError(f"label {label} appears twice", path=path, fix="keep one entry")
        ijk = to_image[:3, :3] @ ijk_file + to_image[:3, 3]
        world = reference.voxel_to_world(ijk)
        if outside == "error" and not reference.contains_world(world):
            raise InputError(
                f"centroid of label {label} ({VERTEBRA_LEVELS.get(label, label)}) at voxel "
                f"{np.round(ijk_file, 1).tolist()} ({''.join(codes)}) lies outside the scan "
                f"grid {reference.shape}",
                path=path,
                fix="check that the centroid file belongs to this scan (same subject and "
                "split) and that its direction entry matches the indices",
            )
        centroids[label] = world
    if outside == "keep":
        check_centroid_geometry(centroids, reference, path=path)
    return centroids


#: a centroid this far outside the scan grid cannot be of a vertebra in the scan, mm
MAX_OUTSIDE_MM = 100.0
#: plausible centre-to-centre distance per level between vertebrae, mm (C2-C3 ~15, L4-L5 ~40)
LEVEL_SPACING_MM = (8.0, 65.0)
#: a centroid "lies on bone" when the 90th HU percentile within this radius reaches BONE_HU.
#: 15 mm reaches the cortex, endplates and pedicles: an osteoporotic body alone may not (the
#: real VerSe crop verse006 has 70-100 HU cancellous bone and a 90th percentile of 130-175 HU
#: within 10 mm of its body centroids, 300-360 HU within 15 mm).
BONE_RADIUS_MM, BONE_HU = 15.0, 150.0


def _on_bone(reference: Image, world: np.ndarray) -> bool:
    ijk = np.rint(reference.world_to_voxel(np.asarray(world, float))).astype(int)
    r = np.ceil(BONE_RADIUS_MM / np.asarray(reference.spacing_mm, float)).astype(int)
    lo, hi = np.maximum(ijk - r, 0), np.minimum(ijk + r + 1, reference.shape)
    if np.any(hi <= lo):
        return False
    block = np.asarray(reference.data[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], float)
    return bool(np.percentile(block, 90) >= BONE_HU)


def _outside_mm(reference: Image, world: np.ndarray) -> float:
    ijk = reference.world_to_voxel(np.asarray(world, float))
    lo, hi = -0.5, np.asarray(reference.shape, float) - 0.5
    beyond = np.maximum(lo - ijk, 0.0) + np.maximum(ijk - hi, 0.0)
    return float(np.linalg.norm(beyond * np.asarray(reference.spacing_mm, float)))


def check_centroid_geometry(
    centroids: Mapping[int, np.ndarray], reference: Image, *, path: str | Path
) -> None:
    """Refuse centroids that cannot belong to this scan or to one spine.

    Centroids a little outside the grid are fine (a vertebra cut by the field of view is
    reported as not assessable); refused are: every centroid outside the grid, one far
    outside (:data:`MAX_OUTSIDE_MM`), levels whose order along the spine is impossible, and
    neighbours whose spacing per level is outside :data:`LEVEL_SPACING_MM`.

    Raises:
        InputError: naming the file, the levels and the fix.
    """
    from spinefx.conventions import SPINE_ORDER, spine_rank

    if not centroids:
        return
    fix = (
        "check that the centroid file belongs to this scan (same subject, series and "
        "orientation) and that its labels are VerSe ids; or pass a vertebra mask"
    )
    outside = {k: _outside_mm(reference, v) for k, v in centroids.items()}
    if all(d > 0 for d in outside.values()):
        raise InputError(
            f"all {len(centroids)} centroids lie outside the scan grid {reference.shape} "
            f"(nearest {min(outside.values()):.0f} mm away)",
            path=path,
            fix=fix,
        )
    far = {k: d for k, d in outside.items() if d > MAX_OUTSIDE_MM}
    if far:
        listed = ", ".join(f"{VERTEBRA_LEVELS.get(k, k)} {d:.0f} mm" for k, d in far.items())
        raise InputError(f"centroids far outside the scan: {listed}", path=path, fix=fix)
    spine = sorted((k for k in centroids if k in SPINE_ORDER), key=spine_rank)
    points = np.array([np.asarray(centroids[k], float) for k in spine])
    if len(points) >= 3:
        axis = np.linalg.svd(points - points.mean(0), full_matrices=False)[2][0]
        along = (points - points[0]) @ axis
        steps = np.diff(along) * np.sign(along[-1] - along[0] or 1.0)
        if np.any(steps <= 0):
            bad = int(np.argmax(steps <= 0))
            raise InputError(
                f"the levels are out of order along the spine at "
                f"{VERTEBRA_LEVELS.get(spine[bad], spine[bad])}-"
                f"{VERTEBRA_LEVELS.get(spine[bad + 1], spine[bad + 1])}",
                path=path,
                fix=fix,
            )
    for a, b, pa, pb in zip(spine, spine[1:], points, points[1:], strict=False):
        per_level = float(np.linalg.norm(pb - pa)) / max(spine_rank(b) - spine_rank(a), 1)
        low, high = LEVEL_SPACING_MM
        if not low <= per_level <= high:
            raise InputError(
                f"{VERTEBRA_LEVELS.get(a, a)} and {VERTEBRA_LEVELS.get(b, b)} are "
                f"{per_level:.0f} mm apart per level (plausible: {low:.0f}-{high:.0f} mm)",
                path=path,
                fix=fix,
            )
    if float(np.min(reference.data)) < -200.0:  # a CT in HU (masks hold labels >= 0)
        on_bone = sum(_on_bone(reference, v) for v in centroids.values())
        if on_bone < 0.5 * len(centroids):
            raise InputError(
                f"only {on_bone} of {len(centroids)} centroids lie on bone in this scan",
                path=path,
                fix=fix,
            )


def save_centroids(
    centroids: Mapping[int, np.ndarray],
    path: str | Path,
    reference: Image,
    *,
    axcodes: str | None = None,
) -> Path:
    """Write centroids (world RAS+ mm) as a VerSe centroid JSON, atomically.

    Args:
        centroids: ``{vertebra_label: (3,) RAS+ mm}``.
        path: destination ``.json``.
        reference: the scan whose grid the written voxel indices refer to.
        axcodes: axis codes of the written indices (default: the reference's own, as VerSe).

    Returns:
        The path written.
    """
    codes = tuple(axcodes or reference.orientation)
    to_image = _file_to_image_index(codes, reference)
    to_file = np.linalg.inv(to_image)
    entries: list[dict] = [{"direction": list(codes)}]
    for label, world in centroids.items():
        if int(label) not in CENTROID_LABELS:
            raise InputError(f"unknown vertebra label {label}", path=path, fix="use VerSe ids")
        ijk = reference.world_to_voxel(np.asarray(world, dtype=float))
        ijk_file = to_file[:3, :3] @ ijk + to_file[:3, 3]
        x, y, z = (round(float(v), 4) for v in ijk_file)
        entries.append({"label": int(label), "X": x, "Y": y, "Z": z})
    write_text_atomic(path, json.dumps(entries))
    return Path(path)


def centroids_from_mask(
    mask: Image, *, subregion_mask: Image | None = None
) -> dict[int, np.ndarray]:
    """Centre of mass of each vertebra label of a mask, in world RAS+ mm.

    Args:
        mask: vertebra label map (VerSe numbering), shape ``(X, Y, Z)``.
        subregion_mask: optional VerSe sub-region mask on the same grid; when given, only
            vertebral-body voxels (sub-regions 49, 50) count, which gives the body centroid
            that VerSe centroid files hold.

    Returns:
        ``{vertebra_label: array (3,) RAS+ mm}`` for each label of ``CENTROID_LABELS`` present,
        sorted by label.
    """
    from scipy import ndimage

    labels_map = np.asarray(mask.data)
    present = [int(v) for v in np.unique(labels_map) if int(v) in CENTROID_LABELS]
    if subregion_mask is not None:
        if subregion_mask.shape != mask.shape or not np.allclose(
            subregion_mask.affine, mask.affine, atol=1e-3
        ):
            raise InputError(
                "the sub-region mask is not on the vertebra mask's grid",
                path=subregion_mask.meta.get("source"),
                fix="pass the sub-region mask that belongs to this vertebra mask",
            )
        body = np.isin(subregion_mask.data, BODY_SUBREGION_LABELS)
        with_body = [v for v in present if np.any(body & (labels_map == v))]
        labels_map = np.where(body, labels_map, 0)
        present = with_body
    if not present:
        return {}
    coms = ndimage.center_of_mass(np.ones(labels_map.shape, np.uint8), labels_map, present)
    return {
        label: mask.voxel_to_world(np.asarray(c)) for label, c in zip(present, coms, strict=True)
    }

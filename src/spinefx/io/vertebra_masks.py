"""Vertebra masks from VerSe and TotalSegmentator, converted to VerSe label ids.

Most users already have vertebra masks from TotalSegmentator; its numberings differ from VerSe's
(``conventions.VERTEBRA_LEVELS``: C1-C7 = 1-7, T1-T12 = 8-19, L1-L5 = 20-24, sacrum 26):

* ``verse``: VerSe ids; also TotalSegmentator's ``vertebrae_body`` / ``vertebrae_pp*``
  spine tasks, whose vertebra ids are VerSe's (``totalseg/spine_report`` in the real samples);
* ``totalseg_v1``: the v1 ``total`` task, L5 = 18 ... L1 = 22, T12 = 23 ... T1 = 34,
  C7 = 35 ... C1 = 41 (vertebra ids count up cranially, organs fill the other ids);
* ``totalseg_v2``: the v2 ``total`` task, sacrum = 25, S1 = 26, L5 = 27 ... L1 = 31,
  T12 = 32 ... T1 = 43, C7 = 44 ... C1 = 50;
* a TotalSegmentator output **folder** with one binary file per structure
  (``vertebrae_L1.nii.gz``, ``sacrum.nii.gz``, ...).

``numbering="auto"`` tries every numbering and keeps those under which the vertebrae lie in
anatomical order (each VerSe level above the next, along the patient's superior axis). One
plausible numbering is used. Several (e.g. ids 27-41 only, which both ``total`` versions
hold) or none is an error that names ``--mask-numbering``. A mask with a single label over
several separate bodies is a binary mask and cannot name levels: also an error.

This is written by hand because neither nibabel nor TotalSegmentator's own package (not a
dependency, and its label maps live in its code) converts between the two numberings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spinefx.conventions import LEVEL_LABELS, SPINE_ORDER, VERTEBRA_LEVELS
from spinefx.errors import InputError
from spinefx.image import Image

log = logging.getLogger(__name__)

SACRUM = 26
_V1 = {18 + i: 24 - i for i in range(24)}  # 18 L5 -> 24 ... 41 C1 -> 1
_V2 = {27 + i: 24 - i for i in range(24)} | {25: SACRUM, 26: SACRUM}  # 27 L5 ... 50 C1; S1
#: numbering -> {file id: VerSe id} (``verse`` is the identity on VerSe's own ids)
NUMBERINGS: dict[str, dict[int, int]] = {
    "verse": {k: k for k in (*VERTEBRA_LEVELS, SACRUM, 27)},
    "totalseg_v1": _V1,
    "totalseg_v2": _V2,
}
NUMBERING_CHOICES = ("auto", *NUMBERINGS)
#: structure file names of a TotalSegmentator output folder -> VerSe id
FOLDER_NAMES: dict[str, int] = {
    **{f"vertebrae_{level}": label for level, label in LEVEL_LABELS.items() if level != "T13"},
    "vertebrae_S1": SACRUM,
    "sacrum": SACRUM,
}


@dataclass(frozen=True)
class VertebraMask:
    """A vertebra mask in VerSe ids and how its file was read.

    Attributes:
        image: integer label image (VerSe ids; 0 background), the file's own grid and affine.
        numbering: the numbering the file was read with (``verse``, ``totalseg_v1``, ...,
            ``totalseg_folder``).
        source: the file or folder.
    """

    image: Image
    numbering: str
    source: Path


def load_vertebra_mask(path: str | Path, *, numbering: str = "auto") -> VertebraMask:
    """Read a VerSe or TotalSegmentator vertebra mask (file or output folder) as VerSe ids.

    Args:
        path: NIfTI label map, or a TotalSegmentator output folder of per-structure files.
        numbering: ``auto`` (detected from the anatomy) or one of :data:`NUMBERINGS`.

    Raises:
        InputError: unreadable, binary, ambiguous or implausible masks, naming the file and
            the fix.
    """
    path = Path(path)
    if numbering not in NUMBERING_CHOICES:
        raise InputError(
            f"unknown mask numbering {numbering!r}",
            fix=f"use one of {', '.join(NUMBERING_CHOICES)}",
        )
    if path.is_dir():
        return VertebraMask(_folder_mask(path), "totalseg_folder", path)
    from spinefx.io.scan import load_mask

    raw = load_mask(path, known_labels=None)
    data = np.asarray(raw.data)
    present = [int(v) for v in np.unique(data) if v != 0]
    if not present:
        raise InputError(
            "the mask is empty (no labelled voxel)",
            path=path,
            fix="pass the vertebra mask of this scan, or a centroid JSON",
        )
    _refuse_binary(raw, present, path)
    if numbering != "auto":
        return VertebraMask(_relabel(raw, NUMBERINGS[numbering], path, numbering), numbering, path)
    centres = _label_centres(raw, present)
    explained = {
        name: n
        for name, table in NUMBERINGS.items()
        if (n := _explained(table, present, centres, name))
    }
    best = max(explained.values(), default=0)
    plausible = sorted(name for name, n in explained.items() if n == best)
    if len(plausible) == 1:
        name = plausible[0]
        log.info("%s: vertebra ids read as %s numbering", path.name, name)
        return VertebraMask(_relabel(raw, NUMBERINGS[name], path, name), name, path)
    if not plausible:
        raise InputError(
            "the labels of this mask are in no known vertebra numbering in anatomical order "
            f"(labels {present[:12]}{' ...' if len(present) > 12 else ''})",
            path=path,
            fix="pass a VerSe or TotalSegmentator vertebra mask, or name its numbering with "
            f"--mask-numbering ({', '.join(NUMBERINGS)})",
        )
    raise InputError(
        f"the mask's labels fit several numberings ({', '.join(plausible)})",
        path=path,
        fix=f"name it with --mask-numbering ({' or '.join(plausible)})",
    )


def _refuse_binary(raw: Image, present: list[int], path: Path) -> None:
    if len(present) != 1:
        return
    from scipy import ndimage

    _, n = ndimage.label(np.asarray(raw.data) == present[0])
    if n > 1 or present[0] == 1:
        raise InputError(
            f"this is a binary mask (one label, {n} separate part(s)): it does not say which "
            "vertebra is which",
            path=path,
            fix="pass a labelled vertebra mask (VerSe ids, TotalSegmentator `total` or "
            "`vertebrae_body` output) or a centroid JSON",
        )


def _label_centres(raw: Image, present: list[int]) -> dict[int, np.ndarray]:
    """World RAS+ mm centre of mass of each label."""
    from scipy import ndimage

    data = np.asarray(raw.data)
    coms = ndimage.center_of_mass(np.ones(data.shape, np.uint8), data, present)
    return {
        label: raw.voxel_to_world(np.asarray(c)) for label, c in zip(present, coms, strict=True)
    }


#: centre-to-centre distance per level step of present vertebrae in any numbering (mm)
_STEP_MM = (8.0, 65.0)
#: most levels missing between two present vertebrae of one spine
_MAX_MISSING = 2
#: furthest a vertebra's centre lies right or left of the spine's median (mm; scoliosis
#: included). Not front-back: the curvature of a whole spine moves bodies 10 cm along AP.
_OFF_AXIS_MM = 80.0


def _explained(
    table: dict[int, int], present: list[int], centres: dict[int, np.ndarray], name: str
) -> int:
    """How many labels ``name`` explains as spine structures in anatomical order (0: none or
    implausible). Plausible: one chain of vertebrae (at most two levels missing between
    neighbours), each above the next along the superior axis, 8-65 mm per level apart, all
    within 80 mm right or left of the chain's median, the sacrum below every vertebra."""
    if name == "verse" and any(p not in table for p in present):
        return 0
    mapped = {table[p]: centres[p] for p in present if p in table}
    vertebrae = {label: c for label, c in mapped.items() if label in SPINE_ORDER}
    if not vertebrae:
        return 0
    rank = {label: i for i, label in enumerate(SPINE_ORDER)}
    ordered = sorted(vertebrae, key=rank.__getitem__)  # cranial to caudal
    for upper, lower in zip(ordered, ordered[1:], strict=False):
        a, b, steps = vertebrae[upper], vertebrae[lower], rank[lower] - rank[upper]
        distance = float(np.linalg.norm(a - b))
        if a[2] <= b[2] or steps > _MAX_MISSING + 1:
            return 0
        if not _STEP_MM[0] * steps <= distance <= _STEP_MM[1] * steps:
            return 0
    midline = float(np.median([c[0] for c in vertebrae.values()]))
    if any(abs(c[0] - midline) > _OFF_AXIS_MM for c in vertebrae.values()):
        return 0
    if SACRUM in mapped and mapped[SACRUM][2] >= min(c[2] for c in vertebrae.values()):
        return 0
    return sum(1 for p in present if p in table)


def _relabel(raw: Image, table: dict[int, int], path: Path, name: str) -> Image:
    data = np.asarray(raw.data)
    out = np.zeros(data.shape, np.uint8)
    for label in (int(v) for v in np.unique(data) if v != 0):
        if label in table:
            out[data == label] = table[label]
    if not out.any():
        raise InputError(
            f"no vertebra label of the {name} numbering in this mask",
            path=path,
            fix="check the file, or name another --mask-numbering",
        )
    return raw.with_data(out, vertebra_numbering=name)


def _folder_mask(folder: Path) -> Image:
    from spinefx.io.scan import load_mask

    files = {
        name: folder / f"{name}{ext}"
        for name in FOLDER_NAMES
        for ext in (".nii.gz", ".nii")
        if (folder / f"{name}{ext}").is_file()
    }
    if not files:
        raise InputError(
            "no vertebra files (vertebrae_L1.nii.gz, ...) in this folder",
            path=folder,
            fix="pass a TotalSegmentator output folder, or a single label-map file",
        )
    out: np.ndarray | None = None
    reference: Image | None = None
    for name, file in sorted(files.items()):
        part = load_mask(file, known_labels=None)
        if reference is None:
            reference, out = part, np.zeros(part.shape, np.uint8)
        elif part.shape != reference.shape or not np.allclose(
            part.affine, reference.affine, atol=1e-3
        ):
            raise InputError(
                "the structure files of this folder are not on one grid",
                path=file,
                fix="pass the files of one TotalSegmentator run",
            )
        out[np.asarray(part.data) > 0] = FOLDER_NAMES[name]
    assert reference is not None and out is not None
    if not out.any():
        raise InputError(
            "every vertebra file of this folder is empty", path=folder, fix="check the folder"
        )
    return reference.with_data(out, vertebra_numbering="totalseg_folder")

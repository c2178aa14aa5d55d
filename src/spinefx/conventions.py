"""The coordinate contract and label tables of spinefx, written once.

Coordinate contract
-------------------
* World space is **RAS+ in millimetres**: +x points to the patient's Right, +y Anterior,
  +z Superior (the space of nibabel affines). Only the DICOM reader knows LPS; it converts at the boundary.
* Arrays are indexed ``(x, y, z)`` in voxel order (``array[i, j, k]``); the image affine maps
  the voxel index ``(i, j, k, 1)`` to world ``(x, y, z, 1)``. Voxel centres sit at integer indices.
* Intensities of CT images are Hounsfield units (HU).
* VerSe centroid JSON files hold voxel indices in the file's own axis codes; they are converted
  to world millimetres by :mod:`spinefx.io.centroids` and never travel as indices.

Label table
-----------
VerSe numbering: 1-7 = C1-C7, 8-19 = T1-T12, 20-24 = L1-L5, 25 = L6, 28 = T13
(26 = sacrum and 27 = coccyx exist in VerSe masks but are not vertebrae we classify).
"""

from __future__ import annotations

from spinefx.errors import InputError

WORLD_SPACE = "RAS+"
WORLD_UNITS = "mm"

#: HU window used for network inputs: clipped to this range, then scaled to [0, 1].
HU_CLIP = (-1000.0, 1000.0)
#: HU value used to pad outside the field of view (air).
AIR_HU = -1000.0
#: Fixed CT input scaling of the voxel classifier (``intensity_normalisation: ct``): HU clipped
#: to ``clip_hu``, then ``(HU - mean_hu) / std_hu``. Air -2, fat -0.2, muscle 0.1, trabecular
#: bone 0.2-0.6, cortex 1-2.4: the same on every field of view (nnU-Net's CT scheme uses
#: dataset-wide statistics the same way).
CT_NORMALISATION: dict[str, object] = {
    "clip_hu": (-1000.0, 2000.0),
    "mean_hu": 0.0,
    "std_hu": 500.0,
}
#: Plausible HU range of a CT volume; images far outside are rejected as non-CT.
CT_PLAUSIBLE_HU = (-1100.0, 4000.0)

_CERVICAL = {i: f"C{i}" for i in range(1, 8)}
_THORACIC = {i + 7: f"T{i}" for i in range(1, 13)}
_LUMBAR = {i + 19: f"L{i}" for i in range(1, 6)}

#: VerSe vertebra label id -> level name.
VERTEBRA_LEVELS: dict[int, str] = {**_CERVICAL, **_THORACIC, **_LUMBAR, 25: "L6", 28: "T13"}
#: level name -> VerSe vertebra label id.
LEVEL_LABELS: dict[str, int] = {name: label for label, name in VERTEBRA_LEVELS.items()}
#: Non-vertebra labels that may appear in VerSe masks.
NON_VERTEBRA_LABELS: dict[int, str] = {26: "sacrum", 27: "coccyx"}

#: Anatomical order along the spine, cranial to caudal (T13 after T12, L6 after L5).
SPINE_ORDER: tuple[int, ...] = (
    *range(1, 20),
    28,
    *range(20, 25),
    25,
)

#: Genant semi-quantitative grades and their height-loss ranges (fraction of expected height).
GENANT_GRADES: dict[int, str] = {0: "normal", 1: "mild", 2: "moderate", 3: "severe"}
GENANT_HEIGHT_LOSS: dict[int, tuple[float, float]] = {
    0: (0.0, 0.20),
    1: (0.20, 0.25),
    2: (0.25, 0.40),
    3: (0.40, 1.0),
}
#: Fracture shapes as coded in the VerSe appendix (``_fx-s``).
FRACTURE_SHAPES: dict[int, str] = {1: "wedge", 2: "biconcave", 3: "crush"}
SHAPE_CODES: dict[str, int] = {name: code for code, name in FRACTURE_SHAPES.items()}


def level_name(label: int) -> str:
    """Return the level name (``"T12"``) of a VerSe vertebra label id.

    Raises:
        InputError: if the id is not a known vertebra label.
    """
    try:
        return VERTEBRA_LEVELS[int(label)]
    except (KeyError, ValueError, TypeError):
        raise InputError(
            f"unknown vertebra label {label!r}",
            fix="use VerSe numbering: 1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6, 28 T13",
        ) from None


def vertebra_label(level: str) -> int:
    """Return the VerSe label id of a level name such as ``"L1"`` (case-insensitive)."""
    key = str(level).strip().upper()
    if key not in LEVEL_LABELS:
        raise InputError(
            f"unknown vertebra level {level!r}",
            fix="use level names C1-C7, T1-T13, L1-L6",
        )
    return LEVEL_LABELS[key]


def is_cervical(label: int) -> bool:
    """True for C1-C7 (excluded from fracture classification by default, as in the papers)."""
    return 1 <= int(label) <= 7


def spine_rank(label: int) -> int:
    """Position of a label along the spine, cranial (0) to caudal."""
    return SPINE_ORDER.index(int(label))


def genant_grade_from_height_loss(height_loss: float) -> int:
    """Genant grade (0-3) of a fractional height loss (0.3 = 30 %)."""
    if height_loss < 0.20:
        return 0
    if height_loss < 0.25:
        return 1
    if height_loss < 0.40:
        return 2
    return 3


# Normal adult vertebral body size (mm) at T1 / T12 and L1 / L5, interpolated linearly per region,
# from morphometric series of vertebral bodies (posterior height, width, depth) and the disc
# below. The synthetic generator builds its spines from this table, morphometry grades a body
# against it when it has no neighbours, and localisation matches level spacings to it.
_NORMAL_THORACIC_MM = {"height": (15.0, 22.5), "width": (29.0, 42.0), "depth": (17.0, 30.0)}
_NORMAL_LUMBAR_MM = {"height": (25.0, 27.0), "width": (44.0, 52.0), "depth": (31.0, 35.0)}
_NORMAL_DISC_THORACIC_MM = (4.0, 6.0)
_NORMAL_DISC_LUMBAR_MM = (8.5, 11.0)


def normal_vertebra_size(label: int) -> dict[str, float]:
    """Normal body height/width/depth and the disc below, mm, of VerSe label 8-24 (T1-L5)."""
    if 8 <= label <= 19:
        t, table, disc = (label - 8) / 11.0, _NORMAL_THORACIC_MM, _NORMAL_DISC_THORACIC_MM
    elif 20 <= label <= 24:
        t, table, disc = (label - 20) / 4.0, _NORMAL_LUMBAR_MM, _NORMAL_DISC_LUMBAR_MM
    else:
        raise ValueError(f"no reference size for label {label}")
    size = {k: lo + t * (hi - lo) for k, (lo, hi) in table.items()}
    size["disc"] = disc[0] + t * (disc[1] - disc[0])
    return size

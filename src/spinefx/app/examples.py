"""Bundled synthetic example scans, generated deterministically into a cache folder on first use."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from spinefx.errors import InputError

#: Fixed generator settings: the examples are the same on every machine.
EXAMPLE_SEED = 2022
EXAMPLE_COUNT = 2
EXAMPLE_PRESET = "small"  # < 1 s per scan; synth0001 has a severe and a mild fracture
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Example:
    """One bundled example: a synthetic CT and its centroid JSON (VerSe layout)."""

    name: str
    scan_path: Path
    centroids_path: Path


def example_names() -> list[str]:
    """Names of the bundled examples (they exist once :func:`get_example` generated them)."""
    return [f"synth{i:04d}" for i in range(1, EXAMPLE_COUNT + 1)]


def get_example(name: str, cache_dir: Path) -> Example:
    """The example ``name``, generating the synthetic set into ``cache_dir`` if needed.

    Raises:
        InputError: unknown example name.
    """
    if name not in example_names():
        raise InputError(f"unknown example {name!r}", fix=f"pick one of {example_names()}")
    root = Path(cache_dir) / f"synthetic-{EXAMPLE_PRESET}-seed{EXAMPLE_SEED}"
    with _LOCK:
        if not (root / "fracture_grades.csv").is_file():
            from spinefx.synthesis import generate_dataset

            generate_dataset(root, n_scans=EXAMPLE_COUNT, seed=EXAMPLE_SEED, preset=EXAMPLE_PRESET)
    sub = f"sub-{name}"
    scan = root / "rawdata" / sub / f"{sub}_ct.nii.gz"
    ctd = root / "derivatives" / sub / f"{sub}_seg-subreg_ctd.json"
    if not scan.is_file() or not ctd.is_file():
        raise InputError(
            "the synthetic example set is incomplete",
            path=root,
            fix="delete the folder so it is generated again",
        )
    return Example(name, scan, ctd)

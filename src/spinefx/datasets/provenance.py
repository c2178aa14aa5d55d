"""Where a training set came from: generated (synthetic) scans or real ones.

Every dataset that spinefx generates (the procedural generator, mask rendering, fracture
simulation on real CT; :mod:`spinefx.synthesis`) writes ``synthesis_config.yaml`` at its root,
so a scan is *generated* when a folder above it holds that file. The trainers record
:func:`training_data_origin` in the run's ``run.json``; reports and the app read it back to say
"trained only on simulated data" wherever such a model answers.
"""

from __future__ import annotations

import csv
from collections import Counter
from functools import lru_cache
from pathlib import Path

import yaml

GENERATED_MARKER = "synthesis_config.yaml"
#: how many folders above a scan file may hold the marker (VerSe layout: rawdata/sub-x/file)
_MAX_DEPTH = 5


def training_data_origin(data: str | Path) -> dict:
    """What the training data at ``data`` is made of.

    Args:
        data: a prepared patch folder (``manifest.csv`` with ``scan_path``), a dataset folder
            (VerSe, BIDS-like), or a manifest CSV (training-data engine).

    Returns:
        ``{"synthetic_only": bool | None, "scans": n, "sources": {source: n}}``;
        ``synthetic_only`` is None when no scan could be found (unknown origin).
    """
    return origin_of_scans(_scan_paths(Path(data)))


def origin_of_scans(scans: list[Path]) -> dict:
    """:func:`training_data_origin` of a list of scan files."""
    scans = sorted({Path(p) for p in scans})
    sources = Counter(_source_of(p.resolve()) for p in scans)
    return {
        "synthetic_only": (None if not scans else "real" not in sources),
        "scans": len(scans),
        "sources": dict(sorted(sources.items())),
    }


def describe_origin(origin: dict | None) -> str:
    """One sentence for reports: empty unless the model saw only simulated data."""
    if not origin or not origin.get("synthetic_only"):
        return ""
    sources = ", ".join(origin.get("sources", {})) or "generated scans"
    return (
        f"Trained only on simulated data ({sources}): no real fractured vertebra was in its "
        "training data. Check its figures on real CT (docs/model-card.md) before relying on it."
    )


def _scan_paths(data: Path) -> list[Path]:
    if data.is_file() and data.suffix == ".csv":
        return _manifest_scans(data, data.parent)
    manifest = data / "manifest.csv"
    if manifest.is_file():
        return _manifest_scans(manifest, data)
    if data.is_dir():
        from spinefx.io import scan_dataset

        try:
            return sorted({Path(c.scan_path) for c in scan_dataset(data).cases if c.scan_path})
        except Exception:  # an unreadable layout: the origin is unknown, not an error here
            return []
    return []


def _manifest_scans(manifest: Path, base: Path) -> list[Path]:
    with manifest.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    column = next((c for c in ("scan_path", "scan") if rows and c in rows[0]), None)
    if column is None:
        return []
    paths = {Path(r[column]) for r in rows if r.get(column)}
    return sorted(p if p.is_absolute() else base / p for p in paths)


def _source_of(scan: Path) -> str:
    for parent in list(scan.parents)[:_MAX_DEPTH]:
        marker = parent / GENERATED_MARKER
        if marker.is_file():
            return _marker_source(marker)
    return "real"


@lru_cache(maxsize=64)
def _marker_source(marker: Path) -> str:
    try:
        values = yaml.safe_load(marker.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return "generated"
    source = values.get("source") if isinstance(values, dict) else None
    return {
        "real_fracture": "fractures simulated on real CT",
        "mask_render": "CT rendered from real masks",
    }.get(str(source), "procedural synthetic scans")

"""The training-data engine: three sources of fracture-labelled CT, mixed in any proportion.

Sources (each writes a VerSe-layout dataset of its own; see their modules):

* ``procedural``: the synthetic spine generator (:mod:`spinefx.synthesis.generator`);
* ``mask_render``: real vertebra masks with their official grades rendered into CT with a
  randomised tissue model (:mod:`spinefx.synthesis.mask_render`);
* ``real_fracture``: healthy vertebrae of real CTs deformed into Genant fractures
  (:mod:`spinefx.synthesis.real_fractures`).

:func:`build_training_data` writes the three under one root and a ``manifest.csv`` that
:func:`spinefx.io.load_dataset` reads (so ``prepare`` and both trainers take it as it is), with
a train/val split by case and ``sources.csv`` naming the real subject behind every case. Real
subjects named in ``exclude_subjects`` contribute nothing, which is how a model scored on a
subject is kept from training on it.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from spinefx.atomic import write_text_atomic
from spinefx.config import to_dict
from spinefx.synthesis.real_sources import SOURCES_COLUMNS

log = logging.getLogger(__name__)

SOURCE_NAMES: tuple[str, ...] = ("procedural", "mask_render", "real_fracture")


@dataclass(frozen=True)
class EngineConfig:
    """What a training set is made of.

    Attributes:
        n_scans: scans in all.
        mix: source name -> share of ``n_scans`` (normalised; 0 or absent = not used).
        procedural_preset: synthesis preset of the procedural source.
        exclude_subjects: real subject ids that must not contribute (the ones being scored).
        shippable_only: use only real subjects whose licence allows shipping trained weights.
        val_fraction: share of cases in the validation split (by case, seeded).
        seed: seed of every source and of the split.
    """

    n_scans: int = 48
    mix: dict[str, float] = field(
        default_factory=lambda: {"procedural": 1 / 3, "mask_render": 1 / 3, "real_fracture": 1 / 3}
    )
    procedural_preset: str = "default"
    exclude_subjects: tuple[str, ...] = ()
    shippable_only: bool = False
    val_fraction: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.mix) - set(SOURCE_NAMES)
        if unknown:
            raise ValueError(f"unknown data sources {sorted(unknown)}; known: {SOURCE_NAMES}")
        if any(v < 0 for v in self.mix.values()) or sum(self.mix.values()) <= 0:
            raise ValueError(f"mix shares must be >= 0 with a positive sum, got {self.mix}")
        if self.n_scans < 1 or not 0.0 <= self.val_fraction < 1.0:
            raise ValueError("n_scans must be >= 1 and val_fraction in [0, 1)")

    def counts(self) -> dict[str, int]:
        """Scans per source: shares of ``n_scans`` by largest remainder (they add up)."""
        total = sum(self.mix.values())
        raw = {k: self.n_scans * self.mix.get(k, 0.0) / total for k in SOURCE_NAMES}
        counts = {k: int(np.floor(v)) for k, v in raw.items()}
        rest = self.n_scans - sum(counts.values())
        for k in sorted(raw, key=lambda k: counts[k] - raw[k])[:rest]:
            counts[k] += 1
        return counts


def select_subjects(subjects, config: EngineConfig) -> list:
    """The real subjects a training set may use under ``config``."""
    excluded = set(config.exclude_subjects)
    return [
        s
        for s in subjects
        if s.subject_id not in excluded and (s.shippable or not config.shippable_only)
    ]


def _generate_source(name: str, out: Path, n: int, subjects, config: EngineConfig, workers: int):
    seed = int(config.seed) * 1000 + SOURCE_NAMES.index(name)
    if name == "procedural":
        from spinefx.synthesis.dataset import generate_dataset

        return generate_dataset(
            out, n_scans=n, seed=seed, preset=config.procedural_preset, workers=workers
        )
    if name == "mask_render":
        from spinefx.synthesis.mask_render import MaskRenderConfig, generate_mask_render_dataset

        usable = [s for s in subjects if s.scans]
        return generate_mask_render_dataset(
            out, subjects=usable, n_scans=n, seed=seed, config=MaskRenderConfig(), workers=workers
        )
    from spinefx.synthesis.real_fractures import RealFractureConfig, generate_real_fracture_dataset

    canvases = [s for s in subjects if s.ct_scans]
    return generate_real_fracture_dataset(
        out, subjects=canvases, n_scans=n, seed=seed, config=RealFractureConfig(), workers=workers
    )


def _source(name: str, out: Path, n: int, subjects, config, workers: int, settings) -> Path:
    """Source ``name``'s dataset: made now, or kept from an interrupted run of these settings.

    A source marks itself finished with ``<out>/<name>/.engine-source.json`` (written last,
    atomically; hidden, so dataset loaders skip it). An unfinished one resumes at its first
    unfinished case (:mod:`spinefx.synthesis.resume`).
    """
    import json

    marker, key = out / name / ".engine-source.json", {"settings": settings, "n_scans": int(n)}
    try:
        if json.loads(marker.read_text(encoding="utf-8")) == json.loads(json.dumps(key)):
            log.info("reusing the finished %s source in %s", name, marker.parent)
            return marker.parent
    except (OSError, ValueError):
        pass
    marker.unlink(missing_ok=True)
    root = Path(_generate_source(name, out / name, n, subjects, config, workers))
    write_text_atomic(marker, json.dumps(key))
    return root


def _source_rows(root: Path) -> dict[str, dict]:
    path = root / "sources.csv"
    if not path.is_file():  # the procedural generator: no real subject behind its cases
        return {}
    with path.open(encoding="utf-8", newline="") as handle:
        return {row["case_id"]: row for row in csv.DictReader(handle)}


def _manifest_rows(name: str, root: Path, out: Path) -> tuple[list[dict], list[dict]]:
    from spinefx.io import scan_dataset

    sources = _source_rows(root)
    rows, origin = [], []
    for case in scan_dataset(root).cases:
        if case.scan_path is None:
            continue
        case_id = f"{name}-{case.case_id}"
        row = {
            "case_id": case_id,
            "scan": str(Path(case.scan_path).resolve().relative_to(out.resolve())),
            "centroids": str(Path(case.centroids_path).resolve().relative_to(out.resolve()))
            if case.centroids_path
            else "",
            "mask": str(Path(case.mask_path).resolve().relative_to(out.resolve()))
            if case.mask_path
            else "",
            "patient_id": case_id,
        }
        for v in case.vertebrae:
            row[v.level] = (
                "x" if v.foreign_material else "" if v.genant_grade is None else str(v.genant_grade)
            )
        rows.append(row)
        src = sources.get(case.case_id, {})
        origin.append(
            {
                "case_id": case_id,
                "source": name,
                "source_subject": src.get("source_subject", ""),
                "licence": src.get("licence", "spinefx synthetic (generated)"),
                "shippable": src.get("shippable", "True"),
            }
        )
    return rows, origin


def _csv(rows: list[dict], columns) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def build_training_data(
    config: EngineConfig, out_dir: str | Path, *, real_root: str | Path | None, workers: int = 1
) -> Path:
    """Write the mixed training set of ``config`` under ``out_dir``; the manifest's path.

    Args:
        config: the mix, exclusions and seed.
        out_dir: root (``<source>/`` datasets, ``manifest.csv``, ``sources.csv``,
            ``engine.yaml``); a source already written with the same settings is reused.
        real_root: the real sample folder (needed by ``mask_render`` and ``real_fracture``).
        workers: processes per source.
    """
    from spinefx.errors import InputError
    from spinefx.synthesis.real_sources import find_real_subjects

    out = Path(out_dir)
    counts = config.counts()
    needs_real = counts["mask_render"] + counts["real_fracture"] > 0
    if needs_real and real_root is None:
        raise InputError(
            "the mask_render and real_fracture sources need the real sample folder",
            fix="pass real_root (../shared/data/real) or use only the procedural source",
        )
    subjects = select_subjects(find_real_subjects(real_root), config) if needs_real else []
    settings = {"config": to_dict(config), "subjects": sorted(s.subject_id for s in subjects)}
    done = out / "engine.yaml"
    if done.is_file() and yaml.safe_load(done.read_text(encoding="utf-8")) == settings:
        log.info("reusing the training set in %s", out)
        return out / "manifest.csv"
    rows, origin = [], []
    for name in SOURCE_NAMES:
        if counts[name] == 0:
            continue
        root = _source(name, out, counts[name], subjects, config, workers, settings)
        source_rows, source_origin = _manifest_rows(name, Path(root), out)
        rows += source_rows
        origin += source_origin
    rng = np.random.default_rng(np.random.SeedSequence(int(config.seed), spawn_key=(99,)))
    is_val = rng.random(len(rows)) < config.val_fraction
    for row, val in zip(rows, is_val, strict=True):
        row["split"] = "val" if val else "train"
    levels = sorted(
        {k for r in rows for k in r}
        - {"case_id", "scan", "centroids", "mask", "patient_id", "split"}
    )
    columns = ["case_id", "scan", "centroids", "mask", "split", "patient_id", *levels]
    write_text_atomic(out / "sources.csv", _csv(origin, SOURCES_COLUMNS))
    write_text_atomic(out / "manifest.csv", _csv(rows, columns))
    write_text_atomic(done, yaml.safe_dump(settings, sort_keys=False))
    log.info("training set: %s scans in %s", counts, out)
    return out / "manifest.csv"

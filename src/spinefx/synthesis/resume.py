"""Resuming an interrupted dataset generator: finished cases are kept, not made again.

The three generators (procedural, mask rendering, fractures on real CT) make case ``i`` from
its own seeded generator and write its files atomically under ``rawdata/<case>/`` and
``derivatives/<case>/``; their tables (``fracture_grades.csv``, ...) are written once at the
end from every case's rows. :func:`run_cases` runs the cases through
:func:`spinefx.parallel.run_jobs` and, after each case's files, writes (atomically) a record
of its rows and file sizes::

    <root>/.synthesis-progress/settings.json     what the cases were made with
    <root>/.synthesis-progress/<case>.json       {"result": rows, "files": {path: bytes}}

A record is the proof that its case is complete. A rerun with the same settings takes the
rows of every case whose record and files are all there and makes only the others (a case's
record is deleted before it is made again); other settings start afresh. :func:`finish_cases`
deletes the folder once the tables are written, so a finished dataset holds only its layout.
The folder's files do not end in a layout suffix, so dataset loaders ignore them.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Sequence
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from spinefx.atomic import write_text_atomic

log = logging.getLogger(__name__)

PROGRESS_DIR = ".synthesis-progress"
_SETTINGS = "settings.json"


def run_cases(
    make: Callable[[Any], Any],
    jobs: Sequence[Any],
    *,
    root: str | Path,
    names: Sequence[str],
    settings: dict,
    workers: int = 1,
    desc: str = "cases",
    unit: str = "cases",
) -> list:
    """``[make(job) for job in jobs]``, in a pool, taking finished cases of an earlier run.

    Args:
        make: picklable; makes and writes case ``job`` under ``root`` and returns its rows
            (anything JSON can hold; numpy scalars are converted).
        jobs: one per case.
        root: the dataset root.
        names: the case (subject) name of every job: its folders under ``rawdata/`` and
            ``derivatives/``.
        settings: everything the cases depend on (seed, config, sources); records made with
            other settings are dropped.
        workers: processes.
        desc: progress-bar label.
        unit: what a case is, in the Ctrl-C message ("N of M <unit> done").

    Returns:
        The results in job order, as JSON gives them back (so the same whether made now or
        resumed).

    Raises:
        spinefx.parallel.Interrupted: on Ctrl-C (finished cases keep their records).
    """
    from spinefx.parallel import run_jobs

    root = Path(root)
    folder = _start(root, settings)
    results: list = [None] * len(jobs)
    todo = []
    for i, name in enumerate(names):
        record = _finished(root, folder / f"{name}.json")
        if record is None:
            todo.append(i)
        else:
            results[i] = record["result"]
    if len(todo) < len(jobs):
        log.info("resuming: %d of %d cases already done", len(jobs) - len(todo), len(jobs))
    made = run_jobs(
        partial(_make_and_record, make, str(root)),
        [(names[i], jobs[i]) for i in todo],
        workers=workers,
        desc=desc,
        ordered=True,
        already_done=len(jobs) - len(todo),
        unit=unit,
    )
    with closing(made):  # whatever stops this loop stops the pool at once
        for i, result in zip(todo, made, strict=True):
            results[i] = result
    return results


def run_generator(
    make: Callable[[Any], Any],
    jobs: Sequence[Any],
    *,
    root: str | Path,
    names: Sequence[str],
    generator: str,
    seed: int,
    config: Any,
    sources: Any,
    workers: int = 1,
    desc: str = "cases",
) -> list:
    """:func:`run_cases` for one of the engine's generators, with its standard settings.

    The settings a case depends on are the generator's name, the seed, its config dataclass
    and the real sources it draws from (``sources``: JSON-able, e.g. subject and scan ids);
    the Ctrl-C message counts "<generator> cases", since the engine runs several generators
    in turn.
    """
    from spinefx.config import to_dict

    return run_cases(
        make,
        jobs,
        root=root,
        names=names,
        settings={
            "generator": generator,
            "seed": int(seed),
            "config": to_dict(config),
            "sources": sources,
        },
        unit=f"{generator} cases",
        workers=int(workers),
        desc=desc,
    )


def finish_cases(root: str | Path) -> None:
    """Delete the progress records (call once the dataset's tables are written)."""
    shutil.rmtree(Path(root) / PROGRESS_DIR, ignore_errors=True)


def _json(value: Any) -> str:
    return json.dumps(value, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, np.generic):  # e.g. float32: its str() is what the CSV would show
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _start(root: Path, settings: dict) -> Path:
    folder = root / PROGRESS_DIR
    wanted = json.loads(_json(settings))
    try:
        same = json.loads((folder / _SETTINGS).read_text(encoding="utf-8")) == wanted
    except (OSError, ValueError):
        same = False
    if not same:
        shutil.rmtree(folder, ignore_errors=True)  # records of other settings: start afresh
        write_text_atomic(folder / _SETTINGS, _json(wanted))
    return folder


def _case_folders(root: Path, name: str) -> list[Path]:
    return [root / "rawdata" / name, root / "derivatives" / name]


def _finished(root: Path, record_path: Path) -> dict | None:
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        files = record["files"]
        if all((root / rel).stat().st_size == size for rel, size in files.items()):
            return record
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def _make_and_record(make: Callable[[Any], Any], root: str, item: tuple[str, Any]) -> Any:
    """Make one case (a pool task), then record it; its result as JSON gives it back."""
    name, job = item
    root_path = Path(root)
    record_path = root_path / PROGRESS_DIR / f"{name}.json"
    record_path.unlink(missing_ok=True)  # its files are about to change
    for folder in _case_folders(root_path, name):
        for leftover in folder.glob(".*.part*"):  # temporary files of a killed earlier run
            leftover.unlink(missing_ok=True)
    result = json.loads(_json(make(job)))
    files = {
        path.relative_to(root_path).as_posix(): path.stat().st_size
        for folder in _case_folders(root_path, name)
        if folder.is_dir()
        for path in sorted(folder.iterdir())
        if path.is_file() and not path.name.startswith(".")
    }
    write_text_atomic(record_path, _json({"result": result, "files": files}))
    return result


__all__ = ["PROGRESS_DIR", "finish_cases", "run_cases"]

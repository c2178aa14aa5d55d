"""The weights that ship inside spinefx: one run of each method, used when no model is named.

``spinefx predict SCAN``, ``detect``, ``report`` and ``app`` take these when no ``--model`` is
given (as TotalSegmentator does: a model that works out of the box, its accuracy stated in
``docs/model-card.md``). The folder (``spinefx/weights``, or ``$SPINEFX_WEIGHTS``)::

    MANIFEST.json            recipe, code version, seed, the training data and its licences,
                             the real-CT and synthetic figures, sha256 of every file below
    reference_outputs.json   outputs of both runs on a fixed generated scan (reproduction test)
    patch_classifier/        a run directory (config.yaml, checkpoint.pt, run.json, metrics.json,
                             operating_point.json)
    voxel_classifier/        the same for the voxel classifier
    body_heatmap/            the optional localiser (``--localiser heatmap``):
                             body_heatmap.pt + body_heatmap.json (recipe, cases, licences,
                             its own sha256; ``spinefx train-localiser --install`` writes it)

Loading needs no network. ``make weights`` (``spinefx weights build``) rebuilds the folder from
seeds; ``spinefx weights verify`` checks it against its manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from spinefx.errors import InputError

#: run kind -> folder of its shipped run
KIND_FOLDERS: dict[str, str] = {"patch": "patch_classifier", "voxel": "voxel_classifier"}
MANIFEST = "MANIFEST.json"
#: folder of the shipped body-centre heatmap weights (kept when the two runs are rebuilt)
HEATMAP_FOLDER = "body_heatmap"
REFERENCE = "reference_outputs.json"
#: the environment variable that points spinefx at another weights folder
ENV_VAR = "SPINEFX_WEIGHTS"


def weights_dir() -> Path:
    """The shipped weights folder (``$SPINEFX_WEIGHTS`` when set)."""
    override = os.environ.get(ENV_VAR)
    return Path(override) if override else Path(__file__).resolve().parents[1] / "weights"


def shipped_heatmap_weights() -> Path:
    """Where the shipped body-centre heatmap weights live (the file may be absent)."""
    from spinefx.models.body_heatmap import WEIGHTS_NAME

    return weights_dir() / HEATMAP_FOLDER / WEIGHTS_NAME


def shipped_run_dir(kind: str) -> Path:
    """The shipped run of ``kind`` (``patch`` or ``voxel``).

    Raises:
        InputError: this installation holds no weights of that kind.
    """
    if kind not in KIND_FOLDERS:
        raise ValueError(f"unknown run kind {kind!r}; known: {sorted(KIND_FOLDERS)}")
    run = weights_dir() / KIND_FOLDERS[kind]
    if not (run / "checkpoint.pt").is_file():
        raise InputError(
            f"this installation has no default {kind}-classifier weights",
            path=run,
            fix="pass --model RUN_DIR (a run made by `spinefx train`), or rebuild the default "
            "weights with `make weights`",
        )
    return run


def resolve_run(run_dir: str | Path | None, kind: str) -> Path:
    """``run_dir`` when given, else the shipped run of ``kind``."""
    return Path(run_dir) if run_dir else shipped_run_dir(kind)


def shipped_or_none(kind: str) -> Path | None:
    """The shipped run of ``kind``, or None when this installation holds none."""
    try:
        return shipped_run_dir(kind)
    except InputError:
        return None


def is_shipped(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` is one of the shipped runs."""
    try:
        resolved = Path(run_dir).resolve()
    except OSError:
        return False
    return any(resolved == (weights_dir() / f).resolve() for f in KIND_FOLDERS.values())


def read_manifest(root: str | Path | None = None) -> dict:
    """``MANIFEST.json`` of the weights folder ({} when there is none)."""
    path = Path(root or weights_dir()) / MANIFEST
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(
            f"the weights manifest is damaged ({exc})", path=path, fix="run `make weights`"
        ) from exc


def file_checksums(root: str | Path) -> dict[str, str]:
    """sha256 of every file of both runs, by path relative to ``root``."""
    root = Path(root)
    out = {}
    for folder in KIND_FOLDERS.values():
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                out[path.relative_to(root).as_posix()] = sha256(path)
    return out


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_shipped(root: str | Path | None = None) -> list[str]:
    """Problems of the weights folder against its manifest (empty when it is intact)."""
    root = Path(root or weights_dir())
    manifest = read_manifest(root)
    if not manifest:
        return [f"no {MANIFEST} in {root}"]
    recorded = manifest.get("files", {})
    actual = file_checksums(root)
    problems = [f"missing: {name}" for name in sorted(set(recorded) - set(actual))]
    problems += [f"not in the manifest: {name}" for name in sorted(set(actual) - set(recorded))]
    problems += [
        f"changed: {name}"
        for name in sorted(set(recorded) & set(actual))
        if recorded[name] != actual[name]
    ]
    return problems + _heatmap_problems(root / HEATMAP_FOLDER)


def _heatmap_problems(folder: Path) -> list[str]:
    """The shipped heatmap weights against the sha256 in their own record (none shipped: no
    problem, the heatmap localiser is optional)."""
    from spinefx.models.body_heatmap import RECORD_NAME, WEIGHTS_NAME, read_heatmap_record

    pt, meta = folder / WEIGHTS_NAME, folder / RECORD_NAME
    if not pt.exists() and not meta.exists():
        return []
    if not pt.is_file() or not meta.is_file():
        return [f"{HEATMAP_FOLDER}: {WEIGHTS_NAME} and {RECORD_NAME} must ship together"]
    try:
        recorded = read_heatmap_record(pt).get("sha256")
    except InputError as exc:
        return [f"{HEATMAP_FOLDER}/{RECORD_NAME}: {str(exc).splitlines()[0]}"]
    return [] if recorded == sha256(pt) else [f"changed: {HEATMAP_FOLDER}/{WEIGHTS_NAME}"]


def weights_checksum(run_dir: str | Path) -> str:
    """sha256 of a run's first checkpoint: the name of its weights in every output."""
    from spinefx.runs.layout import RunPaths, trial_dirs

    return sha256(RunPaths(trial_dirs(Path(run_dir))[0]).checkpoint)


def provenance_columns(scan: str | Path, model: dict | None = None) -> dict[str, str]:
    """The columns every per-vertebra table row carries: which scan, which model (its weights'
    checksum) and which spinefx version made it, so a CSV taken out of its folder still says."""
    from spinefx import __version__

    columns = {"scan": str(scan)}
    if model:
        columns["model_run"] = Path(str(model.get("run", ""))).name
        columns["weights_sha256"] = str(model.get("weights_sha256", ""))
    columns["spinefx_version"] = str(
        model.get("spinefx_version", __version__) if model else __version__
    )
    return columns


def model_identity(run) -> dict:
    """What every output says about the model that answered (a :class:`TrainedRun`): its run,
    kind, weights checksum, whether it is the shipped default, its training note and the
    spinefx version."""
    from spinefx import __version__

    return {
        "run": str(run.run_dir),
        "kind": run.kind,
        "weights_sha256": weights_checksum(run.run_dir),
        "shipped_default": is_shipped(run.run_dir),
        "training_note": run.training_note,
        "spinefx_version": __version__,
    }

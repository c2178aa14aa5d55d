"""Folders are pipeline stages: a stage imports only from stages before it (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import spinefx

#: the stage order; core modules (files at the package root) may be imported by anyone
STAGES = [
    "io",
    "preprocessing",
    "morphometry",
    "synthesis",
    "datasets",
    "models",
    "runs",
    "training",
    "inference",
    "evaluation",
    "interpretation",
    "release",
    "reporting",
    "app",
    "cli",
]
#: stages above every pipeline stage that may import one another (thin shells)
SHELLS = {"app", "cli"}
PACKAGE = Path(spinefx.__file__).parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m.split(".")[1] for m in out if m.startswith("spinefx.") and m.count(".") >= 1}


def test_the_stage_list_covers_every_stage_folder():
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert folders - {"configs"} == set(STAGES)


def test_no_stage_imports_a_later_stage():
    rank = {name: i for i, name in enumerate(STAGES)}
    upward = []
    for stage in STAGES:
        for path in (PACKAGE / stage).rglob("*.py"):
            for target in _imports(path):
                if target not in rank or target == stage:
                    continue
                if rank[target] > rank[stage] and not (stage in SHELLS and target in SHELLS):
                    upward.append(f"{path.relative_to(PACKAGE)} imports spinefx.{target}")
    assert not upward, "\n".join(upward)


def test_models_import_only_torch_and_core():
    allowed = {"config", "conventions", "models", "errors"}
    for path in (PACKAGE / "models").rglob("*.py"):
        assert _imports(path) <= allowed, path

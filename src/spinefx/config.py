"""Typed configuration: dataclasses loaded from YAML, validated on load, saved next to results.

Each pipeline stage defines its own config dataclass (e.g. the patch classifier's in
``spinefx.models``); this module holds the generic load/save machinery shared by all of them.
Unknown keys are rejected (a typo in a YAML file must not be silently ignored).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from spinefx.atomic import write_text_atomic
from spinefx.errors import InputError

T = TypeVar("T")


def from_dict(cls: type[T], values: dict[str, Any] | None, *, where: str = "config") -> T:
    """Build dataclass ``cls`` from a plain dict, recursing into nested dataclasses.

    Raises:
        InputError: naming the unknown or ill-typed key and the accepted keys.
    """
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - names)
    if unknown:
        raise InputError(
            f"{where}: unknown key(s) {unknown} for {cls.__name__}",
            fix=f"use only {sorted(names)}",
        )
    kwargs = {}
    for name, value in values.items():
        kwargs[name] = _coerce(hints[name], value, where=f"{where}.{name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{where}: {exc}", fix="check the values in the config file") from exc


def _coerce(hint: Any, value: Any, *, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_dict(hint, value, where=where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        if len(args) == 1:
            return _coerce(args[0], value, where=where)
        return value
    if origin is tuple and isinstance(value, list | tuple):
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise InputError(
            f"{where}: expected {hint.__name__}, got {type(value).__name__} {value!r}",
            fix="correct the value in the config file",
        )
    return value


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain YAML-safe data (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return plain(obj)


def load_config(path: str | Path, cls: type[T]) -> T:
    """Load and validate a YAML config file into dataclass ``cls``."""
    path = Path(path)
    if not path.is_file():
        raise InputError("config file not found", path=path, fix="check the path")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML ({exc})", path=path, fix="fix the YAML syntax") from exc
    if not isinstance(values, dict):
        raise InputError("config must be a YAML mapping", path=path, fix="use key: value pairs")
    return from_dict(cls, values, where=path.name)


def save_config(obj: Any, path: str | Path) -> None:
    """Save a config dataclass as YAML (atomically)."""
    write_text_atomic(path, yaml.safe_dump(to_dict(obj), sort_keys=False))

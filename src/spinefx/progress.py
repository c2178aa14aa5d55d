"""Progress bars for long outer loops, switchable off (``SPINEFX_PROGRESS=0`` or the CLI flag)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_ENABLED: bool | None = None


def set_progress(enabled: bool) -> None:
    """Turn progress bars on or off for this process."""
    global _ENABLED
    _ENABLED = bool(enabled)


def progress_enabled() -> bool:
    if _ENABLED is not None:
        return _ENABLED
    return os.environ.get("SPINEFX_PROGRESS", "1") not in ("0", "false", "no")


def progress(iterable: Iterable[T], *, desc: str, total: int | None = None) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar when progress is enabled."""
    if not progress_enabled():
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)

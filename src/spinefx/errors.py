"""Exceptions raised for bad user input: each names what, where (file/case) and the fix."""

from __future__ import annotations

from os import PathLike


class SpinefxError(Exception):
    """Base class of all spinefx errors."""


class InputError(SpinefxError, ValueError):
    """Input that spinefx cannot use: a bad file, value or annotation.

    The message always says what was expected, what was found, where, and how to fix it.

    Args:
        problem: what is wrong, e.g. ``"image is 2-D (512, 512)"``.
        path: the file or case the problem is in, if any.
        fix: what the user should do about it.
    """

    def __init__(self, problem: str, *, path: str | PathLike | None = None, fix: str | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        self.fix = fix
        parts = [f"{self.path}: {problem}" if self.path else problem]
        if fix:
            parts.append(f"Fix: {fix}")
        super().__init__(". ".join(p.rstrip(".") for p in parts) + ".")

    def with_path(self, path: str | PathLike) -> InputError:
        """A copy of this error that names ``path`` (when it named none)."""
        if self.path is not None:
            return self
        return InputError(self.problem, path=path, fix=self.fix)


class GeometryError(SpinefxError, ValueError):
    """A geometric operation cannot be done (singular affine, point outside a scan...)."""

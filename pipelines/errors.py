"""Errors a user can meet: each carries one sentence that says what happened and what to do."""

from __future__ import annotations

import errno
import re
from collections.abc import Callable


class UserError(Exception):
    """A mistake or condition the user can fix; the CLI prints its message and exits non-zero.

    The message must be one sentence and must never contain a secret.
    """

    exit_code = 2


class LandedButFailed(UserError):
    """The load landed (raw data and saved state moved on), but a later step (transform,
    publish) failed: readers still see the last good build. Exit code 3, as the README says."""

    exit_code = 3


class Interrupted(UserError):
    """Ctrl-C (SIGINT) or SIGTERM: nothing half-done is kept as done (dlt commits state with
    the load only), and exported ids and extracted packages are picked up by the next run."""

    exit_code = 130

    def __init__(self, message: str = "interrupted; the next run resumes.") -> None:
        super().__init__(message)


def in_chain(
    error: BaseException, predicate: Callable[[BaseException], bool]
) -> BaseException | None:
    """The first exception in `error`'s chain (causes, contexts, and the `exception` attribute
    dlt's step errors carry) that satisfies `predicate`, or None."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if predicate(current):
            return current
        stack += [current.__cause__, current.__context__, getattr(current, "exception", None)]
    return None


def is_interrupt(error: BaseException) -> bool:
    """Ctrl-C as Python raises it, or as dlt reports it from its own signal handler."""
    return isinstance(error, KeyboardInterrupt) or type(error).__name__ == "SignalReceivedException"


# EACCES/EPERM: a folder of another user or without write permission; EROFS: a read-only mount.
_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
# DuckDB reports the same conditions as text inside its own IOException.
_DUCKDB_NOT_WRITABLE = re.compile(
    r'Cannot open file "(?P<path>[^"]+)": (Read-only file system|Permission denied)'
)


def not_writable_path(error: BaseException) -> str | None:
    """The path that could not be written when `error` (or its chain) is a permission or
    read-only file system failure, else None."""
    found = in_chain(
        error,
        lambda e: (
            (isinstance(e, OSError) and e.errno in _NOT_WRITABLE)
            or _DUCKDB_NOT_WRITABLE.search(str(e)) is not None
        ),
    )
    if found is None:
        return None
    if isinstance(found, OSError) and found.errno in _NOT_WRITABLE:
        return str(found.filename or "a file")
    match = _DUCKDB_NOT_WRITABLE.search(str(found))
    return match.group("path") if match else "a file"


def not_writable(path: str, then: str = "nothing was loaded") -> str:
    """The one sentence for a folder the run cannot write to."""
    return (
        f"cannot write to {path}: the folder is read-only or not yours ({then}); make it "
        "writable or choose another folder (--warehouse, --publish or $MPAC_WAREHOUSE)."
    )

"""Writes that readers never see half done: one writer at a time, and a shadow copy swapped in."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from filelock import FileLock, Timeout

from pipelines.errors import UserError, in_chain

# errnos of a full disk (ENOSPC), a quota (EDQUOT) and a file-size limit (EFBIG): one sentence.
DISK_FULL_ERRNOS = {28, 27, 122}
_DISK_FULL_WORDS = ("no space left", "file too large", "disk quota")


def lock_path(warehouse: Path) -> Path:
    """The writer lock beside the warehouse (an OS lock: it dies with the process holding it)."""
    return warehouse.parent / f".{warehouse.name}.lock"


def _note_path(warehouse: Path) -> Path:
    # A separate file: the lock file itself is truncated by every process that tries to lock it.
    return warehouse.parent / f".{warehouse.name}.lock.json"


def _describe_holder(warehouse: Path) -> str:
    try:
        note = json.loads(_note_path(warehouse).read_text())
        return f"pid {note['pid']}, started {note['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown"


@contextmanager
def writer_lock(warehouse: Path, wait: float = 0) -> Iterator[None]:
    """Hold the one-writer lock of `warehouse` for the block; reentrant within one process.

    Every step that writes (extract, normalize, load, transform, publish) runs under it: dlt's
    working folder and the shadow copy live outside DuckDB's own lock. A run killed with -9
    loses its OS lock with its process, so the next run takes over without any clean-up; the
    note (pid, start time) is only there to say who holds it.

    Raises:
        UserError: Another run holds the lock and did not finish within `wait` seconds.
    """
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    # One instance per path in this process, so a nested writer_lock (the CLI's around the
    # runner's) counts up instead of waiting for itself.
    lock = FileLock(str(lock_path(warehouse)), is_singleton=True, fallback_to_soft=False)
    first = not lock.is_locked
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if wait <= 0:
                raise
            print(
                f"another run is in progress on {warehouse} ({_describe_holder(warehouse)}): "
                f"waiting up to {wait:g} s for it to finish",
                file=sys.stderr,
                flush=True,
            )
            lock.acquire(timeout=wait)
    except Timeout:
        waited = f" after waiting {wait:g} s" if wait > 0 else ""
        raise UserError(
            f"another run is in progress on {warehouse} ({_describe_holder(warehouse)}){waited}: "
            "try again when it is done, or pass --wait SECONDS."
        ) from None
    try:
        if first:
            started = datetime.now().astimezone().isoformat(timespec="seconds")
            _note_path(warehouse).write_text(json.dumps({"pid": os.getpid(), "started": started}))
        yield
    finally:
        lock.release()


def is_disk_full(error: BaseException) -> bool:
    """A full disk, a quota or a file-size limit, wherever in dlt's or DuckDB's wrapping."""

    def full(current: BaseException) -> bool:
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return True
        text = str(current).lower()
        return any(word in text for word in _DISK_FULL_WORDS) and "lock" not in text

    return in_chain(error, full) is not None


def shadow_path(warehouse: Path) -> Path:
    """Where a run builds the next warehouse: same file name (so dbt's folders beside it keep
    their names), in a hidden folder beside the warehouse, on the same file system (so the
    swap is one atomic rename)."""
    return warehouse.parent / f".{warehouse.stem}.next" / warehouse.name


def open_shadow(warehouse: Path) -> Path:
    """A fresh copy of the warehouse to write into (empty when there is none yet)."""
    shadow = shadow_path(warehouse)
    shadow.parent.mkdir(parents=True, exist_ok=True)
    discard_shadow(warehouse)
    if warehouse.exists():
        partial = shadow.with_name(f"{shadow.name}.partial")
        shutil.copyfile(warehouse, partial)
        os.replace(partial, shadow)
    return shadow


def discard_shadow(warehouse: Path) -> None:
    shadow = shadow_path(warehouse)
    for leftover in (shadow, shadow.with_name(f"{shadow.name}.wal")):
        leftover.unlink(missing_ok=True)


def swap_in(warehouse: Path) -> float:
    """Replace the warehouse by its shadow in one rename: a reader sees all of it or none of it.

    DuckDB writes back its WAL when the last connection closes; a WAL still there means a
    connection is open, and renaming then could lose writes, so it is checkpointed first.
    Returns the seconds it took.
    """
    import duckdb

    started = time.perf_counter()
    shadow = shadow_path(warehouse)
    if shadow.with_name(f"{shadow.name}.wal").exists():
        with duckdb.connect(str(shadow)) as connection:
            connection.execute("checkpoint")
    _fsync(shadow)
    os.replace(shadow, warehouse)
    _fsync(warehouse.parent)
    return time.perf_counter() - started


def _fsync(path: Path) -> None:
    # The rename must not reach the disk before the data it points at (power loss).
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# ---- load packages: every load starts from the package as normalize wrote it -------------------
#
# dlt truncates the staging tables once per package and marks each copy job done only after it
# committed, so a load killed between the two re-runs a committed copy on resume and the merge
# inserts its rows twice (issue 10, finding 0). A run therefore keeps the package as normalize
# wrote it and, when a load did not land, restores it whole and loads it into a fresh shadow copy
# of the warehouse: every attempt is a first attempt, however often it is resumed.


def _load_folder(working_dir: Path, stage: str) -> Path:
    return working_dir / "load" / stage


def _snapshots(working_dir: Path) -> Path:
    return working_dir / "package_snapshots"


def snapshot_packages(working_dir: Path) -> list[str]:
    """Copy each normalized package that has no snapshot yet; returns the snapshotted load ids.

    A package without a snapshot was never handed to the loader (the loader runs only after
    this), so it is still as normalize wrote it.
    """
    normalized = _load_folder(working_dir, "normalized")
    snapshots = _snapshots(working_dir)
    snapshots.mkdir(parents=True, exist_ok=True)
    taken = []
    for package in sorted(normalized.iterdir()) if normalized.exists() else []:
        if not package.is_dir():  # only package folders; dlt may keep other files there
            continue
        target = snapshots / package.name
        if not target.exists():
            partial = snapshots / f".{package.name}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(package, partial)
            os.replace(partial, target)
        taken.append(package.name)
    return taken


def has_jobs(working_dir: Path) -> bool:
    """True when a normalized package holds a job (a table's rows, a schema or state update);
    a run that read nothing new leaves one with none."""
    normalized = _load_folder(working_dir, "normalized")
    folders = [package / "new_jobs" for package in normalized.glob("*/")]
    return any(job.is_file() for folder in folders if folder.is_dir() for job in folder.iterdir())


def restore_unlanded(working_dir: Path, landed: set[str]) -> list[str]:
    """Put back, as normalize wrote them, the packages whose load never reached the warehouse.

    `landed` are the load ids the warehouse records; their snapshots are dropped. Returns the
    load ids restored (to be loaded again, into a fresh shadow).
    """
    snapshots = _snapshots(working_dir)
    restored = []
    for snapshot in sorted(snapshots.iterdir()) if snapshots.exists() else []:
        if not snapshot.is_dir():
            continue
        if snapshot.name.startswith("."):
            shutil.rmtree(snapshot, ignore_errors=True)
            continue
        if snapshot.name in landed:
            shutil.rmtree(snapshot)
            continue
        for stage in ("normalized", "loaded"):
            shutil.rmtree(_load_folder(working_dir, stage) / snapshot.name, ignore_errors=True)
        normalized = _load_folder(working_dir, "normalized")
        normalized.mkdir(parents=True, exist_ok=True)
        partial = normalized.parent / f".{snapshot.name}.restoring"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(snapshot, partial)
        os.replace(partial, normalized / snapshot.name)
        restored.append(snapshot.name)
    return restored


def forget_snapshots(working_dir: Path, load_ids: list[str]) -> None:
    for load_id in load_ids:
        shutil.rmtree(_snapshots(working_dir) / load_id, ignore_errors=True)


def prune_loaded_packages(working_dir: Path, keep: list[str]) -> int:
    """Delete the packages of earlier loads (dlt keeps every one, ~0.3 MB a run); `keep` are
    this run's, for a look after it. Returns how many were deleted."""
    loaded = _load_folder(working_dir, "loaded")
    pruned = 0
    for package in sorted(loaded.iterdir()) if loaded.exists() else []:
        if package.is_dir() and package.name not in keep:
            shutil.rmtree(package, ignore_errors=True)
            pruned += 1
    return pruned

"""Helpers shared by the test packages (one copy, not one per file)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from pipelines.cli import app

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[1]


def reference_file(name: str) -> Path:
    """A file of the API reference (OpenAPI subsets), copied into tests/fixtures/reference/ so
    the conformance tests run in any clone; /work/shared/reference/ is where it came from."""
    return FIXTURES / "reference" / name


def simulator_env(sim: Any, version: str = "v2", **overrides: str) -> dict[str, str]:
    """The env vars that point a run at `sim`, polling exports fast, plus `overrides`
    (`lookback_days="3"` sets SOURCES__MARKETPLACE__LOOKBACK_DAYS)."""
    return {
        **sim.env(version, export_poll_seconds=0.01),
        **{f"SOURCES__MARKETPLACE__{key.upper()}": value for key, value in overrides.items()},
    }


def configure(monkeypatch: pytest.MonkeyPatch, sim: Any, version: str = "v2", **extra: str) -> None:
    """Point runs in this test at `sim`, the way a user would: environment variables."""
    for key, value in simulator_env(sim, version, **extra).items():
        monkeypatch.setenv(key, value)


@contextmanager
def reading(warehouse: Path) -> Iterator[Callable[[str], list[tuple[Any, ...]]]]:
    """A function that runs queries on one read-only connection, for a helper that asks many
    (opening a tiny warehouse's DuckDB file and the first query on it cost ~50 ms of CPU, a
    further query on it well under 1 ms). Same reads as `query`; the connection is closed on
    leaving the block, so nothing may write to the warehouse inside it."""
    from pipelines.destinations import open_reader, resolve

    destination = resolve()
    if destination.is_duckdb:
        with duckdb.connect(str(warehouse), read_only=True) as connection:
            yield lambda sql: connection.execute(sql).fetchall()
        return
    with open_reader(warehouse, destination) as connection:
        yield lambda sql: [tuple(row) for row in connection.execute(sql).fetchall()]


def query(warehouse: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of one query, read-only (never holds the write lock), on the destination the
    environment chooses (the `destination` fixture sets it), as the app reads it."""
    with reading(warehouse) as run:
        return run(sql)


def copy_warehouse(warehouse: Path, folder: Path) -> Path:
    """Copy the folder of `warehouse` (with dlt's state and dbt's target beside it) to `folder`;
    returns the copy's warehouse path. A copy goes on from where the original stood."""
    shutil.copytree(warehouse.parent, folder)
    return folder / warehouse.name


def cli(args: list[str], env: dict[str, str] | None = None) -> Any:
    """`mpac <args>` in process; the result has exit_code and output."""
    return CliRunner().invoke(app, args, env=env)


def harness(point: str, *mpac: str) -> list[str]:
    """The command of `mpac <mpac>` under tests/killpoints.py, which acts at `point`."""
    return [sys.executable, "-m", "tests.killpoints", point, "--", *mpac]


def run_at_killpoint(
    point: str, warehouse: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """`mpac run` on `warehouse` in a child process under the harness, waited for."""
    import os

    return subprocess.run(
        harness(point, "run", "--warehouse", str(warehouse), *args),
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


_HOLD_WRITE_LOCK = (
    "import sys, time, duckdb; con = duckdb.connect(sys.argv[1]); "
    "print('locked', flush=True); time.sleep(60)"
)


@contextmanager
def write_lock_held(warehouse: Path) -> Iterator[None]:
    """Another process holds DuckDB's write lock on `warehouse`, as a running load does."""
    writer = subprocess.Popen(
        [sys.executable, "-c", _HOLD_WRITE_LOCK, str(warehouse)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "locked"
        yield
    finally:
        writer.kill()
        writer.wait()


@contextmanager
def read_only_folder(path: Path) -> Iterator[None]:
    """`path` (a folder) read-only for this process: chmod for a normal user; for root, whom
    permissions do not stop, a read-only bind mount (skipped where mounting is not allowed)."""
    import os

    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    mounted = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("running as root and cannot bind-mount: no way to make a folder read-only")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def mpac_process(
    args: list[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.Popen[str]:
    """`mpac <args>` as a real process (signals, working folder), output piped as text."""
    import os

    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", *args],
        env={**os.environ, **env},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextmanager
def dlt_settings_from(folder: Path) -> Iterator[None]:
    """dlt finds `.dlt/` in the folder its run context was first made in, once per process, so a
    test that moves to another folder must move dlt too (and move it back for the next test)."""
    from dlt.common.configuration.container import Container
    from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

    context = Container()[PluggableRunContext]
    before = context.context.run_dir
    context.reload(str(folder))
    try:
        yield
    finally:
        context.reload(before)

"""Helpers shared by the test packages (one copy, not one per file)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from pipelines.cli import app

FIXTURES = Path(__file__).parent / "fixtures"


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


def query(warehouse: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of one query, read-only (never holds the write lock)."""
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def cli(args: list[str], env: dict[str, str] | None = None) -> Any:
    """`mpac <args>` in process; the result has exit_code and output."""
    return CliRunner().invoke(app, args, env=env)


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

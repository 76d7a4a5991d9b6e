"""One source of truth for where the warehouse and the pipeline state live."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.errors import UserError, not_writable, not_writable_path

if TYPE_CHECKING:
    import duckdb

DEFAULT_WAREHOUSE = Path("data") / "marketplace.duckdb"
WAREHOUSE_ENV = "MPAC_WAREHOUSE"
PUBLISH_ENV = "MPAC_PUBLISH"
# BI tools and their drivers often still embed DuckDB 1.x, which cannot open a file DuckDB 2
# wrote (STACK-NOTES); a copy written in this storage format opens in DuckDB 1.2 and later.
READER_STORAGE_VERSION = "v1.2.0"
RAW_DATASET = "raw_marketplace"
PIPELINE_NAME = "marketplace"


def warehouse_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The DuckDB file shared by dlt and dbt: --warehouse, else $MPAC_WAREHOUSE, else data/."""
    chosen = explicit or os.environ.get(WAREHOUSE_ENV) or DEFAULT_WAREHOUSE
    return Path(chosen).expanduser().resolve()


def pipelines_dir(warehouse: Path) -> Path:
    """dlt's working folder sits beside the warehouse, so state travels with the data."""
    return warehouse.parent / f".{warehouse.stem}.dlt"


def unavailable(warehouse: Path, then: str | None = None) -> UserError:
    """The one sentence for a warehouse that cannot be opened: not there yet, or held by a writer
    (DuckDB lets one process write and blocks every other one meanwhile)."""
    sentence = (
        f"there is no warehouse at {warehouse} yet, or another process is writing to it or "
        "has it open: "
        "run `mpac run` first, or try again when that process is done"
    )
    return UserError(f"{sentence} ({then})." if then else f"{sentence}.")


def open_read_only(warehouse: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the warehouse, or the one sentence above (never a traceback)."""
    import duckdb

    if not warehouse.exists():
        raise unavailable(warehouse)
    try:
        return duckdb.connect(str(warehouse), read_only=True)
    except duckdb.IOException:
        raise unavailable(warehouse) from None


def publish_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """Where to publish the readers' copy: --publish, else $MPAC_PUBLISH, else nowhere."""
    chosen = explicit or os.environ.get(PUBLISH_ENV)
    return Path(chosen).expanduser().resolve() if chosen else None


def publish_reader_copy(warehouse: Path, target: Path) -> float:
    """Copy the warehouse for readers (BI tools, notebooks) and swap it in atomically.

    DuckDB lets one process write and blocks every reader meanwhile, and a reader holding the
    file makes the next load fail: readers get their own copy, replaced whole after each run, so
    they never block a load nor see half a run. Returns the seconds it took.
    """
    import time

    import duckdb

    if target == warehouse:
        raise UserError("--publish must name another file than the warehouse itself.")
    started = time.perf_counter()
    partial = target.with_name(f".{target.name}.partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
        with duckdb.connect() as connection:
            connection.execute(f"attach '{_quoted(warehouse)}' as warehouse (read_only)")
            connection.execute(
                f"attach '{_quoted(partial)}' as reader_copy "
                f"(storage_version '{READER_STORAGE_VERSION}')"
            )
            connection.execute("copy from database warehouse to reader_copy")
            connection.execute("detach reader_copy")
    except (duckdb.IOException, OSError) as error:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        path = not_writable_path(error)
        if path is not None:
            raise UserError(not_writable(path, then="nothing was published")) from None
        if isinstance(error, OSError):
            raise
        raise unavailable(warehouse, then="nothing was published") from None
    # A rename is atomic: a reader opens either the old copy or the new one, never a mix.
    os.replace(partial, target)
    return time.perf_counter() - started


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")

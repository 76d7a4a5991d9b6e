"""One source of truth for where the warehouse and the pipeline state live."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.errors import UserError, not_writable, not_writable_path

if TYPE_CHECKING:
    import duckdb

DEFAULT_WAREHOUSE = Path("data") / "marketplace.duckdb"
WAREHOUSE_ENV = "MPAC_WAREHOUSE"
PUBLISH_ENV = "MPAC_PUBLISH"
PUBLISH_RAW_ENV = "MPAC_PUBLISH_RAW"
# What BI users get: the marts. dlt's staging schema and dbt's staging and intermediate models
# are working parts whose shape changes between versions; raw data only when asked for.
PUBLISHED_SCHEMAS = ("marts",)
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


def publish_includes_raw(explicit: bool | None = None) -> bool:
    """--publish-raw, else $MPAC_PUBLISH_RAW (1, true or yes), else no raw tables."""
    if explicit is not None:
        return explicit
    return os.environ.get(PUBLISH_RAW_ENV, "").strip().lower() in ("1", "true", "yes")


def publish_reader_copy(warehouse: Path, target: Path, include_raw: bool = False) -> float:
    """Copy the marts (and the raw tables if `include_raw`) for readers (BI tools, notebooks)
    and swap the copy in atomically.

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
            schemas = (*PUBLISHED_SCHEMAS, RAW_DATASET) if include_raw else PUBLISHED_SCHEMAS
            _copy_schemas(connection, schemas)
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


def _copy_schemas(connection: Any, schemas: tuple[str, ...]) -> None:
    """Copy the tables, then the views, of `schemas` from `warehouse` into `reader_copy`."""
    listed = ", ".join(f"'{name}'" for name in schemas)
    tables = connection.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = 'warehouse'"
        f" and schema_name in ({listed}) order by all"
    ).fetchall()
    views = connection.execute(
        "select schema_name, sql from duckdb_views() where database_name = 'warehouse'"
        f" and schema_name in ({listed}) and not internal order by view_name"
    ).fetchall()
    for schema in {schema for schema, _ in [*tables, *views]}:
        connection.execute(f'create schema reader_copy."{schema}"')
    for schema, table in tables:
        connection.execute(
            f'create table reader_copy."{schema}"."{table}" as from warehouse."{schema}"."{table}"'
        )
    # A view's SQL names its tables without a catalog: run it inside the copy.
    connection.execute("use reader_copy")
    for _, sql in views:
        connection.execute(sql)
    connection.execute("use memory")


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")

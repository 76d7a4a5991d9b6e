"""One source of truth for where the warehouse and the pipeline state live."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.errors import UserError, not_writable, not_writable_path

if TYPE_CHECKING:
    import duckdb

    from pipelines.destinations import Destination

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
# dbt's schemas: what readers of the marts query.
DBT_SCHEMAS = ("staging", "intermediate", "marts")
PIPELINE_NAME = "marketplace"
# What each reader of the marts reads, completeness.py's as_of rule included: on Postgres, all
# that open_marts fetches for it (only the digest reads fct_transactions, 70% of a vendor's
# bytes). tests/pipeline/test_warehouse.py fails if a reader's SQL names one not listed for it.
_AS_OF = ("intermediate.int_as_of_date", "marts.fct_mrr")
_MONTHLY_MARTS = (
    "marts.fct_churn",
    "marts.fct_conversion",
    "marts.fct_renewal",
    "marts.fct_renewal_book",
    "marts.fct_retention_cohorts",
)
READER_RELATIONS: dict[str, tuple[str, ...]] = {
    "report": (*_AS_OF, *_MONTHLY_MARTS, "marts.fct_customer_kpis"),
    "dashboard": (*_AS_OF, *_MONTHLY_MARTS, "marts.dim_apps", "marts.rpt_metric_reconciliation"),
    "digest": (
        *_AS_OF,
        "intermediate.int_evaluations_resolved",
        "intermediate.int_renewal_opportunities_resolved",
        "marts.fct_churn_events",
        "marts.fct_feedback",
        "marts.fct_transactions",
    ),
}
# Rows a reader's SQL keeps of a relation, kept by the server already: the digest reads only the
# refunds of fct_transactions (`where is_refund` in digest._EVENTS), and fetching every line
# would hold a large vendor's transactions in memory (~1.7 GB at 1M licenses).
_FETCHED_ONLY = {("digest", "marts.fct_transactions"): "is_refund"}
# DuckDB's widest decimal; a wider or unconstrained Postgres numeric becomes a double.
_DUCKDB_MAX_PRECISION = 38


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


def open_marts(
    warehouse: Path,
    vendor: str | None = None,
    destination: Destination | None = None,
    reader: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """A read-only connection for the readers of the marts (report, dashboard, digest).

    With several vendors in the warehouse they see one: `vendor` (its vendor id, or its name in
    the settings) scopes every dbt model to that vendor's rows; unset, the only vendor there
    is, and with several a sentence that names them (exit 2). On Postgres (`destination`) the
    connection is an in-memory DuckDB holding the chosen vendor's rows of what `reader` reads
    (READER_RELATIONS; every reader's when None), so the readers keep one SQL dialect.
    """
    if destination is not None and not destination.is_duckdb:
        wanted = READER_RELATIONS[reader] if reader else sum(READER_RELATIONS.values(), ())
        return _fetched_from_postgres(destination, vendor, set(wanted), reader)
    connection = open_read_only(warehouse)
    found = vendors_in(connection)
    chosen = _vendor_to_read(vendor, found)
    if chosen is None or len(found) <= 1:
        return connection
    connection.close()
    return _scoped(warehouse, chosen)


def _vendor_to_read(vendor: str | None, found: list[str]) -> str | None:
    """The vendor id whose rows the readers see; None when no --vendor was given and the
    warehouse holds one vendor (or none); with several, --vendor is required."""
    if vendor is None and len(found) > 1:
        raise UserError(
            f"the warehouse holds {len(found)} vendors ({', '.join(found)}): "
            "pick one with --vendor."
        )
    return None if vendor is None else _vendor_in(vendor, found)


def vendors_in(connection: duckdb.DuckDBPyConnection) -> list[str]:
    """The vendor ids the marts describe (one row each in int_as_of_date); none before dbt ran
    or in a warehouse built before vendors were recorded."""
    has = connection.execute(
        "select count(*) from information_schema.columns where table_schema = 'intermediate' "
        "and table_name = 'int_as_of_date' and column_name = 'vendor_id'"
    ).fetchone()
    if not has or not has[0]:
        return []
    rows = connection.execute(
        "select distinct vendor_id from intermediate.int_as_of_date order by 1"
    ).fetchall()
    return [str(row[0]) for row in rows if row[0] is not None]


def _vendor_in(vendor: str, found: list[str]) -> str:
    """A vendor id of the warehouse from an id or a vendor's name in the settings."""
    if vendor in found:
        return vendor
    from pipelines.config import vendor_id_of

    vendor_id = vendor_id_of(vendor)
    if vendor_id is None or vendor_id not in found:
        raise UserError(
            f"the warehouse holds no vendor {vendor!r}: it holds {', '.join(found) or 'none'}."
        )
    return vendor_id


def _scoped(warehouse: Path, vendor_id: str) -> duckdb.DuckDBPyConnection:
    """An in-memory connection whose dbt schemas hold views of one vendor's rows of the
    warehouse (attached read-only): every reader's query runs unchanged on them."""
    import duckdb

    connection = duckdb.connect()
    try:
        connection.execute(f"attach '{_quoted(warehouse)}' as vendor_scope (read_only)")
        listed = connection.execute(
            "select table_schema, table_name, bool_or(column_name = 'vendor_id') "
            "from information_schema.columns where table_catalog = 'vendor_scope' "
            f"and table_schema in ({', '.join(repr(s) for s in DBT_SCHEMAS)}) group by all"
        ).fetchall()
        for schema in {row[0] for row in listed}:
            connection.execute(f'create schema "{schema}"')
        for schema, table, has_vendor in listed:
            where = f" where vendor_id = '{vendor_id}'" if has_vendor else ""
            connection.execute(
                f'create view "{schema}"."{table}" as '
                f'select * from vendor_scope."{schema}"."{table}"{where}'
            )
    except duckdb.IOException:
        connection.close()
        raise unavailable(warehouse) from None
    return connection


def _fetched_from_postgres(
    destination: Destination, vendor: str | None, wanted: set[str], reader: str | None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB whose schemas hold the `wanted` relations built on Postgres, with only
    the chosen vendor's rows (the server filters them), fetched as Arrow: every reader's query
    runs unchanged on it. A relation not built yet is left out, as the readers expect."""
    import adbc_driver_postgresql.dbapi as adbc
    import duckdb

    from pipelines.destinations import postgres_arrow_connect

    with postgres_arrow_connect(destination) as source, source.cursor() as cursor:
        columns = _postgres_columns(cursor, wanted)
        found: list[str] = []
        if "vendor_id" in {c[0] for c in columns.get("intermediate.int_as_of_date", [])}:
            cursor.execute("select distinct vendor_id from intermediate.int_as_of_date order by 1")
            found = [str(row[0]) for row in cursor.fetchall() if row[0] is not None]
        chosen = _vendor_to_read(vendor, found)
        connection = duckdb.connect()
        for schema in sorted({relation.split(".")[0] for relation in wanted}):
            connection.execute(f'create schema "{schema}"')
        for relation, described in columns.items():
            only = _FETCHED_ONLY.get((reader, relation)) if reader else None
            try:
                _fetch_relation(cursor, connection, relation, described, chosen, only)
            except adbc.Error as error:
                # The connection held, so the role or the relation is at fault (its rights
                # revoked, a table dropped meanwhile): say which, in one sentence.
                connection.close()
                kind = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
                raise UserError(
                    f"Postgres would not return {relation} ({kind}): check that the configured "
                    "role may read the marts and that `mpac transform` finished, then try again."
                ) from None
    return connection


_Column = tuple[str, str, int | None, int | None]  # name, data type, precision, scale


def _postgres_columns(cursor: Any, wanted: set[str]) -> dict[str, list[_Column]]:
    """The columns of each `wanted` relation that Postgres holds, in their order."""
    listed = ", ".join(f"'{relation}'" for relation in sorted(wanted))
    cursor.execute(
        "select table_schema || '.' || table_name, column_name, data_type, "
        "numeric_precision, numeric_scale from information_schema.columns "
        f"where table_schema || '.' || table_name in ({listed}) "
        "order by table_schema, table_name, ordinal_position"
    )
    columns: dict[str, list[_Column]] = {}
    for relation, *column in cursor.fetchall():
        columns.setdefault(relation, []).append(tuple(column))
    return columns


def _fetch_relation(
    cursor: Any,
    connection: duckdb.DuckDBPyConnection,
    relation: str,
    described: list[_Column],
    vendor_id: str | None,
    only: str | None = None,
) -> None:
    """Fetch `relation` (the rows of `vendor_id` when it has that column, and those `only`
    keeps) as one Arrow table and show it under its own name with its column types: a view
    over the Arrow table, not a copy (a copy into a DuckDB table peaked 140 MB higher for the
    digest of a medium vendor)."""
    schema, table = relation.split(".")
    picked, typed = [], []
    for name, data_type, precision, scale in described:
        # ADBC hands a numeric over as opaque text (Arrow has no unbounded decimal): fetch it as
        # text, cast it back to the same decimal.
        if data_type == "numeric":
            picked.append(f'"{name}"::text as "{name}"')
            exact = precision is not None and precision <= _DUCKDB_MAX_PRECISION
            kind = f"decimal({precision}, {scale})" if exact else "double"
            typed.append(f'cast("{name}" as {kind}) as "{name}"')
        else:
            picked.append(f'"{name}"')
            typed.append(f'"{name}"')
    scoped = vendor_id is not None and any(c[0] == "vendor_id" for c in described)
    conditions = [*(["vendor_id = $1"] if scoped else []), *([f"({only})"] if only else [])]
    cursor.execute(
        f'select {", ".join(picked)} from "{schema}"."{table}"'
        + (f" where {' and '.join(conditions)}" if conditions else ""),
        (vendor_id,) if scoped else None,
    )
    fetched = f"_fetched_{schema}_{table}"
    connection.register(fetched, cursor.fetch_arrow_table())
    connection.execute(
        f'create view "{schema}"."{table}" as select {", ".join(typed)} from {fetched}'
    )


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

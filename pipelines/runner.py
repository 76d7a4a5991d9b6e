"""`mpac run`: preflight, the dlt pipeline run into the warehouse, then the dbt transform."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pipelines.config import SourceConfig, legacy_owner_id, read_vendors
from pipelines.destinations import (
    Destination,
    QmarkConnection,
    advisory_lock,
    dlt_destination,
    explain_postgres_error,
    postgres_connect,
    resolve,
)
from pipelines.errors import (
    Interrupted,
    LandedButFailed,
    UserError,
    in_chain,
    is_interrupt,
    not_writable,
    not_writable_path,
)
from pipelines.marketplace import settings
from pipelines.marketplace.client import MarketplaceClient, NotFoundError, RetryPolicy
from pipelines.marketplace.exports import LEDGER_FILE, ExportLedger
from pipelines.marketplace.helpers import past_date
from pipelines.warehouse import RAW_DATASET, pipelines_dir, unavailable
from pipelines.writing import (
    forget_snapshots,
    has_jobs,
    is_disk_full,
    open_shadow,
    prune_loaded_packages,
    restore_unlanded,
    shadow_path,
    snapshot_packages,
    swap_in,
    writer_lock,
)

log = logging.getLogger("pipelines.marketplace")
T = TypeVar("T")


def parse_resources(resources: str | Sequence[str] | None) -> list[str] | None:
    if not resources:
        return None
    names = resources.split(",") if isinstance(resources, str) else list(resources)
    chosen = [name.strip() for name in names if name.strip()]
    unknown = [name for name in chosen if name not in settings.RESOURCES]
    if unknown:
        raise UserError(
            f"unknown resource {', '.join(unknown)}: choose from {', '.join(settings.RESOURCES)}."
        )
    return chosen or None


def preflight(client: MarketplaceClient) -> None:
    """One cheap authenticated call, so that wrong credentials or a wrong vendor end the run
    before dlt creates a pipeline folder or opens the warehouse."""
    try:
        client.request_json("GET", client.reporting_root, what="preflight")
    except NotFoundError:
        raise UserError(
            f"vendor {client.vendor_id} was not found or is not yours: check vendor_id "
            "and that the account owns it."
        ) from None


@dataclass
class Loaded:
    """What the extract and load of one vendor did."""

    rows: dict[str, int]
    load_ids: list[str]
    backfill: bool


@dataclass
class RunResult:
    """What one `mpac run` did, for the CLI's summary (`rows` summed over the vendors)."""

    rows: dict[str, int]
    load_ids: list[str]
    backfill: bool
    transform: str
    published: tuple[Path, float] | None = None
    vendors: dict[str, Loaded] | None = None


def _pipeline(warehouse: Path, name: str, destination: Destination) -> Any:
    """dlt loads into the shadow copy of a DuckDB warehouse, never into the file readers open;
    on Postgres into the raw schema (readers' marts change only when dbt swaps them in)."""
    import dlt

    from pipelines.progress import dlt_collector

    if destination.is_duckdb:
        shadow_path(warehouse).parent.mkdir(parents=True, exist_ok=True)
    return dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=str(pipelines_dir(warehouse)),
        destination=dlt_destination(destination, shadow_path(warehouse)),
        dataset_name=RAW_DATASET,
        # Bars for extract, normalize and load in a terminal; silent in a log file.
        progress=dlt_collector(),
    )


def landed_loads(warehouse: Path, destination: Destination | None = None) -> set[str]:
    """The load ids the warehouse records as complete: what landed, whatever dlt's folder says."""
    import duckdb

    if destination is not None and not destination.is_duckdb:
        import psycopg2

        with QmarkConnection(postgres_connect(destination, read_only=True)) as connection:
            try:
                found = connection.execute(
                    f"select load_id from {RAW_DATASET}._dlt_loads where status = 0"
                ).fetchall()
            except psycopg2.errors.UndefinedTable:
                return set()
        return {str(row[0]) for row in found}

    if not warehouse.exists():
        return set()
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        try:
            rows = connection.execute(
                f"select load_id from {RAW_DATASET}._dlt_loads where status = 0"
            ).fetchall()
        except duckdb.CatalogException:
            return set()
    return {str(row[0]) for row in rows}


def disk_full(warehouse: Path, then: str) -> UserError:
    return UserError(
        f"the disk is full (or a file-size limit was hit) writing near {warehouse.parent}: "
        f"free some space and run again ({then})."
    )


def loader_file_format() -> str:
    """`[load] loader_file_format` from .dlt/config.toml, parquet by default.

    dlt 1.31 does not apply that key by itself (measured: DuckDB then gets insert statements,
    42 s and 3.9 GB to load 52k transaction lines, against 1.1 s and 330 MB with parquet), so
    the runner passes it to `pipeline.run`.
    """
    import dlt

    return str(dlt.config.get("load.loader_file_format") or "parquet")


def explain(
    error: BaseException, warehouse: Path, destination: Destination | None = None
) -> BaseException:
    """One sentence for what went wrong in the extract or load, when it is something the user
    meets (dlt wraps what a resource raises: PipelineStepFailed > ResourceExtractionError >
    ...); else the error itself, a bug to show as is."""
    user_error = in_chain(error, lambda e: isinstance(e, UserError))
    if user_error is not None:
        return user_error
    if in_chain(error, is_interrupt) is not None:
        return Interrupted()
    path = not_writable_path(error)
    if path is not None:
        return UserError(not_writable(path))
    if destination is not None and not destination.is_duckdb:
        # dlt wraps psycopg2's error (a server gone mid-load, a revoked password) in its own.
        cause = in_chain(error, lambda e: explain_postgres_error(e, destination) is not None)
        if cause is not None:
            return explain_postgres_error(cause, destination) or error
    if "Could not set lock" in str(error):
        # Another process (a BI tool, a second run) holds DuckDB's write lock.
        return unavailable(warehouse, then="what this run extracted is kept and loaded first")
    return error


class _OneLine(logging.Filter):
    """dlt logs what it could not save (its trace file on a full disk, say) as a warning with a
    traceback; the run then ends in one sentence of ours, so keep dlt's warning to its line."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


def _quiet_dlt_tracebacks() -> None:
    dlt_logger = logging.getLogger("dlt")
    if not any(isinstance(f, _OneLine) for f in dlt_logger.filters):
        dlt_logger.addFilter(_OneLine())


def adopt_legacy_rows(pipeline: Any, owner: str | None) -> list[str]:
    """Give the rows of a warehouse loaded before vendors were recorded their vendor, once.

    A raw table without the column is from before; it gets the column, filled with `owner`,
    before any merge runs (every merge and delete is scoped by vendor, and a row without one
    would never be retired nor replaced). Runs in the shadow copy, so it lands with the load
    or not at all. Returns the tables adopted.
    """
    with pipeline.sql_client() as client:
        if not client.has_dataset():
            return []
        found = client.execute_sql(
            "select table_name, column_name from information_schema.columns "
            f"where table_schema = '{RAW_DATASET}'"
        )
        columns: dict[str, set[str]] = {}
        for table, column in found:
            columns.setdefault(str(table), set()).add(str(column))
        legacy = sorted(
            table
            for table, names in columns.items()
            if not table.startswith("_dlt") and settings.VENDOR_COLUMN not in names
        )
        if not legacy:
            return []
        if owner is None:
            raise UserError(
                "the warehouse holds rows loaded before vendors were recorded and several "
                "vendors are configured: set [sources.marketplace] vendor_id to the vendor "
                "they came from for one run."
            )
        for table in legacy:
            name = client.make_qualified_table_name(table)
            client.execute_sql(f"alter table {name} add column {settings.VENDOR_COLUMN} varchar")
            client.execute_sql(f"update {name} set {settings.VENDOR_COLUMN} = '{owner}'")
    log.info("rows loaded before vendors were recorded are vendor %s's", owner)
    return legacy


def relax_not_null(pipeline: Any) -> list[str]:
    """Drop NOT NULL from the warehouse's columns that dlt's schema now holds nullable, in the
    raw tables and their staging copies, before a load.

    Bulk backfills by earlier versions declared the scd2 keys not null, `transactions.license_key`
    among them, which a line without a license id leaves empty; dlt never relaxes a column it
    created, so the first such line would fail every later load. Runs in the shadow copy
    (DuckDB), so it lands with the load. Returns the columns relaxed, as dataset.table.column.
    """
    schema = pipeline.default_schema
    nullable = {
        (table, name)
        for table, body in schema.tables.items()
        for name, column in (body.get("columns") or {}).items()
        if column.get("nullable", True)
    }
    relaxed: list[str] = []
    with pipeline.sql_client() as client:
        for staging in (False, True):
            with client.with_staging_dataset() if staging else contextlib.nullcontext():
                if not client.has_dataset():
                    continue
                strict = client.execute_sql(
                    "select table_name, column_name from information_schema.columns "
                    f"where table_schema = '{client.dataset_name}' and is_nullable = 'NO'"
                )
                for table, name in strict:
                    if (table, name) not in nullable:
                        continue
                    client.execute_sql(
                        f"alter table {client.make_qualified_table_name(table)} "
                        f"alter column {client.escape_column_name(name)} drop not null"
                    )
                    relaxed.append(f"{client.dataset_name}.{table}.{name}")
    if relaxed:
        log.info("columns no longer required (as dlt's schema holds them): %s", relaxed)
    return relaxed


def run(
    warehouse: Path,
    *,
    backfill: bool = False,
    since: str | None = None,
    resources: str | Sequence[str] | None = None,
    transform: bool = True,
    config: SourceConfig | None = None,
    vendors: Sequence[SourceConfig] | None = None,
    retry: RetryPolicy | None = None,
    wait: float = 0,
    publish: Path | None = None,
    destination: Destination | None = None,
) -> RunResult:
    """Preflight, then extract and load with dlt for each vendor in turn, then (optionally) one
    dbt transform and the readers' copy, all under the warehouse's writer lock (`wait`:
    seconds to wait for it). `config` is one vendor; `vendors` several; neither: every vendor
    configured.

    `destination`: default the configured one (destinations.resolve); on Postgres `warehouse`
    only names where the run's local files go (Destination.local_path).
    """
    destination = destination or resolve()
    if publish is not None and not destination.is_duckdb:
        raise publish_is_duckdb_only()
    warehouse = destination.local_path(warehouse)
    if since is not None:
        past_date(since, "--since")
        backfill = True
    chosen = parse_resources(resources)
    vendors = [config] if config is not None else list(vendors or read_vendors())
    # A warehouse's old rows belong to the top-level vendor, even when another is run alone.
    owner = legacy_owner_id() or (vendors[0].vendor_id if len(vendors) == 1 else None)
    clients = [vendor.client(retry) for vendor in vendors]
    loaded: dict[str, Loaded] = {}
    try:
        for client in clients:
            # Before the lock: a wrong token or vendor must leave no folder behind.
            preflight(client)
        if not destination.is_duckdb:
            # An unreachable server or a wrong password: said before any folder is made.
            postgres_connect(destination).close()
        _quiet_dlt_tracebacks()
        with writer_lock(warehouse, wait), advisory_lock(destination, wait):
            for vendor, client in zip(vendors, clients, strict=True):
                try:
                    loaded[vendor.name] = _load_vendor(
                        warehouse, destination, vendor, client, backfill, since, chosen, owner
                    )
                except UserError as error:
                    if not loaded or isinstance(error, LandedButFailed):
                        raise
                    # The vendors before it landed: the raw data moved on (exit 3, not 2).
                    raise LandedButFailed(
                        f"vendor {', '.join(loaded)} landed, but vendor {vendor.name}: {error}"
                    ) from None
            return _after_loads(warehouse, destination, loaded, transform, publish)
    finally:
        for client in clients:
            client.close()


def _after_loads(
    warehouse: Path,
    destination: Destination,
    loaded: dict[str, Loaded],
    transform: bool,
    publish: Path | None,
) -> RunResult:
    """One dbt build and one readers' copy for every vendor loaded (still under the lock)."""
    summary = (
        after_landing(lambda: run_transform(warehouse, destination), warehouse)
        if transform
        else "skipped (--no-transform)"
    )
    published = None
    if publish is not None:
        from pipelines.warehouse import publish_includes_raw, publish_reader_copy

        seconds = after_landing(
            lambda: publish_reader_copy(warehouse, publish, include_raw=publish_includes_raw()),
            warehouse,
        )
        published = (publish, seconds)
    rows: dict[str, int] = {}
    for one in loaded.values():
        for table, count in one.rows.items():
            rows[table] = rows.get(table, 0) + count
    return RunResult(
        rows=rows,
        load_ids=[load_id for one in loaded.values() for load_id in one.load_ids],
        backfill=any(one.backfill for one in loaded.values()),
        transform=summary,
        published=published,
        vendors=loaded,
    )


def _load_vendor(
    warehouse: Path,
    destination: Destination,
    config: SourceConfig,
    client: MarketplaceClient,
    backfill: bool,
    since: str | None,
    chosen: list[str] | None,
    owner: str | None,
) -> Loaded:
    """One vendor's extract and load, landed whole (DuckDB: through a shadow copy), under the
    lock."""
    from pipelines.marketplace import marketplace

    pipeline = _pipeline(warehouse, config.pipeline_name, destination)
    working = Path(pipeline.working_dir)
    try:
        restored = restore_unlanded(working, landed_loads(warehouse, destination))
        if restored:
            log.info("loading again, from its start, what a stopped run left behind")
        # The shadow copy (a whole warehouse) waits until there is something to load, when
        # the working folder holds the state the warehouse last landed: a run that finds
        # nothing new then copies nothing (a large vendor's warehouse is gigabytes).
        deferred = (
            destination.is_duckdb
            and not restored
            and not pipeline.has_pending_data
            and state_in_step(pipeline, warehouse)
        )
        if not deferred:
            _prepare_destination(pipeline, warehouse, destination, owner)
        source = marketplace(
            **config.source_arguments(), backfill=backfill, since=since, client=client
        )
        if chosen:
            source = source.with_resources(*chosen, settings.LOAD_DAYS_RESOURCE)
        saved = pipeline.state.get("sources", {}).get("marketplace", {}).get("resources", {})
        # A resource with no cursor yet backfills by itself: say so in the summary.
        backfill = backfill or any(
            not (saved.get(name) or {}).get("cursor")
            for name in source.selected_resources
            if name in settings.RESOURCES
        )
        # extract, normalize and load as run() would, but with the packages kept as
        # normalize wrote them before the loader touches them (writing.py says why).
        pipeline.extract(source, loader_file_format=loader_file_format())
        normalized = pipeline.normalize()
        if not has_jobs(working):
            # Nothing re-read changed, no cursor moved, the day is loaded: the warehouse
            # would end as it is. An empty package is not landed (nor the shadow made).
            pipeline.abort_packages()
            log.info("nothing new to load: the warehouse is left as it was")
            return Loaded(rows={}, load_ids=[], backfill=backfill)
        if deferred:
            _prepare_destination(pipeline, warehouse, destination, owner)
        relax_not_null(pipeline)
        load_ids = snapshot_packages(working)
        info = pipeline.load()
        if destination.is_duckdb:
            # The one moment the load lands: readers see all of it or none of it.
            swap_in(warehouse)
    except UserError:
        raise
    except (Exception, KeyboardInterrupt) as error:
        if is_disk_full(error):
            raise disk_full(warehouse, "nothing landed") from None
        explained = explain(error, warehouse, destination)
        if explained is error:
            raise
        raise explained from None
    forget_snapshots(working, load_ids)
    prune_loaded_packages(working, keep=load_ids)
    # The exports are loaded: a later run must start fresh ones, not download these again.
    ExportLedger(working / LEDGER_FILE).clear()
    rows = {
        table: count
        for table, count in normalized.row_counts.items()
        # dlt's own tables and the API's day are bookkeeping, not data rows.
        if not table.startswith("_dlt") and table != settings.LOAD_DAYS_RESOURCE
    }
    return Loaded(rows=rows, load_ids=list(info.loads_ids), backfill=backfill)


def _prepare_destination(
    pipeline: Any, warehouse: Path, destination: Destination, owner: str | None
) -> None:
    """Before a load: the shadow copy to load into (DuckDB), the state restored from the
    warehouse when the working folder lost it, and rows from before vendors adopted."""
    if destination.is_duckdb:
        open_shadow(warehouse)
    if not pipeline.has_pending_data:
        # What run() would do first: restore the state from the warehouse when the
        # working folder was lost. Not with packages pending: dlt would wipe them
        # when the warehouse has no dataset yet (a first backfill killed mid-load).
        pipeline.sync_destination()
    adopt_legacy_rows(pipeline, owner)


def state_in_step(pipeline: Any, warehouse: Path) -> bool:
    """True when the working folder's state is the one the warehouse last landed (same
    version), so dlt's sync with the warehouse would change nothing; False when either has
    none, or they differ (a lost or copied working folder: sync first, as dlt does)."""
    import duckdb

    local = pipeline.state.get("_state_version") if pipeline.state else None
    if local is None or not warehouse.exists():
        return False
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        try:
            found = connection.execute(
                f"select max(version) from {RAW_DATASET}._dlt_pipeline_state "
                "where pipeline_name = ?",
                [pipeline.pipeline_name],
            ).fetchone()
        except duckdb.CatalogException:
            return False
    return found is not None and found[0] == local


def after_landing(step: Callable[[], T], warehouse: Path) -> T:
    """Run a step that follows a landed load (transform, publish): a failure there exits 3,
    never 2, since the raw data and the cursors have moved on (README, exit codes)."""
    try:
        return step()
    except (Interrupted, LandedButFailed):
        raise
    except UserError as error:
        raise LandedButFailed(f"the load landed, but {error}") from None
    except OSError as error:
        path = not_writable_path(error)
        if path is None:
            raise
        raise LandedButFailed(not_writable(path, then="the load landed")) from None


def publish_is_duckdb_only() -> UserError:
    return UserError(
        "--publish (and MPAC_PUBLISH) copies a DuckDB file for BI tools: on Postgres they read "
        "the marts schema directly, so leave it unset."
    )


def run_transform(warehouse: Path, destination: Destination | None = None) -> str:
    """The dbt step after a load: `dbt build`, summarised.

    Raises:
        LandedButFailed: dbt failed; the load landed and readers still see the last good marts.
    """
    from pipelines.transform import run_transform as dbt_build

    try:
        return str(dbt_build(warehouse, destination=destination))
    except UserError as error:
        reason = str(error).rstrip(".")
        raise LandedButFailed(
            f"{reason}; the load landed, and readers still see the marts of the last good build."
        ) from None

"""`mpac run`: preflight, the dlt pipeline run into the warehouse, then the dbt transform."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pipelines.config import SourceConfig, read_config
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
from pipelines.warehouse import PIPELINE_NAME, RAW_DATASET, pipelines_dir, unavailable

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
class RunResult:
    """What one `mpac run` did, for the CLI's summary."""

    rows: dict[str, int]
    load_ids: list[str]
    backfill: bool
    transform: str


def _pipeline(warehouse: Path) -> Any:
    import dlt

    from pipelines.progress import dlt_collector

    warehouse.parent.mkdir(parents=True, exist_ok=True)
    return dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        pipelines_dir=str(pipelines_dir(warehouse)),
        destination=dlt.destinations.duckdb(str(warehouse)),
        dataset_name=RAW_DATASET,
        # Bars for extract, normalize and load in a terminal; silent in a log file.
        progress=dlt_collector(),
    )


def loader_file_format() -> str:
    """`[load] loader_file_format` from .dlt/config.toml, parquet by default.

    dlt 1.31 does not apply that key by itself (measured: DuckDB then gets insert statements,
    42 s and 3.9 GB to load 52k transaction lines, against 1.1 s and 330 MB with parquet), so
    the runner passes it to `pipeline.run`.
    """
    import dlt

    return str(dlt.config.get("load.loader_file_format") or "parquet")


def explain(error: BaseException, warehouse: Path) -> BaseException:
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
    if "Could not set lock" in str(error):
        # Another process (a BI tool, a second run) holds DuckDB's write lock.
        return unavailable(warehouse, then="what this run extracted is kept and loaded first")
    return error


def run(
    warehouse: Path,
    *,
    backfill: bool = False,
    since: str | None = None,
    resources: str | Sequence[str] | None = None,
    transform: bool = True,
    config: SourceConfig | None = None,
    retry: RetryPolicy | None = None,
) -> RunResult:
    """Preflight, then extract and load with dlt, then (optionally) the dbt transform."""
    from pipelines.marketplace import marketplace

    if since is not None:
        past_date(since, "--since")
        backfill = True
    chosen = parse_resources(resources)
    config = config or read_config()
    client = config.client(retry)
    try:
        preflight(client)
        pipeline = _pipeline(warehouse)
        try:
            if pipeline.has_pending_data:
                # A run that died after extracting left a package: load it first, or run()
                # would load only that package and skip this run's data (STACK-NOTES).
                log.info("loading the package a previous run left behind")
                pipeline.run()
            source = marketplace(
                **config.source_arguments(), backfill=backfill, since=since, client=client
            )
            if chosen:
                source = source.with_resources(*chosen, settings.LOAD_DAYS_RESOURCE)
            saved = pipeline.state.get("sources", {}).get("marketplace", {}).get("resources", {})
            if not saved and warehouse.exists():
                # No local folder (a fresh CI runner given the stored warehouse): dlt restores
                # the cursors from the warehouse during run(); read them now for the summary.
                pipeline.sync_destination()
                saved = (
                    pipeline.state.get("sources", {}).get("marketplace", {}).get("resources", {})
                )
            # A resource with no cursor yet backfills by itself: say so in the summary.
            backfill = backfill or any(
                not (saved.get(name) or {}).get("cursor")
                for name in source.selected_resources
                if name in settings.RESOURCES
            )
            info = pipeline.run(source, loader_file_format=loader_file_format())
        except UserError:
            raise
        except (Exception, KeyboardInterrupt) as error:
            explained = explain(error, warehouse)
            if explained is error:
                raise
            raise explained from None
    finally:
        client.close()
    # The exports are loaded: a later run must start fresh ones, not download these again.
    ExportLedger(Path(pipeline.working_dir) / LEDGER_FILE).clear()
    trace = pipeline.last_trace
    rows: dict[str, int] = {}
    if trace is not None and trace.last_normalize_info is not None:
        rows = {
            table: count
            for table, count in trace.last_normalize_info.row_counts.items()
            if not table.startswith("_dlt")
        }
    return RunResult(
        rows=rows,
        load_ids=list(info.loads_ids),
        backfill=backfill,
        transform=after_landing(lambda: run_transform(warehouse), warehouse)
        if transform
        else "skipped (--no-transform)",
    )


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


def run_transform(warehouse: Path) -> str:
    """The dbt step after a load: `dbt build`, summarised; a failing test raises a UserError."""
    from pipelines.transform import run_transform as dbt_build

    return str(dbt_build(warehouse))

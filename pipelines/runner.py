"""`mpac run`: preflight, the dlt pipeline run into the warehouse, then the dbt transform."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.config import SourceConfig, read_config
from pipelines.errors import UserError
from pipelines.marketplace import settings
from pipelines.marketplace.client import MarketplaceClient, NotFoundError, RetryPolicy
from pipelines.marketplace.exports import LEDGER_FILE, ExportLedger
from pipelines.marketplace.helpers import parse_date
from pipelines.warehouse import PIPELINE_NAME, RAW_DATASET, pipelines_dir, unavailable

log = logging.getLogger("pipelines.marketplace")


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

    warehouse.parent.mkdir(parents=True, exist_ok=True)
    return dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        pipelines_dir=str(pipelines_dir(warehouse)),
        destination=dlt.destinations.duckdb(str(warehouse)),
        dataset_name=RAW_DATASET,
    )


def loader_file_format() -> str:
    """`[load] loader_file_format` from .dlt/config.toml, parquet by default.

    dlt 1.31 does not apply that key by itself (measured: DuckDB then gets insert statements,
    42 s and 3.9 GB to load 52k transaction lines, against 1.1 s and 330 MB with parquet), so
    the runner passes it to `pipeline.run`.
    """
    import dlt

    return str(dlt.config.get("load.loader_file_format") or "parquet")


def _user_error_in(error: BaseException) -> UserError | None:
    """dlt wraps what a resource raises (PipelineStepFailed > ResourceExtractionError > ...)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, UserError):
            return current
        stack += [current.__cause__, current.__context__, getattr(current, "exception", None)]
    return None


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
    from dlt.pipeline.exceptions import PipelineStepFailed

    from pipelines.marketplace import marketplace

    if since is not None:
        parse_date(since, "--since")
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
                source = source.with_resources(*chosen)
            saved = pipeline.state.get("sources", {}).get("marketplace", {}).get("resources", {})
            # A resource with no cursor yet backfills by itself: say so in the summary.
            backfill = backfill or any(
                not (saved.get(name) or {}).get("cursor") for name in source.selected_resources
            )
            info = pipeline.run(source, loader_file_format=loader_file_format())
        except PipelineStepFailed as error:
            user_error = _user_error_in(error)
            if user_error is not None:
                raise UserError(str(user_error)) from None
            if "Could not set lock" in str(error):
                # Another process (a BI tool, a second run) holds DuckDB's write lock.
                raise unavailable(
                    warehouse, then="what this run extracted is kept and loaded first"
                ) from None
            raise
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
        transform=run_transform(warehouse) if transform else "skipped (--no-transform)",
    )


def run_transform(warehouse: Path) -> str:
    """The dbt step after a load: `dbt build`, summarised; a failing test raises a UserError."""
    from pipelines.transform import run_transform as dbt_build

    return str(dbt_build(warehouse))

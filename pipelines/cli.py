"""The `mpac` command line: simulate the API, run the pipeline, inspect the warehouse."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from pipelines.errors import UserError

app = typer.Typer(
    name="mpac",
    help="Atlassian Marketplace reporting data into a DuckDB warehouse, with dbt marts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# soft_wrap: an error is one sentence, and a log or a CI page must show it on one line.
err_console = Console(stderr=True, soft_wrap=True)


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a UserError into one red line and a non-zero exit instead of a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as error:
            err_console.print(f"[bold red]error:[/] {error}", highlight=False)
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: state is saved only with a successful load.")
            sys.exit(130)

    return wrapper


@app.command()
@friendly_errors
def simulate(
    port: int = typer.Option(8787, help="Port on 127.0.0.1 to serve the simulated API on."),
    seed: int = typer.Option(42, help="Seed of the synthetic vendor (same seed, same data)."),
    size: str = typer.Option("small", help="Vendor size: tiny, small or large."),
    faults: str = typer.Option(
        "none", help="Fault profile: none, flaky (429s, 5xx, drops) or a JSON object of rates."
    ),
) -> None:
    """Serve a local Marketplace reporting API for a deterministic synthetic vendor."""
    from pipelines.simulator.serve import serve

    try:
        serve(port=port, seed=seed, size=size, faults=faults)
    except KeyboardInterrupt:
        # uvicorn re-raises Ctrl-C after its graceful shutdown: for a server that is a clean stop.
        err_console.print("simulator stopped.")


WarehouseOption = Annotated[
    str | None,
    typer.Option("--warehouse", help="DuckDB file (default: $MPAC_WAREHOUSE or data/)."),
]
WaitOption = Annotated[
    float,
    typer.Option(
        "--wait",
        min=0,
        help="When another run holds the warehouse, wait up to this many seconds (default: "
        "stop at once with exit 2).",
    ),
]
PublishOption = Annotated[
    str | None,
    typer.Option(
        "--publish",
        help="After a successful run, copy the warehouse here for BI tools (readable by "
        "DuckDB 1.2+); default $MPAC_PUBLISH, else no copy.",
    ),
]


def _publish(warehouse: Path, publish: str | None) -> None:
    """Publish the readers' copy when asked to (--publish or $MPAC_PUBLISH)."""
    from pipelines.warehouse import publish_path, publish_reader_copy

    target = publish_path(publish)
    if target is None:
        return
    _said_published(target, publish_reader_copy(warehouse, target))


def _said_published(target: Path, seconds: float) -> None:
    Console(stderr=True, soft_wrap=True).print(
        f"published a copy for readers at {target} ({seconds:.1f} s)", highlight=False
    )


def _show_progress() -> None:
    """Readable progress on stderr: exports, pages and rows (httpx's per-request lines are
    left at WARNING; they carry URLs only, never the credentials)."""
    import logging

    from rich.logging import RichHandler

    logger = logging.getLogger("pipelines.marketplace")
    if not logger.handlers:
        handler = RichHandler(console=err_console, show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


@app.command()
@friendly_errors
def run(
    backfill: bool = typer.Option(
        False, "--backfill", help="Re-read everything with async exports (first run does this)."
    ),
    since: str = typer.Option(
        None, "--since", help="First day of the backfill (YYYY-MM-DD); implies --backfill."
    ),
    resources: str = typer.Option(
        None,
        "--resources",
        help="Comma-separated subset: licenses,transactions,feedback,marketing_attribution,"
        "metric_aggregates,metric_events.",
    ),
    warehouse: WarehouseOption = None,
    no_transform: bool = typer.Option(
        False, "--no-transform", help="Load the raw tables only; skip the dbt step."
    ),
    publish: PublishOption = None,
    wait: WaitOption = 0,
) -> None:
    """Extract from the Marketplace API and load into the warehouse, then transform."""
    from rich.table import Table

    from pipelines import runner
    from pipelines.warehouse import publish_path, warehouse_path

    _show_progress()
    path = warehouse_path(warehouse)
    result = runner.run(
        path,
        backfill=backfill,
        since=since,
        resources=resources,
        transform=not no_transform,
        wait=wait,
        publish=publish_path(publish),
    )
    table = Table(
        title=f"Loaded into {path.name} ({'backfill' if result.backfill else 'incremental'})"
    )
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in sorted(result.rows.items()):
        table.add_row(name, f"{count:,}")
    console = Console()
    console.print(table)
    console.print(f"transform: {result.transform}")
    if result.published is not None:
        _said_published(*result.published)


@app.command()
@friendly_errors
def status(
    warehouse: WarehouseOption = None,
) -> None:
    """Last loads, rows per table, saved cursors and exports still pending."""
    from rich.table import Table

    from pipelines.status import read_status
    from pipelines.warehouse import warehouse_path

    found = read_status(warehouse_path(warehouse))
    console = Console()
    loads = Table(title="Last loads")
    for column in ("load id", "status", "loaded at"):
        loads.add_column(column)
    for load in found.loads:
        ok = "ok" if load["status"] == 0 else str(load["status"])
        loads.add_row(str(load["load_id"]), ok, str(load["inserted_at"])[:19])
    console.print(loads)
    tables = Table(title=f"Tables in {found.warehouse.name}")
    tables.add_column("table")
    tables.add_column("rows", justify="right")
    tables.add_column("current versions", justify="right")
    for row in found.tables:
        current = "" if row["current"] is None else f"{row['current']:,}"
        tables.add_row(row["table"], f"{row['rows']:,}", current)
    console.print(tables)
    cursors = Table(title="Cursors (next run re-reads from here minus lookback_days)")
    cursors.add_column("resource")
    cursors.add_column("cursor")
    for name, cursor in sorted(found.cursors.items()):
        cursors.add_row(name, str(cursor or "-"))
    console.print(cursors)
    if found.pending_exports:
        pending = Table(title="Exports a killed run left (the next run resumes them)")
        for column in ("export", "id", "status"):
            pending.add_column(column)
        for entry in found.pending_exports:
            pending.add_row(str(entry["what"]), str(entry["id"]), str(entry["status"]))
        console.print(pending)
    else:
        console.print("no pending exports")


@app.command()
@friendly_errors
def transform(
    warehouse: WarehouseOption = None,
    select: str = typer.Option(
        None, "--select", help="dbt selection, e.g. marts or +fct_churn (default: everything)."
    ),
    as_of: str = typer.Option(
        None, "--as-of", help="as_of_date (YYYY-MM-DD); default the latest lastUpdated loaded."
    ),
    dbt_vars: str = typer.Option(
        None, "--vars", help="More dbt vars as JSON, e.g. '{\"grace_days\": 14}'."
    ),
    publish: PublishOption = None,
    wait: WaitOption = 0,
) -> None:
    """Build the dbt marts from the loaded raw tables and run every dbt test (dbt build)."""
    import json
    from datetime import date

    from pipelines.transform import run_transform
    from pipelines.warehouse import warehouse_path

    chosen: dict[str, object] = {}
    if dbt_vars:
        try:
            parsed = json.loads(dbt_vars)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise UserError("--vars must be a JSON object, such as '{\"grace_days\": 14}'.")
        chosen.update(parsed)
    if as_of:
        try:
            chosen["as_of_date"] = date.fromisoformat(as_of).isoformat()
        except ValueError:
            raise UserError(f"--as-of must be a date (YYYY-MM-DD), not {as_of!r}.") from None
    from pipelines.writing import writer_lock

    path = warehouse_path(warehouse)
    with writer_lock(path, wait):
        run_transform(path, select=select, vars=chosen or None)
        _publish(path, publish)


@app.command()
@friendly_errors
def report(
    warehouse: WarehouseOption = None,
    months: int = typer.Option(3, "--months", min=1, help="How many recent months to show."),
) -> None:
    """The last months of churn, renewal, conversion and MRR per app, from the marts."""
    from pipelines.report import print_report
    from pipelines.warehouse import warehouse_path

    print_report(warehouse_path(warehouse), months)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

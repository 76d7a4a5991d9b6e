"""The `mpac` command line: simulate the API, run the pipeline, inspect the warehouse."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from pipelines.errors import Interrupted, UserError, in_chain, not_writable, not_writable_path

if TYPE_CHECKING:
    from pipelines.destinations import Destination

app = typer.Typer(
    name="mpac",
    help="Atlassian Marketplace reporting data into a DuckDB warehouse, with dbt marts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# soft_wrap: an error is one sentence, and a log or a CI page must show it on one line.
err_console = Console(stderr=True, soft_wrap=True)


@app.callback()
def options(
    log_format: str = typer.Option(
        "auto",
        "--log-format",
        envvar="MPAC_LOG_FORMAT",
        help="Log records on stderr: auto (console in a terminal, else text), console, text "
        "(one line per record, ISO UTC timestamps) or json (one object per line).",
    ),
) -> None:
    """Atlassian Marketplace reporting data into a DuckDB warehouse, with dbt marts."""
    from pipelines.logs import configure_logging

    try:
        configure_logging(log_format)
    except UserError as error:
        _fail(error)


def _fail(error: UserError) -> NoReturn:
    """The one place an error is printed, then the exit code it carries: a red line in a
    terminal (escaped, since Rich would take `[sources.marketplace]` for markup and print nothing
    of it); in a log file a record like every other line."""
    from pipelines import logs

    if logs.CURRENT_FORMAT in (None, "console"):
        err_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
    elif not getattr(error, "logged", False):
        logs.get_logger("cli").error(str(error))
    sys.exit(error.exit_code)


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a UserError into one red line and a non-zero exit instead of a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            _fail(Interrupted())
        except UserError as error:
            _fail(error)
        except OSError as error:
            # A read-only or foreign folder met outside the steps that explain it themselves.
            path = not_writable_path(error)
            if path is None:
                raise
            _fail(UserError(not_writable(path, then="nothing was changed")))
        except Exception as error:
            # A .dlt/*.toml that does not parse, met wherever dlt first reads a setting.
            from pipelines.config import toml_error

            bad = in_chain(error, lambda e: type(e).__name__ == "TomlProviderReadException")
            if bad is None:
                raise
            _fail(toml_error(bad))

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
    more_vendor: list[str] = typer.Option(  # noqa: B008 (typer reads its options this way)
        [],
        "--more-vendor",
        help="SEED:SIZE of one more vendor served by the same host (repeat for several).",
    ),
) -> None:
    """Serve a local Marketplace reporting API for a deterministic synthetic vendor (or several)."""
    from pipelines.simulator.serve import serve

    try:
        serve(port=port, seed=seed, size=size, faults=faults, more_vendors=more_vendor)
    except KeyboardInterrupt:
        # uvicorn re-raises Ctrl-C after its graceful shutdown: for a server that is a clean stop.
        err_console.print("simulator stopped.")


WarehouseOption = Annotated[
    str | None,
    typer.Option(
        "--warehouse",
        help="DuckDB file (default: $MPAC_WAREHOUSE or data/); on Postgres, the local files "
        "(dlt's state, the dashboard) go beside it.",
    ),
]
VendorOption = Annotated[
    str | None,
    typer.Option(
        "--vendor",
        help="One configured vendor, by name or vendor id (default: every vendor configured).",
    ),
]
ReadVendorOption = Annotated[
    str | None,
    typer.Option(
        "--vendor",
        help="The vendor to show, by vendor id or name (default: the only vendor in the "
        "warehouse; with several, this is required).",
    ),
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
DestinationOption = Annotated[
    str | None,
    typer.Option(
        "--destination",
        help="duckdb (default) or postgres; default dlt's destination_type setting "
        "(\\[pipelines.marketplace] in .dlt/config.toml, or $DESTINATION_TYPE). Postgres "
        "credentials: \\[destination.postgres] in .dlt/secrets.toml or "
        "$DESTINATION__POSTGRES__CREDENTIALS.",
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
    """Publish the readers' copy when asked to (--publish or $MPAC_PUBLISH); the marts, and
    the raw tables only with $MPAC_PUBLISH_RAW."""
    from pipelines.runner import after_landing
    from pipelines.warehouse import publish_includes_raw, publish_path, publish_reader_copy

    target = publish_path(publish)
    if target is None:
        return
    seconds = after_landing(
        lambda: publish_reader_copy(warehouse, target, include_raw=publish_includes_raw()),
        warehouse,
    )
    _said_published(target, seconds)


def _said_published(target: Path, seconds: float) -> None:
    from pipelines.logs import get_logger

    get_logger("cli").info(f"published a copy for readers at {target}", seconds=round(seconds, 1))


NotifyOption = Annotated[
    str | None,
    typer.Option(
        "--notify",
        help="Slack-compatible incoming webhook URL (default $MPAC_NOTIFY_URL, else "
        "[notify] webhook_url in .dlt/secrets.toml).",
    ),
]


def _notify_failure(url: str | None, warehouse: Path, error: BaseException) -> None:
    """Tell the webhook that a run failed; a webhook that fails too is a warning, not a
    second error hiding the first."""
    from pipelines.logs import get_logger
    from pipelines.notify import post

    if not url:
        return
    reason = str(error) if isinstance(error, UserError) else type(error).__name__
    try:
        post(url, f"mpac run failed on {warehouse.name}: {reason}")
    except UserError as failed:
        get_logger("cli").warning(f"the failure notice was not sent: {failed}")


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
    notify: NotifyOption = None,
    wait: WaitOption = 0,
    vendor: VendorOption = None,
    destination: DestinationOption = None,
) -> None:
    """Extract from the Marketplace API and load into the warehouse, then transform.

    With several vendors configured, each is loaded in turn, then one dbt build."""
    from rich.table import Table

    from pipelines import runner
    from pipelines.config import read_vendors
    from pipelines.destinations import resolve
    from pipelines.logs import logged_run
    from pipelines.notify import notify_url
    from pipelines.warehouse import publish_path, warehouse_path

    path = warehouse_path(warehouse)
    url = notify_url(notify)
    try:
        chosen = resolve(destination)
        vendors = read_vendors(vendor)
        with logged_run(
            "mpac run",
            vendor=",".join(config.vendor_id for config in vendors),
            api_version=",".join(sorted({config.api_version for config in vendors})),
            warehouse=chosen.describe(path),
        ) as record:
            result = runner.run(
                path,
                backfill=backfill,
                since=since,
                resources=resources,
                transform=not no_transform,
                vendors=vendors,
                wait=wait,
                publish=publish_path(publish),
                destination=chosen,
            )
            record.rows = sum(result.rows.values())
            record.extra["mode"] = "backfill" if result.backfill else "incremental"
            # Rows per table on the end line: a log file needs no separate summary.
            record.extra.update(result.rows)
            if result.published is not None:
                _said_published(*result.published)
    except (Exception, KeyboardInterrupt) as error:
        _notify_failure(url, path, error)
        raise
    console = Console()
    if not console.is_terminal:
        return
    where = path.name if chosen.is_duckdb else chosen.describe(path)
    table = Table(title=f"Loaded into {where} ({'backfill' if result.backfill else 'incremental'})")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in sorted(result.rows.items()):
        table.add_row(name, f"{count:,}")
    console.print(table)
    console.print(f"transform: {result.transform}")


@app.command()
@friendly_errors
def status(
    warehouse: WarehouseOption = None,
    destination: DestinationOption = None,
) -> None:
    """Last loads, rows per table, saved cursors and exports still pending."""
    from rich.table import Table

    from pipelines.destinations import resolve
    from pipelines.status import read_status
    from pipelines.warehouse import warehouse_path

    chosen = resolve(destination)
    found = read_status(warehouse_path(warehouse), chosen)
    console = Console()
    loads = Table(title="Last loads")
    for column in ("load id", "status", "loaded at"):
        loads.add_column(column)
    for load in found.loads:
        ok = "ok" if load["status"] == 0 else str(load["status"])
        loads.add_row(str(load["load_id"]), ok, str(load["inserted_at"])[:19])
    console.print(loads)
    where = found.warehouse.name if chosen.is_duckdb else chosen.describe(found.warehouse)
    tables = Table(title=f"Tables in {where}")
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
    from pipelines.warehouse import pipelines_dir

    # dlt's own CLI looks in ~/.dlt unless told where this warehouse keeps its state.
    folder = pipelines_dir(found.warehouse)
    console.print(f"dlt: dlt pipeline --pipelines-dir {folder} marketplace info", highlight=False)


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
    destination: DestinationOption = None,
) -> None:
    """Build the dbt marts from the loaded raw tables and run every dbt test (dbt build)."""
    import json
    from datetime import date

    from pipelines.destinations import resolve
    from pipelines.transform import run_transform
    from pipelines.warehouse import publish_path, warehouse_path

    target = resolve(destination)
    if not target.is_duckdb and publish_path(publish) is not None:
        from pipelines.runner import publish_is_duckdb_only

        raise publish_is_duckdb_only()
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

    path = target.local_path(warehouse_path(warehouse))
    with writer_lock(path, wait):
        run_transform(path, select=select, vars=chosen or None, destination=target)
        _publish(path, publish)


def _duckdb_only(command: str) -> None:
    """Docs read a DuckDB file (dbt's catalogue of it): on Postgres, say so plainly."""
    from pipelines.destinations import destination_name

    if destination_name() != "duckdb":
        raise UserError(
            f"mpac {command} reads a DuckDB warehouse; on Postgres query the marts schema "
            "directly (or set DESTINATION_TYPE=duckdb for a DuckDB one)."
        )


def _read_from(warehouse: str | None, destination: str | None) -> tuple[Path, Destination]:
    """What a reader of the marts opens: the DuckDB file, or on Postgres the server (and the
    local name beside data/ that its dashboard and digest memory take)."""
    from pipelines.destinations import resolve
    from pipelines.warehouse import warehouse_path

    chosen = resolve(destination)
    return chosen.local_path(warehouse_path(warehouse)), chosen


@app.command()
@friendly_errors
def report(
    warehouse: WarehouseOption = None,
    months: int = typer.Option(3, "--months", min=1, help="How many recent months to show."),
    app_key: str = typer.Option(None, "--app", help="One app (its key) instead of all."),
    output_format: str = typer.Option(
        "table",
        "--format",
        help="table (marks incomplete months with *), csv or json (with is_complete).",
    ),
    vendor: ReadVendorOption = None,
    destination: DestinationOption = None,
) -> None:
    """The last months of churn, renewal, conversion and MRR per app, from the marts (DuckDB or
    Postgres)."""
    from pipelines.report import print_report

    path, chosen = _read_from(warehouse, destination)
    print_report(
        path,
        months,
        app=app_key,
        output_format=output_format,
        vendor=vendor,
        destination=chosen,
    )


@app.command()
@friendly_errors
def dashboard(
    warehouse: WarehouseOption = None,
    output: str = typer.Option(
        None, "--output", "-o", help="HTML file to write (default: beside the warehouse)."
    ),
    vendor: ReadVendorOption = None,
    destination: DestinationOption = None,
) -> None:
    """Write the dashboard: one offline HTML file of charts (opens with no server)."""
    from pipelines.dashboard import write_dashboard

    source, chosen = _read_from(warehouse, destination)
    path, panels = write_dashboard(source, Path(output) if output else None, vendor, chosen)
    skipped = [panel for panel in panels if panel.skipped]
    note = f" ({len(skipped)} charts wait for marts not built yet)" if skipped else ""
    print(f"dashboard: {path}{note}")


@app.command()
@friendly_errors
def digest(
    warehouse: WarehouseOption = None,
    notify: NotifyOption = None,
    peek: bool = typer.Option(
        False, "--peek", help="Show the digest without marking its events as reported."
    ),
    vendor: ReadVendorOption = None,
    destination: DestinationOption = None,
) -> None:
    """What is new since the last digest, as Markdown (and to a chat webhook)."""
    from pipelines.digest import run_digest
    from pipelines.notify import notify_url

    path, chosen = _read_from(warehouse, destination)
    text = run_digest(
        path, notify=notify_url(notify), remember_it=not peek, vendor=vendor, destination=chosen
    )
    sys.stdout.write(text)


@app.command()
@friendly_errors
def docs(warehouse: WarehouseOption = None) -> None:
    """Build dbt's documentation of the warehouse as one static HTML page."""
    _duckdb_only("docs")
    from pipelines.docs import build_docs
    from pipelines.warehouse import warehouse_path

    page, nodes = build_docs(warehouse_path(warehouse))
    print(f"docs: {page} ({nodes} tables and views documented)")


def main() -> None:
    app()


if __name__ == "__main__":
    main()

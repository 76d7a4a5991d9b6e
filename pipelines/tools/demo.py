"""`make demo`: simulator -> backfill -> 30 days later -> incremental run -> dbt -> metrics."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pipelines import runner
from pipelines.errors import UserError
from pipelines.report import print_report
from pipelines.status import read_status
from pipelines.warehouse import pipelines_dir

DEMO_WAREHOUSE = Path("data") / "demo.duckdb"


def _fresh(warehouse: Path) -> None:
    """The demo starts from nothing each time: a first run that backfills is half the story."""
    for path in (warehouse, warehouse.with_suffix(".duckdb.wal")):
        path.unlink(missing_ok=True)
    shutil.rmtree(pipelines_dir(warehouse), ignore_errors=True)


def _counts_table(warehouse: Path, title: str) -> Table:
    table = Table(title=title)
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("current versions", justify="right")
    for row in read_status(warehouse).tables:
        current = "" if row["current"] is None else f"{row['current']:,}"
        table.add_row(row["table"], f"{row['rows']:,}", current)
    return table


def main() -> None:
    from pipelines.simulator.harness import run_simulator

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="small", help="tiny, small or large")
    parser.add_argument("--warehouse", default=str(DEMO_WAREHOUSE))
    parser.add_argument("--no-transform", action="store_true", help="skip the dbt step")
    options = parser.parse_args()

    console = Console()
    logging.basicConfig(level=logging.WARNING)
    warehouse = Path(options.warehouse).resolve()
    _fresh(warehouse)
    with run_simulator(size=options.size) as sim:
        # The simulator's address and credentials reach dlt the way a user's would: env vars.
        os.environ.update(sim.env())
        console.print(
            f"[bold]simulator[/] {sim.base_url}: vendor {sim.vendor.vendor_id}, size "
            f"{options.size}, today {sim.today}"
        )
        started = time.perf_counter()
        first = runner.run(warehouse, transform=False)
        console.print(
            f"backfill: {sum(first.rows.values()):,} rows in {time.perf_counter() - started:.1f} s"
        )
        console.print(_counts_table(warehouse, "After the backfill"))

        today = sim.advance(30)
        console.print(f"simulator moved 30 days on, to {today}: new records, some rewritten")
        started = time.perf_counter()
        second = runner.run(warehouse, transform=False)
        console.print(
            f"incremental: {sum(second.rows.values()):,} rows in "
            f"{time.perf_counter() - started:.1f} s"
        )
        console.print(_counts_table(warehouse, "After the incremental run (history kept)"))

    if options.no_transform:
        return
    try:
        runner.run_transform(warehouse)  # prints its own summary
    except UserError as error:
        console.print(f"[bold red]transform failed:[/] {error}")
        sys.exit(error.exit_code)
    print_report(warehouse, months=3)


if __name__ == "__main__":
    main()

"""`mpac report`: the last months of churn, renewal, conversion and MRR per app, from the marts."""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pipelines.completeness import as_of_date, complete_expression, incomplete_months, relations
from pipelines.errors import UserError
from pipelines.warehouse import open_read_only

# Each block: title, the query over one mart, and the columns to show (name, format).
_BLOCKS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Churn (Cloud)",
        "select month, addon_key, billing_period, opportunities, cancellations, pending,"
        " churn_rate from marts.fct_churn",
        (
            ("billing_period", "{}"),
            ("opportunities", "{:,}"),
            ("cancellations", "{:,}"),
            ("pending", "{:,}"),
            ("churn_rate", "{:.1%}"),
        ),
    ),
    (
        "Renewal (Cloud)",
        "select month, addon_key, billing_period, opportunities, renewals, pending, renewal_rate"
        " from marts.fct_renewal",
        (
            ("billing_period", "{}"),
            ("opportunities", "{:,}"),
            ("renewals", "{:,}"),
            ("pending", "{:,}"),
            ("renewal_rate", "{:.1%}"),
        ),
    ),
    (
        "Conversion (Cloud, by month the evaluation started)",
        "select month, addon_key, conversion_type, evaluations, conversions, open_evaluations,"
        " conversion_rate, median_days_to_convert from marts.fct_conversion",
        (
            ("conversion_type", "{}"),
            ("evaluations", "{:,}"),
            ("conversions", "{:,}"),
            ("open_evaluations", "{:,}"),
            ("conversion_rate", "{:.1%}"),
            ("median_days_to_convert", "{:.1f}"),
        ),
    ),
    (
        "MRR (USD, all hostings)",
        "select month, addon_key, mrr, new_mrr, expansion_mrr, contraction_mrr, churned_mrr,"
        " reactivation_mrr, paying_licenses from marts.fct_mrr",
        (
            ("mrr", "{:,.2f}"),
            ("new_mrr", "{:,.2f}"),
            ("expansion_mrr", "{:,.2f}"),
            ("contraction_mrr", "{:,.2f}"),
            ("churned_mrr", "{:,.2f}"),
            ("reactivation_mrr", "{:,.2f}"),
            ("paying_licenses", "{:,}"),
        ),
    ),
)


REPORT_FORMATS = ("table", "csv", "json")
INCOMPLETE_MARK = "*"


@dataclass
class Block:
    """One metric of the report: its rows (newest month first) and which months can change."""

    title: str
    columns: tuple[tuple[str, str], ...]
    rows: list[dict[str, Any]]
    incomplete: set[str] = field(default_factory=set)

    @property
    def key(self) -> str:
        return self.title.split(" ", 1)[0].lower()


def _cell(value: Any, template: str) -> str:
    return "" if value is None else template.format(value)


def metric_blocks(
    warehouse: Path, months: int = 3, app: str | None = None
) -> tuple[list[Block], date | None]:
    """The last `months` months of each metric, newest first, for one app or all of them."""
    with open_read_only(warehouse) as connection:
        known = relations(connection)
        if "marts.fct_mrr" not in known:
            raise UserError("the marts are not built yet: run `mpac transform` (or `mpac run`).")
        if app is not None:
            apps = [
                row[0]
                for row in connection.execute(
                    "select distinct addon_key from marts.fct_mrr order by 1"
                ).fetchall()
            ]
            if app not in apps:
                raise UserError(f"no app {app!r} in the marts: choose from {', '.join(apps)}.")
        as_of = as_of_date(connection, known)
        blocks = []
        for title, query, columns in _BLOCKS:
            mart = query.rsplit(" from ", 1)[1].strip()
            if mart not in known:
                raise UserError(
                    "the marts are not built yet: run `mpac transform` (or `mpac run`)."
                )
            complete = complete_expression(known[mart])
            relation = connection.execute(
                f"with mart as (select * from ({_with_complete(query, complete)})),"
                " recent as (select distinct month from mart"
                " where ? is null or addon_key = ? order by month desc limit ?)"
                " select * from mart where month in (from recent)"
                " and (? is null or addon_key = ?) order by month desc, addon_key, 3",
                [app, app, months, app, app],
            )
            names = [column[0] for column in relation.description]
            rows = [dict(zip(names, row, strict=True)) for row in relation.fetchall()]
            blocks.append(Block(title, columns, rows, set(incomplete_months(rows, as_of))))
    return blocks, as_of


def _with_complete(query: str, complete: str) -> str:
    """The block's query with the mart's completeness as one more column."""
    head, tail = query.rsplit(" from ", 1)
    return f"{head}, {complete} as is_complete from {tail}"


def metric_tables(warehouse: Path, months: int = 3, app: str | None = None) -> list[Table]:
    """One rich table per metric; incomplete months carry a mark explained under the table."""
    blocks, as_of = metric_blocks(warehouse, months, app)
    tables = []
    for block in blocks:
        note = (
            f"{INCOMPLETE_MARK} incomplete: figures can still change (data as of {as_of})"
            if block.incomplete
            else None
            if block.rows
            else "no rows for this app"
        )
        table = Table(title=block.title, title_justify="left", caption=note, caption_justify="left")
        table.add_column("month")
        table.add_column("app")
        for name, _ in block.columns:
            table.add_column(name.replace("_", " "), justify="right")
        for record in block.rows:
            month = str(record["month"])
            mark = f" {INCOMPLETE_MARK}" if month in block.incomplete else ""
            table.add_row(
                month + mark,
                record["addon_key"],
                *(_cell(record[name], template) for name, template in block.columns),
            )
        tables.append(table)
    return tables


def _plain(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def report_json(warehouse: Path, months: int = 3, app: str | None = None) -> str:
    """{"as_of": ..., "metrics": {"churn": [{month, addon_key, ..., is_complete}, ...]}}."""
    blocks, as_of = metric_blocks(warehouse, months, app)
    return json.dumps(
        {
            "as_of": as_of.isoformat() if as_of else None,
            "metrics": {
                block.key: [
                    {
                        **{name: _plain(value) for name, value in row.items()},
                        "is_complete": str(row["month"]) not in block.incomplete,
                    }
                    for row in block.rows
                ]
                for block in blocks
            },
        },
        indent=2,
    )


def report_csv(warehouse: Path, months: int = 3, app: str | None = None) -> str:
    """One CSV, one row per metric row: metric, month, addon_key, is_complete, then every
    metric's columns (empty where a column is not that metric's)."""
    blocks, _ = metric_blocks(warehouse, months, app)
    names: list[str] = []
    for block in blocks:
        names += [name for name, _ in block.columns if name not in names]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["metric", "month", "addon_key", "is_complete", *names])
    for block in blocks:
        for row in block.rows:
            writer.writerow(
                [
                    block.key,
                    row["month"],
                    row["addon_key"],
                    str(str(row["month"]) not in block.incomplete).lower(),
                    *(("" if row.get(name) is None else _plain(row[name])) for name in names),
                ]
            )
    return out.getvalue()


def print_report(
    warehouse: Path,
    months: int = 3,
    console: Console | None = None,
    app: str | None = None,
    output_format: str = "table",
) -> None:
    if output_format not in REPORT_FORMATS:
        raise UserError(
            f"--format must be one of {', '.join(REPORT_FORMATS)}, not {output_format!r}."
        )
    if output_format != "table":
        text = (report_csv if output_format == "csv" else report_json)(warehouse, months, app)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    if console is None:
        console = Console()
        if not console.is_terminal:
            # Piped or in CI: rich would assume 80 columns and cut every app key short.
            console = Console(width=150)
    for table in metric_tables(warehouse, months, app):
        console.print(table)

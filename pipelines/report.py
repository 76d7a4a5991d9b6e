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
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from pipelines.completeness import as_of_date, complete_expression, incomplete_months, relations
from pipelines.errors import UserError
from pipelines.warehouse import open_marts

if TYPE_CHECKING:
    from pipelines.destinations import Destination


@dataclass(frozen=True)
class Metric:
    """One block of the report: the mart it reads, a query over it with `month`, `addon_key` and
    `{complete}` (the mart's completeness, see completeness.py), and the columns to show.
    Vendor-wide blocks ignore --app; optional ones (metrics v2) are left out of a warehouse
    built before they existed."""

    title: str
    mart: str
    query: str
    columns: tuple[tuple[str, str], ...]
    per_app: bool = True
    optional: bool = False
    # Columns an optional block needs beyond its mart (v2 columns on a v1 mart).
    requires: tuple[str, ...] = ()
    # A look-ahead block (the renewal book, at most 90 days on) is shown whole, not cut to the
    # last `months` months, which would keep the furthest dues and drop the nearest.
    whole: bool = False


_MONEY = "{:,.2f}"
_RATE = "{:.1%}"

METRICS: tuple[Metric, ...] = (
    Metric(
        "Churn (Cloud)",
        "marts.fct_churn",
        "select month, addon_key, billing_period, opportunities, cancellations, pending,"
        " churn_rate, {complete} as is_complete from marts.fct_churn",
        (
            ("billing_period", "{}"),
            ("opportunities", "{:,}"),
            ("cancellations", "{:,}"),
            ("pending", "{:,}"),
            ("churn_rate", _RATE),
        ),
    ),
    Metric(
        "Renewal (Cloud)",
        "marts.fct_renewal",
        "select month, addon_key, billing_period, opportunities, renewals, pending, renewal_rate"
        ", {complete} as is_complete from marts.fct_renewal",
        (
            ("billing_period", "{}"),
            ("opportunities", "{:,}"),
            ("renewals", "{:,}"),
            ("pending", "{:,}"),
            ("renewal_rate", _RATE),
        ),
    ),
    Metric(
        "Conversion (Cloud, by month the evaluation started)",
        "marts.fct_conversion",
        "select month, addon_key, conversion_type, evaluations, conversions, open_evaluations,"
        " conversion_rate, median_days_to_convert, {complete} as is_complete"
        " from marts.fct_conversion",
        (
            ("conversion_type", "{}"),
            ("evaluations", "{:,}"),
            ("conversions", "{:,}"),
            ("open_evaluations", "{:,}"),
            ("conversion_rate", _RATE),
            ("median_days_to_convert", "{:.1f}"),
        ),
    ),
    Metric(
        "MRR (USD, all hostings)",
        "marts.fct_mrr",
        "select month, addon_key, mrr, new_mrr, expansion_mrr, contraction_mrr, churned_mrr,"
        " reactivation_mrr, paying_licenses, {complete} as is_complete from marts.fct_mrr",
        (
            ("mrr", _MONEY),
            ("new_mrr", _MONEY),
            ("expansion_mrr", _MONEY),
            ("contraction_mrr", _MONEY),
            ("churned_mrr", _MONEY),
            ("reactivation_mrr", _MONEY),
            ("paying_licenses", "{:,}"),
        ),
    ),
    Metric(
        "SaaS rates (per app)",
        "marts.fct_mrr",
        "select month, addon_key, gross_mrr_churn_rate, net_mrr_churn_rate, quick_ratio, arpa,"
        " {complete} as is_complete from marts.fct_mrr",
        (
            ("gross_mrr_churn_rate", _RATE),
            ("net_mrr_churn_rate", _RATE),
            ("quick_ratio", "{:.2f}"),
            ("arpa", _MONEY),
        ),
        optional=True,
        requires=("quick_ratio",),
    ),
    Metric(
        "Customers (all apps)",
        "marts.fct_customer_kpis",
        "select month, 'all apps' as addon_key, paying_customers, mrr, logo_churn_rate, arpa,"
        " {complete} as is_complete from marts.fct_customer_kpis",
        (
            ("paying_customers", "{:,}"),
            ("mrr", _MONEY),
            ("logo_churn_rate", _RATE),
            ("arpa", _MONEY),
        ),
        per_app=False,
        optional=True,
    ),
    Metric(
        "Retention 12 months on (by cohort month, all apps)",
        "marts.fct_retention_cohorts",
        "select cohort_month as month, 'all apps' as addon_key, customers, active_customers,"
        " nrr, grr, logo_retention, {complete} as is_complete from marts.fct_retention_cohorts"
        " where months_since = 12",
        (
            ("customers", "{:,}"),
            ("active_customers", "{:,}"),
            ("nrr", _RATE),
            ("grr", _RATE),
            ("logo_retention", _RATE),
        ),
        per_app=False,
        optional=True,
    ),
    Metric(
        "Renewals due (next 90 days) and pending, by month due",
        "marts.fct_renewal_book",
        "select cast(date_trunc('month', due_date) as date) as month, addon_key,"
        " count(*) filter (where status = 'due') as due,"
        " count(*) filter (where status = 'pending') as pending,"
        " sum(arr_at_stake) as arr_at_stake, {complete} as is_complete"
        " from marts.fct_renewal_book group by all",
        (("due", "{:,}"), ("pending", "{:,}"), ("arr_at_stake", _MONEY)),
        optional=True,
        whole=True,
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
    warehouse: Path,
    months: int = 3,
    app: str | None = None,
    vendor: str | None = None,
    destination: Destination | None = None,
) -> tuple[list[Block], date | None]:
    """The last `months` months of each metric, newest first, for one app or all of them (of
    one vendor: see open_marts)."""
    with open_marts(warehouse, vendor, destination, reader="report") as connection:
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
        for metric in METRICS:
            if metric.mart not in known or not set(metric.requires) <= known[metric.mart]:
                if metric.optional:
                    continue
                raise UserError(
                    "the marts are not built yet: run `mpac transform` (or `mpac run`)."
                )
            only = app if metric.per_app else None
            aggregate = " group by " in metric.query
            query = metric.query.format(complete=complete_expression(known[metric.mart], aggregate))
            relation = connection.execute(
                f"with mart as ({query}),"
                " recent as (select distinct month from mart"
                " where ? is null or addon_key = ? order by month desc limit ?)"
                " select * from mart where month in (from recent)"
                " and (? is null or addon_key = ?) order by month desc, addon_key, 3",
                [only, only, None if metric.whole else months, only, only],
            )
            names = [column[0] for column in relation.description]
            rows = [dict(zip(names, row, strict=True)) for row in relation.fetchall()]
            blocks.append(
                Block(metric.title, metric.columns, rows, set(incomplete_months(rows, as_of)))
            )
    return blocks, as_of


def metric_tables(
    warehouse: Path,
    months: int = 3,
    app: str | None = None,
    vendor: str | None = None,
    destination: Destination | None = None,
) -> list[Table]:
    """One rich table per metric; incomplete months carry a mark explained under the table."""
    blocks, as_of = metric_blocks(warehouse, months, app, vendor, destination)
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


def report_json(
    warehouse: Path,
    months: int = 3,
    app: str | None = None,
    vendor: str | None = None,
    destination: Destination | None = None,
) -> str:
    """{"as_of": ..., "metrics": {"churn": [{month, addon_key, ..., is_complete}, ...]}}."""
    blocks, as_of = metric_blocks(warehouse, months, app, vendor, destination)
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


def report_csv(
    warehouse: Path,
    months: int = 3,
    app: str | None = None,
    vendor: str | None = None,
    destination: Destination | None = None,
) -> str:
    """One CSV, one row per metric row: metric, month, addon_key, is_complete, then every
    metric's columns (empty where a column is not that metric's)."""
    blocks, _ = metric_blocks(warehouse, months, app, vendor, destination)
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
    vendor: str | None = None,
    destination: Destination | None = None,
) -> None:
    if output_format not in REPORT_FORMATS:
        raise UserError(
            f"--format must be one of {', '.join(REPORT_FORMATS)}, not {output_format!r}."
        )
    if output_format != "table":
        text = (report_csv if output_format == "csv" else report_json)(
            warehouse, months, app, vendor, destination
        )
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    if console is None:
        console = Console()
        if not console.is_terminal:
            # Piped or in CI: rich would assume 80 columns and cut every app key short.
            console = Console(width=150)
    for table in metric_tables(warehouse, months, app, vendor, destination):
        console.print(table)

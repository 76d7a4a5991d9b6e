"""`mpac report`: the last months of churn, renewal, conversion and MRR per app, from the marts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
from rich.console import Console
from rich.table import Table

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


def _cell(value: Any, template: str) -> str:
    return "" if value is None else template.format(value)


def metric_tables(warehouse: Path, months: int = 3) -> list[Table]:
    """One rich table per metric with the last `months` months, newest first, per app."""
    connection = open_read_only(warehouse)
    tables = []
    with connection:
        for title, query, columns in _BLOCKS:
            try:
                relation = connection.execute(
                    f"with mart as ({query}),"
                    " recent as (select distinct month from mart order by month desc limit ?)"
                    " select * from mart where month in (from recent)"
                    " order by month desc, addon_key, 3",
                    [months],
                )
            except duckdb.CatalogException:
                raise UserError(
                    "the marts are not built yet: run `mpac transform` (or `mpac run`)."
                ) from None
            names = [column[0] for column in relation.description]
            table = Table(title=title, title_justify="left")
            table.add_column("month")
            table.add_column("app")
            for name, _ in columns:
                table.add_column(name.replace("_", " "), justify="right")
            for row in relation.fetchall():
                record = dict(zip(names, row, strict=True))
                table.add_row(
                    str(record["month"]),
                    record["addon_key"],
                    *(_cell(record[name], template) for name, template in columns),
                )
            tables.append(table)
    return tables


def print_report(warehouse: Path, months: int = 3, console: Console | None = None) -> None:
    if console is None:
        console = Console()
        if not console.is_terminal:
            # Piped or in CI: rich would assume 80 columns and cut every app key short.
            console = Console(width=150)
    for table in metric_tables(warehouse, months):
        console.print(table)

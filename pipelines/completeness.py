"""Which months of a mart can still change: one rule for the report, the dashboard, the digest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import duckdb


def relations(connection: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    """Every relation (`schema.table`) of the warehouse with its columns."""
    found: dict[str, set[str]] = {}
    for schema, table, column in connection.execute(
        "select table_schema, table_name, column_name from information_schema.columns"
    ).fetchall():
        found.setdefault(f"{schema}.{table}", set()).add(column)
    return found


def as_of_date(
    connection: duckdb.DuckDBPyConnection, known: Mapping[str, set[str]] | None = None
) -> date | None:
    """The day the marts describe: dbt's own as_of (int_as_of_date), else the last MRR month
    (fct_mrr runs to the month of as_of_date)."""
    known = relations(connection) if known is None else known
    for relation, query in (
        ("intermediate.int_as_of_date", "select max(as_of_date) from intermediate.int_as_of_date"),
        ("marts.fct_mrr", "select max(month) from marts.fct_mrr"),
    ):
        if relation in known:
            found = connection.execute(query).fetchone()
            if found and isinstance(found[0], date):
                return found[0]
    return None


def complete_expression(columns: set[str], aggregate: bool = False) -> str:
    """SQL for a row's completeness: the mart's is_complete (metrics v2) when it has one."""
    if "is_complete" not in columns:
        return "cast(null as boolean)"
    return "bool_and(is_complete)" if aggregate else "is_complete"


def incomplete_months(rows: Sequence[Mapping[str, Any]], as_of: date | None) -> list[str]:
    """Months whose figures can still change: the mart's is_complete when it has it (metrics
    v2), else every month from the month of as_of on."""
    months: dict[str, Any] = {}
    for row in rows:
        month = str(row["month"])
        complete = row.get("is_complete")
        # A month is complete only when every row of it is.
        months[month] = complete if months.get(month, True) is not False else False
    flagged = {month for month, complete in months.items() if complete is False}
    if all(complete is None for complete in months.values()) and as_of is not None:
        first = as_of.replace(day=1).isoformat()
        flagged = {month for month in months if month >= first}
    return sorted(flagged)

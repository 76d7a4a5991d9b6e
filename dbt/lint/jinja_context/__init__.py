"""What sqlfluff's jinja templater needs of dbt's context to render our macros: `adapter.dispatch`
and the cross-database `dbt.*` macros, rendered as DuckDB SQL (the dialect `make lint` checks).

sqlfluff loads this package through `library_path` in .sqlfluff; its public names become jinja
globals. dbt itself never reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace as _Namespace
from typing import Any

from jinja2 import pass_context as _pass_context
from jinja2.runtime import Context as _Context


@_pass_context
def _dispatch(context: _Context, macro_name: str, macro_namespace: str | None = None) -> Any:
    """The project's duckdb__ implementation, else its default__, as dbt picks them on DuckDB."""
    for prefix in ("duckdb__", "default__"):
        macro = context.get(prefix + macro_name)
        if macro is not None:
            return macro
    raise KeyError(f"no duckdb__ or default__ implementation of {macro_name}")


def _dateadd(datepart: str, interval: Any, from_date_or_timestamp: str) -> str:
    return f"({from_date_or_timestamp} + cast({interval} as bigint) * interval 1 {datepart})"


def _datediff(first_date: str, second_date: str, datepart: str) -> str:
    return f"date_diff('{datepart}', {first_date}::timestamp, {second_date}::timestamp)"


def _date_trunc(datepart: str, date: str) -> str:
    return f"date_trunc('{datepart}', {date})"


def _last_day(date: str, datepart: str) -> str:
    return f"cast({_date_trunc(datepart, date)} + interval 1 {datepart} - interval 1 day as date)"


def _safe_cast(field: str, data_type: str) -> str:
    return f"cast({field} as {data_type})"


_MACROS: dict[str, Callable[..., str]] = {
    "dateadd": _dateadd,
    "datediff": _datediff,
    "date_trunc": _date_trunc,
    "last_day": _last_day,
    "safe_cast": _safe_cast,
}

adapter = _Namespace(dispatch=_dispatch)
dbt = _Namespace(**_MACROS)

"""The dbt project stays portable between DuckDB and Postgres without a Postgres server to hand:
no DuckDB-only SQL outside the dispatch implementations of dbt/macros (`duckdb__...`,
`default__...`, `postgres__...`), in the models, tests, macros or the SQL held in YAML."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

DBT = Path(__file__).resolve().parent.parent / "dbt"

# Each DuckDB-only construct this project used, with the portable spelling to use instead.
DUCKDB_ONLY: dict[str, str] = {
    r"\bqualify\b": "{{ distinct_on(key) }} ... {{ distinct_on_order(key, order) }}",
    r"\btry_cast\s*\(": "{{ try_cast(expression, type) }}",
    r"\blast_day\s*\(": "{{ month_end(day) }}",
    r"\bdate_trunc\s*\(": "{{ month_start(day) }} or dbt.date_trunc",
    r"\bdate_?diff\s*\(": "{{ month_boundaries(start, end) }} or dbt.datediff",
    r"\bto_months\s*\(": "{{ add_months(day, months) }}",
    r"\bgenerate_series\s*\(": "{{ months_from_to(first_month, last_month) }}",
    r"\bunnest\s*\(": "{{ months_from_to(first_month, last_month) }}",
    r"\barg_(max|min)\s*\(": "{{ arg_max(value, order_by, where) }}",
    r"\bmedian\s*\(": "percentile_cont(0.5) within group (order by ...)",
    r"\bany_value\s*\(": "min() or max()",
    r"\bignore\s+nulls\b": "{{ first_non_null(expression, window) }}",
    r"\bfilter\s*\((?!\s*where\b)": "filter (where ...)",
    r"\bgroup\s+by\s+all\b": "the grouped columns",
    r"\blist(_\w+)?\s*\(": "array_agg(... order by ...)",
    r"\bas\s+double\b(?!\s+precision)": "double precision",
    r"\binterval\s+\d": "{{ add_months(day, n) }} or dbt.dateadd",
    r"::": "cast(... as ...)",
    r"\bexclude\s*\(": "the columns by name",
    r"\bstr[fp]time\s*\(": "dbt's cross-database macros",
}
# The YAML keys whose values are SQL that dbt runs.
SQL_KEYS = {"expression", "loaded_at_field", "where"}
# The YAML keys whose values are lists of SQL (row_assertions' expressions).
SQL_LIST_KEYS = {"expressions"}

DISPATCH_IMPLEMENTATION = re.compile(
    r"{%-?\s*macro\s+\w+__\w+\s*\(.*?{%-?\s*endmacro\s*-?%}", re.DOTALL
)
JINJA_COMMENT = re.compile(r"{#.*?#}", re.DOTALL)
JINJA_TAG = re.compile(r"{{.*?}}|{%.*?%}", re.DOTALL)
SQL_COMMENT = re.compile(r"--[^\n]*")


def portable_part(sql: str) -> str:
    """The SQL text that reaches every adapter: dispatch implementations, comments and jinja
    tags (macro calls, whose arguments are jinja strings) left out."""
    sql = JINJA_COMMENT.sub(" ", sql)
    sql = DISPATCH_IMPLEMENTATION.sub(" ", sql)
    sql = JINJA_TAG.sub(" ", sql)
    return SQL_COMMENT.sub(" ", sql)


def duckdb_only(sql: str) -> list[str]:
    """The DuckDB-only constructs in `sql` outside dispatch implementations, with their fix."""
    text = portable_part(sql).lower()
    return [
        f"{pattern} (use {fix})" for pattern, fix in DUCKDB_ONLY.items() if re.search(pattern, text)
    ]


def sql_in_yaml(node: Any) -> Iterator[str]:
    """SQL held in dbt YAML: test expressions and filters, freshness fields, SQL fixtures."""
    if isinstance(node, dict):
        is_sql_fixture = node.get("format") == "sql"
        for key, value in node.items():
            if isinstance(value, str) and (key in SQL_KEYS or (key == "rows" and is_sql_fixture)):
                yield value
            elif key in SQL_LIST_KEYS and isinstance(value, list):
                yield from (item for item in value if isinstance(item, str))
            else:
                yield from sql_in_yaml(value)
    elif isinstance(node, list):
        for item in node:
            yield from sql_in_yaml(item)


def project_sql() -> Iterator[tuple[str, str]]:
    for path in sorted(DBT.rglob("*.sql")):
        if "target" not in path.relative_to(DBT).parts:
            yield str(path.relative_to(DBT)), path.read_text()
    for path in sorted(DBT.rglob("*.yml")):
        if "target" not in path.relative_to(DBT).parts:
            for number, sql in enumerate(sql_in_yaml(yaml.safe_load(path.read_text()))):
                yield f"{path.relative_to(DBT)} #{number}", sql


def test_the_project_has_sql_to_check() -> None:
    files = {name.split(" ")[0] for name, _ in project_sql()}
    assert "models/intermediate/int_license_days_valued.sql" in files
    assert "macros/cross_database.sql" in files
    assert any(name.startswith("models/marts/_marts__models.yml #") for name, _ in project_sql())
    # row_assertions' expressions are read too (fct_mrr's quick ratio is one of them)
    assert any("quick_ratio >= 0" in sql for _, sql in project_sql())


def test_no_duckdb_only_sql_outside_dispatch_implementations() -> None:
    found = {name: hits for name, sql in project_sql() if (hits := duckdb_only(sql))}
    assert found == {}


@pytest.mark.parametrize(
    "sql",
    [
        "select * from t qualify row_number() over (partition by k order by o) = 1",
        "select count(*) filter (is_paid) from t",
        "select k from t group by all",
        "select try_cast(x as date) from t",
        "select last_day(d) from t",
        "select x::date from t",
        "select d + interval 1 month from t",
        "select cast(x as double) from t",
        "select list_sort(list(distinct x)) from t",
        "select arg_max(v, k) from t",
        "select first_value(x ignore nulls) over w from t",
        "select median(x) from t",
    ],
)
def test_the_check_finds_duckdb_only_sql(sql: str) -> None:
    assert duckdb_only(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "{% macro duckdb__month_end(day) -%}\n    last_day({{ day }})\n{%- endmacro %}",
        "select {{ try_cast('x', 'date') }}, count(*) filter (where is_paid) from t",
        "-- qualify would be shorter here\nselect cast(x as double precision) from t",
        "{#- arg_max(v, k) on DuckDB -#}\nselect distinct on (k) k from t order by k, o desc",
    ],
)
def test_the_check_allows_dispatch_implementations_macro_calls_and_comments(sql: str) -> None:
    assert duckdb_only(sql) == []

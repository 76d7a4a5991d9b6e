"""The dbt YAML keeps its row-level checks in one `row_assertions` test per model and severity
(one dbt node and one scan instead of one per column), and checks every relationship within its
vendor: read from the YAML (and one generic test's SQL run on DuckDB), no dbt run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

MODELS = Path(__file__).resolve().parent.parent / "dbt" / "models"
# Tests that row_assertions replaces: written alone they would each be a dbt node again.
GROUPED = {"not_null", "accepted_values", "expression_is_true"}


def models() -> Iterator[dict[str, Any]]:
    for path in sorted(MODELS.rglob("*.yml")):
        yield from (yaml.safe_load(path.read_text()) or {}).get("models", [])


def name_and_body(test: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(test, str):
        return test, {}
    ((name, body),) = test.items()
    return name, body or {}


def standalone_row_checks(model: dict[str, Any]) -> list[str]:
    """not_null / accepted_values / expression_is_true tests outside row_assertions, except
    those that keep their own name (something refers to it) or filter rows (`where`)."""
    found = []
    tests = [(None, test) for test in model.get("data_tests") or []] + [
        (column["name"], test)
        for column in model.get("columns") or []
        for test in column.get("data_tests") or []
    ]
    for column, test in tests:
        name, body = name_and_body(test)
        config = body.get("config") or {}
        if name in GROUPED and "name" not in body and "where" not in config:
            found.append(f"{model['name']}.{column or '<model>'}: {name}")
    return found


def test_row_checks_are_grouped_per_model() -> None:
    assert [found for model in models() for found in standalone_row_checks(model)] == []


def test_row_assertions_name_their_model_and_check_its_documented_columns() -> None:
    seen = 0
    for model in models():
        columns = {column["name"] for column in model.get("columns") or []}
        for test in model.get("data_tests") or []:
            name, body = name_and_body(test)
            if name != "row_assertions":
                continue
            seen += 1
            severity = (body.get("config") or {}).get("severity")
            expected = f"row_assertions_{model['name']}" + (f"_{severity}" if severity else "")
            assert body.get("name") == expected
            arguments = body["arguments"]
            named = set(arguments.get("not_null", [])) | set(arguments.get("accepted_values", {}))
            assert named <= columns, (model["name"], named - columns)
            assert named or arguments.get("expressions"), model["name"]
    assert seen > 30


def test_the_check_finds_a_column_level_not_null() -> None:
    model = {"name": "m", "columns": [{"name": "k", "data_tests": ["not_null"]}]}
    assert standalone_row_checks(model) == ["m.k: not_null"]
    expression = {"expression_is_true": {"arguments": {"expression": "x > 0"}}}
    model = {"name": "m", "data_tests": [expression]}
    assert standalone_row_checks(model) == ["m.<model>: expression_is_true"]


def test_every_relationship_is_checked_within_its_vendor() -> None:
    """dbt's one-column `relationships` would pass a row pointing at another vendor's key."""
    one_column = [
        f"{model['name']}.{column['name']}"
        for model in models()
        for column in model.get("columns") or []
        for test in column.get("data_tests") or []
        if name_and_body(test)[0] == "relationships"
    ]
    assert one_column == []


def test_relationships_within_vendor_fails_on_another_vendors_key() -> None:
    import duckdb
    import jinja2

    source = (MODELS.parent / "tests" / "generic" / "relationships_within_vendor.sql").read_text()
    # The `test` block is dbt's tag; as a plain macro jinja2 renders the same SQL.
    source = source.replace("{% test ", "{% macro ").replace("{% endtest %}", "{% endmacro %}")
    check = jinja2.Environment().from_string(source).module.relationships_within_vendor
    sql = check(model="child", column_name="addon_key", to="parent", field="addon_key")
    connection = duckdb.connect()
    connection.execute(
        "create table parent as select * from (values ('1', 'app')) t(vendor_id, addon_key)"
    )
    connection.execute(
        "create table child as select * from "
        "(values ('1', 'app'), ('2', 'app'), ('1', null)) t(vendor_id, addon_key)"
    )
    # Vendor 2 has no app 'app' (vendor 1 has): one broken row; a null key breaks nothing.
    assert connection.execute(str(sql)).fetchall() == [("2", "app")]

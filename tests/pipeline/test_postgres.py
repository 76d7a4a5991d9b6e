"""The postgres destination: chosen by configuration, one sentence for every way it fails, the
password nowhere, the single writer (advisory lock), status, and the marts swapped in whole."""

from __future__ import annotations

import csv
import io
import json
import socket
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from pipelines.destinations import (
    ADVISORY_LOCK_KEY,
    Destination,
    postgres_credentials,
    swap_shadow_schemas,
)
from pipelines.tools.postgres_server import with_database
from tests.helpers import cli, simulator_env

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("pg")]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _password(url: str) -> str:
    return url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]


def _all_text(folder: Path) -> str:
    return "\n".join(
        path.read_text(errors="replace")
        for path in folder.rglob("*")
        if path.is_file() and path.stat().st_size < 5_000_000
    )


def test_an_unknown_destination_is_one_sentence_exit_2(tmp_path: Path) -> None:
    result = cli(["status", "--warehouse", str(tmp_path / "w.duckdb"), "--destination", "oracle"])
    assert result.exit_code == 2
    assert "unknown destination 'oracle': choose duckdb or postgres" in result.output
    assert "Traceback" not in result.output
    # dlt's own setting chooses it too.
    result = cli(["status", "--warehouse", str(tmp_path / "w.duckdb")], {"DESTINATION_TYPE": "x"})
    assert result.exit_code == 2
    assert "unknown destination 'x'" in result.output


def test_postgres_without_credentials_says_where_to_put_them(tmp_path: Path) -> None:
    result = cli(
        ["status", "--destination", "postgres", "--warehouse", str(tmp_path / "w.duckdb")],
        {"DESTINATION__POSTGRES__CREDENTIALS": ""},
    )
    assert result.exit_code == 2
    assert "DESTINATION__POSTGRES__CREDENTIALS" in result.output


def test_an_unreachable_server_is_one_sentence_without_the_password(
    simulator: Any, tmp_path: Path
) -> None:
    secret = "s3cret-never-shown"
    url = f"postgresql://mpac:{secret}@127.0.0.1:{_closed_port()}/mpac"
    env = {**simulator_env(simulator), "DESTINATION__POSTGRES__CREDENTIALS": url}
    for args in (["run"], ["status"], ["transform"], ["report"], ["dashboard"], ["digest"]):
        result = cli([*args, "--destination", "postgres", "--warehouse", str(tmp_path / "w")], env)
        assert result.exit_code == 2, result.output
        assert "cannot reach postgres 127.0.0.1:" in result.output
        assert secret not in result.output
        assert "Traceback" not in result.output
    assert secret not in _all_text(tmp_path)


def test_a_wrong_password_is_one_sentence_and_never_shown(
    simulator: Any, postgres_url: str, tmp_path: Path
) -> None:
    wrong = "wrong-password-1234"
    url = postgres_url.replace(f":{_password(postgres_url)}@", f":{wrong}@")
    env = {**simulator_env(simulator), "DESTINATION__POSTGRES__CREDENTIALS": url}
    result = cli(["run", "--destination", "postgres", "--warehouse", str(tmp_path / "w")], env)
    assert result.exit_code == 2, result.output
    assert "refused the password of user mpac" in result.output
    assert wrong not in result.output
    assert "Traceback" not in result.output
    for reader in ("report", "dashboard", "digest"):
        read = cli([reader, "--destination", "postgres", "--warehouse", str(tmp_path / "w")], env)
        assert read.exit_code == 2, read.output
        assert "refused the password of user mpac" in read.output
        assert wrong not in read.output
    # Nothing was made before the server said no.
    assert not (tmp_path / "w").exists()
    assert not any(tmp_path.iterdir())


def test_a_run_on_postgres_then_status_and_the_password_is_nowhere(
    simulator: Any, postgres_url: str, tmp_path: Path
) -> None:
    env = {
        **simulator_env(simulator),
        "DESTINATION__POSTGRES__CREDENTIALS": postgres_url,
        # dlt's own setting chooses the destination; no option needed.
        "DESTINATION_TYPE": "postgres",
    }
    warehouse = tmp_path / "data" / "marketplace.duckdb"
    loaded = cli(["run", "--no-transform", "--warehouse", str(warehouse)], env)
    assert loaded.exit_code == 0, loaded.output
    # No DuckDB file: the local folder holds dlt's state, named per server and database.
    assert not warehouse.exists()
    shown = cli(["status", "--warehouse", str(warehouse)], env)
    assert shown.exit_code == 0, shown.output
    assert "licenses" in shown.output
    assert "ok" in shown.output  # the load is listed as landed
    with psycopg2.connect(postgres_url) as connection, connection.cursor() as cursor:
        cursor.execute("select count(*) from raw_marketplace.licenses where _dlt_valid_to is null")
        (current,) = cursor.fetchone()
    assert current == len(list(simulator.state.records("licenses")))
    assert f"{current:,}" in shown.output
    password = _password(postgres_url)
    assert password not in loaded.output + shown.output
    assert password not in _all_text(tmp_path)


def test_publish_is_duckdb_only(postgres_url: str, tmp_path: Path) -> None:
    env = {"DESTINATION__POSTGRES__CREDENTIALS": postgres_url}
    result = cli(
        [
            "transform",
            "--destination",
            "postgres",
            "--warehouse",
            str(tmp_path / "w"),
            "--publish",
            str(tmp_path / "copy.duckdb"),
        ],
        env,
    )
    assert result.exit_code == 2
    assert "--publish (and MPAC_PUBLISH) copies a DuckDB file" in result.output


def test_a_second_writer_waits_for_the_advisory_lock(
    simulator: Any, postgres_url: str, tmp_path: Path
) -> None:
    env = {**simulator_env(simulator), "DESTINATION__POSTGRES__CREDENTIALS": postgres_url}
    holder = psycopg2.connect(postgres_url)
    try:
        with holder.cursor() as cursor:
            # Another machine's run holds the warehouse: the lock is the server's, not a file.
            cursor.execute("select pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        result = cli(
            ["run", "--destination", "postgres", "--warehouse", str(tmp_path / "w"), "--wait", "1"],
            env,
        )
    finally:
        holder.close()
    assert result.exit_code == 2, result.output
    assert "another run is writing to postgres 127.0.0.1:" in result.output
    assert "after waiting 1 s" in result.output
    # Released with its session: the next run goes ahead.
    result = cli(
        ["run", "--destination", "postgres", "--no-transform", "--warehouse", str(tmp_path / "w")],
        env,
    )
    assert result.exit_code == 0, result.output


def test_the_shadow_schemas_replace_the_marts_in_one_transaction(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", postgres_url)
    destination = Destination("postgres", postgres_credentials())
    with psycopg2.connect(postgres_url) as setup, setup.cursor() as cursor:
        cursor.execute("create schema intermediate; create schema marts")
        cursor.execute("create table intermediate.base as select 1 as build")
        cursor.execute("create view marts.fct as select build from intermediate.base")
        cursor.execute("create schema intermediate__next; create schema marts__next")
        cursor.execute("create table intermediate__next.base as select 2 as build")
        cursor.execute("create view marts__next.fct as select build from intermediate__next.base")
    setup.close()
    reader = psycopg2.connect(postgres_url)
    try:
        with reader.cursor() as cursor:
            # A reader inside a transaction keeps its view of the old marts until it ends; the
            # swap waits for it instead of failing (lock_timeout 0).
            cursor.execute("select build from marts.fct")
            assert cursor.fetchall() == [(1,)]
        reader.commit()
        swap_shadow_schemas(destination)
        with reader.cursor() as cursor:
            cursor.execute("select build from marts.fct")
            assert cursor.fetchall() == [(2,)]
            cursor.execute(
                "select schema_name from information_schema.schemata "
                "where schema_name like '%%next' or schema_name like 'staging%%'"
            )
            assert cursor.fetchall() == []
    finally:
        reader.close()


def test_with_database_names_another_database() -> None:
    assert with_database("postgresql://u:p@h:5/a", "b") == "postgresql://u:p@h:5/b"


def test_docs_says_it_reads_duckdb_only_on_postgres(tmp_path: Path) -> None:
    result = cli(
        ["docs", "--warehouse", str(tmp_path / "w.duckdb")], {"DESTINATION_TYPE": "postgres"}
    )
    assert result.exit_code == 2
    assert "mpac docs reads a DuckDB warehouse; on Postgres" in result.output


def _same_figures(shown: Any, expected: Any, where: str = "report") -> None:
    """Equal but for the last digits of a float: DuckDB's marts compute some money in doubles,
    Postgres's in numerics (68.32000000000001 against 68.32)."""
    if isinstance(expected, dict):
        assert shown.keys() == expected.keys(), where
        for key in expected:
            _same_figures(shown[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(shown) == len(expected), where
        for index, (one, other) in enumerate(zip(shown, expected, strict=True)):
            _same_figures(one, other, f"{where}[{index}]")
    elif isinstance(expected, float) or isinstance(shown, float):
        assert shown == pytest.approx(expected, rel=1e-9, abs=1e-9), where
    else:
        assert shown == expected, where


def test_report_dashboard_and_digest_read_postgres_as_they_read_duckdb(
    built_warehouse: Any, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.dashboard import write_dashboard

    # The records of the session's DuckDB build (seed 42, tiny, the fixed today), on Postgres.
    env = {
        **built_warehouse.env,
        "DESTINATION__POSTGRES__CREDENTIALS": postgres_url,
        "DESTINATION_TYPE": "postgres",
    }
    warehouse = tmp_path / "data" / "marketplace.duckdb"
    built = cli(["run", "--warehouse", str(warehouse)], env)
    assert built.exit_code == 0, built.output
    duckdb_warehouse = str(built_warehouse.warehouse)

    for output_format in ("json", "csv"):
        on_postgres = cli(["report", "--format", output_format, "--warehouse", str(warehouse)], env)
        assert on_postgres.exit_code == 0, on_postgres.output
        on_duckdb = cli(["report", "--format", output_format, "--warehouse", duckdb_warehouse])
        assert on_duckdb.exit_code == 0, on_duckdb.output
        if output_format == "json":
            shown, expected = json.loads(on_postgres.output), json.loads(on_duckdb.output)
            assert expected["metrics"]["mrr"], "the tiny vendor has MRR to compare"
            _same_figures(shown, expected)
        else:
            rows = list(csv.DictReader(io.StringIO(on_postgres.output)))
            expected_rows = list(csv.DictReader(io.StringIO(on_duckdb.output)))
            _same_figures(
                [{k: _number(v) for k, v in row.items()} for row in rows],
                [{k: _number(v) for k, v in row.items()} for row in expected_rows],
            )

    drawn = cli(["dashboard", "--warehouse", str(warehouse)], env)
    assert drawn.exit_code == 0, drawn.output
    page = next((tmp_path / "data").glob("marketplace@*.dashboard.html"))
    assert str(page) in drawn.output
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", postgres_url)
    _, panels = write_dashboard(
        Destination("postgres", postgres_credentials()).local_path(warehouse),
        tmp_path / "again.html",
        destination=Destination("postgres", postgres_credentials()),
    )
    _, expected_panels = write_dashboard(built_warehouse.warehouse, tmp_path / "duckdb.html")
    assert [(p.chart.key, p.skipped, sorted(p.figures)) for p in panels] == [
        (p.chart.key, p.skipped, sorted(p.figures)) for p in expected_panels
    ]
    assert any(p.figures for p in panels)

    digest = cli(["digest", "--warehouse", str(warehouse)], env)
    assert digest.exit_code == 0, digest.output
    expected_digest = cli(["digest", "--peek", "--warehouse", duckdb_warehouse])
    assert expected_digest.exit_code == 0, expected_digest.output
    # Alike but for the title, which names the warehouse.
    assert digest.output.split("\n")[1:] == expected_digest.output.split("\n")[1:]
    assert "**MRR**" in digest.output
    # Remembered beside the local folder: the next digest has nothing new.
    again = cli(["digest", "--peek", "--warehouse", str(warehouse)], env)
    assert "First digest" not in again.output
    password = _password(postgres_url)
    assert password not in built.output + drawn.output + digest.output
    assert password not in _all_text(tmp_path)


def _number(value: str) -> Any:
    try:
        return float(value)
    except ValueError:
        return value


def test_readers_on_postgres_see_one_vendor_by_the_rules_of_duckdb(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.warehouse import open_marts

    env = {"DESTINATION__POSTGRES__CREDENTIALS": postgres_url, "DESTINATION_TYPE": "postgres"}
    warehouse = str(tmp_path / "w.duckdb")
    empty = cli(["report", "--warehouse", warehouse], env)
    assert empty.exit_code == 2
    assert "the marts are not built yet: run `mpac transform`" in empty.output
    with psycopg2.connect(postgres_url) as setup, setup.cursor() as cursor:
        cursor.execute("create schema intermediate; create schema marts")
        cursor.execute(
            "create table intermediate.int_as_of_date as select * from (values "
            "('11', date '2026-11-13'), ('22', date '2026-11-13')) as v(vendor_id, as_of_date)"
        )
        cursor.execute(
            "create table marts.fct_mrr (vendor_id text, mrr numeric(38, 18), ratio numeric)"
        )
        cursor.execute(
            "insert into marts.fct_mrr values ('11', 1.25, 3), ('22', 7, 0.5), ('22', 0.1, 2)"
        )
    setup.close()
    both = cli(["report", "--warehouse", warehouse], env)
    assert both.exit_code == 2
    assert "the warehouse holds 2 vendors (11, 22): pick one with --vendor." in both.output
    unknown = cli(["dashboard", "--vendor", "33", "--warehouse", warehouse], env)
    assert unknown.exit_code == 2
    assert "the warehouse holds no vendor '33': it holds 11, 22." in unknown.output
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", postgres_url)
    destination = Destination("postgres", postgres_credentials())
    with open_marts(tmp_path / "w.duckdb", "22", destination) as connection:
        rows = connection.execute("select * from marts.fct_mrr order by mrr").fetchall()
        assert rows == [("22", Decimal("0.1"), 2.0), ("22", Decimal("7"), 0.5)]
        types = dict(
            connection.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_name = 'fct_mrr'"
            ).fetchall()
        )
        # The server filtered the rows; a numeric keeps its decimal type (unconstrained: double).
        assert types == {"vendor_id": "VARCHAR", "mrr": "DECIMAL(38,18)", "ratio": "DOUBLE"}
        assert connection.execute(
            "select vendor_id from intermediate.int_as_of_date"
        ).fetchall() == [("22",)]

    # A table the configured role may no longer read (its owner revoked its own rights): one
    # sentence naming it, not the driver's traceback.
    with psycopg2.connect(postgres_url) as setup, setup.cursor() as cursor:
        cursor.execute("revoke all on marts.fct_mrr from current_user")
    setup.close()
    refused = cli(["report", "--vendor", "22", "--warehouse", warehouse], env)
    assert refused.exit_code == 2, refused.output
    assert "Postgres would not return marts.fct_mrr (" in refused.output
    assert "Traceback" not in refused.output

"""The postgres destination: chosen by configuration, one sentence for every way it fails, the
password nowhere, the single writer (advisory lock), status, and the marts swapped in whole."""

from __future__ import annotations

import socket
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
    for args in (["run"], ["status"], ["transform"]):
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


@pytest.mark.parametrize("command", ["report", "dashboard", "digest", "docs"])
def test_the_duckdb_readers_say_so_on_postgres(command: str, tmp_path: Path) -> None:
    result = cli(
        [command, "--warehouse", str(tmp_path / "w.duckdb")], {"DESTINATION_TYPE": "postgres"}
    )
    assert result.exit_code == 2
    assert f"mpac {command} reads a DuckDB warehouse; on Postgres" in result.output

"""Which warehouse a run writes to (DuckDB, the default, or Postgres): dlt's destination and
dbt's target chosen together from one setting, and what differs per destination (connections,
the single-writer lock, how a dbt build is swapped in)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.errors import UserError

DEFAULT_DESTINATION = "duckdb"
# dlt destination -> the target of dbt/profiles.yml built with it.
DBT_TARGETS = {"duckdb": "local", "postgres": "postgres"}
DESTINATIONS = tuple(DBT_TARGETS)
# dlt's own keys for a pipeline's destination: `[pipelines.marketplace] destination_type` (env
# PIPELINES__MARKETPLACE__DESTINATION_TYPE), else a top-level `destination_type` (DESTINATION_TYPE).
DESTINATION_KEYS = ("pipelines.marketplace.destination_type", "destination_type")
# dbt builds the marts into these suffixed schemas; they replace the live ones in one transaction.
SHADOW_SUFFIX = "__next"
SCHEMA_SUFFIX_ENV = "MPAC_SCHEMA_SUFFIX"
DBT_SCHEMAS = ("staging", "intermediate", "marts")
# The scd2 merge of dlt on Postgres filters with `NOT IN (subquery)`: only a hashed subplan that
# fits in work_mem finishes (issue 12: 4 MB did not finish in 400 s, 64 MB took 1.5 s); the
# value and its measurement: DECISIONLOG, "Postgres: the scd2 merge and work_mem".
LOAD_WORK_MEM = "256MB"
# One advisory-lock key for the warehouse's single writer (any 64-bit number; "mpac" in ASCII).
ADVISORY_LOCK_KEY = 0x6D706163
# The suffix of a server's local name: it keeps Path.stem whole (a host name has dots).
_SERVER_SUFFIX = ".postgres"


@dataclass(frozen=True)
class Destination:
    """The chosen warehouse: `name` is a dlt destination type; `credentials` (Postgres only) are
    dlt's PostgresCredentials, never printed (their repr hides the password)."""

    name: str
    credentials: Any = field(default=None, repr=False)

    @property
    def is_duckdb(self) -> bool:
        return self.name == "duckdb"

    @property
    def dbt_target(self) -> str:
        return DBT_TARGETS[self.name]

    def local_path(self, warehouse: Path) -> Path:
        """What names the local files of a run (dlt's working folder, dbt's artefacts, the lock
        file): the DuckDB file itself, or for a server a name beside it per host, port and
        database, so that switching servers never reuses another database's saved cursors."""
        if self.is_duckdb or warehouse.suffix == _SERVER_SUFFIX:
            return warehouse
        c = self.credentials
        tag = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{c.host}_{c.port or 5432}_{c.database}")
        return warehouse.with_name(f"{warehouse.stem}@{tag}{_SERVER_SUFFIX}")

    def describe(self, warehouse: Path) -> str:
        """Where the data goes, for messages: the file, or the server and database (no secret)."""
        if self.is_duckdb:
            return str(warehouse)
        c = self.credentials
        return f"postgres {c.host}:{c.port or 5432}/{c.database}"


def destination_name(explicit: str | None = None) -> str:
    """--destination, else dlt's `destination_type` setting (env beats .dlt/config.toml), else
    duckdb; a name we do not run ends in one sentence."""
    import dlt

    chosen = explicit
    for key in DESTINATION_KEYS:
        if chosen:
            break
        chosen = dlt.config.get(key)
    name = str(chosen or DEFAULT_DESTINATION).strip().lower()
    if name not in DESTINATIONS:
        raise UserError(
            f"unknown destination {name!r}: choose duckdb or postgres (the README's "
            "'Other warehouses' lists the settings of MotherDuck, BigQuery and Snowflake, "
            "untested here)."
        )
    return name


def resolve(explicit: str | None = None) -> Destination:
    """The destination to use, with its credentials read and checked (Postgres)."""
    name = destination_name(explicit)
    if name == "duckdb":
        return Destination(name)
    return Destination(name, postgres_credentials())


def postgres_credentials() -> Any:
    """`[destination.postgres] credentials` (a connection string or a table) from
    .dlt/secrets.toml or DESTINATION__POSTGRES__CREDENTIALS, as dlt itself reads them."""
    import dlt
    from dlt.destinations.impl.postgres.configuration import PostgresCredentials

    found: Any = dlt.secrets.get("destination.postgres.credentials")
    if not found:
        raise UserError(
            "the postgres destination needs credentials: put credentials = "
            '"postgresql://USER:PASSWORD@HOST:5432/DATABASE" under [destination.postgres] in '
            ".dlt/secrets.toml, or set DESTINATION__POSTGRES__CREDENTIALS."
        )
    credentials = PostgresCredentials()
    try:
        if isinstance(found, str):
            credentials.parse_native_representation(found)
        else:
            credentials.update(dict(found))
    except Exception:
        # The parser's message quotes the value, which holds the password.
        raise UserError(
            "the postgres credentials do not parse: write them as "
            "postgresql://USER:PASSWORD@HOST:5432/DATABASE."
        ) from None
    missing = [name for name in ("host", "database", "username") if not getattr(credentials, name)]
    if missing:
        raise UserError(f"the postgres credentials lack {', '.join(missing)}.")
    return credentials


def with_session_settings(credentials: Any) -> Any:
    """A copy of `credentials` whose sessions get LOAD_WORK_MEM (unless the user set work_mem in
    the connection's options): dlt's scd2 merge needs it (see LOAD_WORK_MEM)."""
    import copy

    chosen = copy.copy(credentials)
    query = dict(chosen.query or {})
    options = str(query.get("options", ""))
    if "work_mem" not in options:
        query["options"] = f"{options} -cwork_mem={LOAD_WORK_MEM}".strip()
    chosen.query = query
    return chosen


def dlt_destination(destination: Destination, duckdb_file: Path) -> Any:
    """dlt's destination object: DuckDB writes `duckdb_file` (the shadow copy)."""
    import dlt

    if destination.is_duckdb:
        return dlt.destinations.duckdb(str(duckdb_file))
    return dlt.destinations.postgres(credentials=with_session_settings(destination.credentials))


def dbt_environment(destination: Destination, duckdb_file: Path, shadow: bool) -> dict[str, str]:
    """What dbt/profiles.yml reads for this destination. The password goes in a variable named
    DBT_ENV_SECRET_*, which dbt scrubs from its logs and artefacts."""
    from pipelines.warehouse import WAREHOUSE_ENV

    if destination.is_duckdb:
        return {WAREHOUSE_ENV: str(duckdb_file)}
    c = destination.credentials
    return {
        "MPAC_POSTGRES_HOST": str(c.host),
        "MPAC_POSTGRES_PORT": str(c.port or 5432),
        "MPAC_POSTGRES_USER": str(c.username),
        "MPAC_POSTGRES_DBNAME": str(c.database),
        "DBT_ENV_SECRET_MPAC_POSTGRES_PASSWORD": str(c.password or ""),
        SCHEMA_SUFFIX_ENV: SHADOW_SUFFIX if shadow else "",
    }


# ---- Postgres connections: one sentence for every way they fail -------------------------------


def explain_postgres_error(error: BaseException, destination: Destination) -> UserError | None:
    """One sentence for a connection failure a user can fix; None for anything else. The
    server's own message names the user and host only, but is not repeated beyond its kind."""
    text = str(error).lower()
    where = destination.describe(Path())
    if "password authentication failed" in text or "no password supplied" in text:
        return UserError(
            f"{where} refused the password of user {destination.credentials.username}: check "
            "[destination.postgres] credentials in .dlt/secrets.toml or "
            "DESTINATION__POSTGRES__CREDENTIALS."
        )
    if f'database "{str(destination.credentials.database).lower()}" does not exist' in text:
        return UserError(f"{where}: the database does not exist; create it, or name another.")
    if any(
        word in text
        for word in (
            "connection refused",
            "could not connect",
            "could not translate host name",
            "timeout expired",
            "no route to host",
            "connection timed out",
            "server closed the connection",
        )
    ):
        return UserError(
            f"cannot reach {where}: check that the server runs and the host and port in the "
            "credentials (nothing was changed)."
        )
    return None


def postgres_connect(destination: Destination, read_only: bool = False) -> Any:
    """A psycopg2 connection, or one sentence when the server is unreachable or says no."""
    import psycopg2

    c = destination.credentials
    options = "-cdefault_transaction_read_only=on" if read_only else ""
    try:
        connection = psycopg2.connect(
            host=c.host,
            port=c.port or 5432,
            user=c.username,
            password=c.password,
            dbname=c.database,
            connect_timeout=c.connect_timeout,
            options=options,
        )
    except psycopg2.Error as error:
        explained = explain_postgres_error(error, destination)
        if explained is None:
            raise
        raise explained from None
    connection.autocommit = True
    return connection


def postgres_arrow_connect(destination: Destination) -> Any:
    """A read-only ADBC connection (results as Arrow tables, as the readers fetch the marts), or
    one sentence when the server is unreachable or says no (as postgres_connect)."""
    import copy

    import adbc_driver_postgresql.dbapi as adbc

    credentials = copy.copy(destination.credentials)
    query = dict(credentials.query or {})
    query.setdefault("connect_timeout", str(credentials.connect_timeout))
    query["options"] = f"{query.get('options', '')} -cdefault_transaction_read_only=on".strip()
    credentials.query = query
    try:
        return adbc.connect(credentials.to_native_representation())
    except adbc.Error as error:
        explained = explain_postgres_error(error, destination)
        if explained is None:
            raise
        raise explained from None


class QmarkConnection:
    """A psycopg2 connection that takes DuckDB's `?` placeholders, so one query text serves
    both destinations (`connection.execute(sql, params).fetchall()`)."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        cursor = self._connection.cursor()
        cursor.execute(sql.replace("%", "%%").replace("?", "%s"), tuple(params or ()))
        return cursor

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> QmarkConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_reader(warehouse: Path, destination: Destination) -> Any:
    """A read-only connection with `execute(sql, params)` (`?` placeholders) on either
    destination; closes on leaving a `with` block."""
    from pipelines.warehouse import open_read_only

    if destination.is_duckdb:
        return open_read_only(warehouse)
    return QmarkConnection(postgres_connect(destination, read_only=True))


# ---- the single writer on Postgres: an advisory lock held for the run --------------------------

_held: dict[str, tuple[Any, int]] = {}
_held_guard = threading.Lock()


@contextmanager
def advisory_lock(destination: Destination, wait: float = 0) -> Iterator[None]:
    """Hold the warehouse's session-level advisory lock for the block; reentrant in a process.

    It is the server's, so it covers every machine writing to this database, and it dies with
    the session of a killed run. DuckDB needs none: its file lock (writing.writer_lock) is it.
    """
    if destination.is_duckdb:
        yield
        return
    key = destination.describe(Path())
    with _held_guard:
        held = _held.get(key)
        if held is not None:
            _held[key] = (held[0], held[1] + 1)
    if held is None:
        connection = postgres_connect(destination)
        deadline = time.monotonic() + wait
        announced = False
        while True:
            with connection.cursor() as cursor:
                cursor.execute("select pg_try_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
                row = cursor.fetchone()
            if row and row[0]:
                break
            if time.monotonic() >= deadline:
                connection.close()
                waited = f" after waiting {wait:g} s" if wait > 0 else ""
                raise UserError(
                    f"another run is writing to {key}{waited}: try again when it is done, or "
                    "pass --wait SECONDS."
                )
            if not announced:
                import sys

                print(
                    f"another run is writing to {key}: waiting up to {wait:g} s for it to finish",
                    file=sys.stderr,
                    flush=True,
                )
                announced = True
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        with _held_guard:
            _held[key] = (connection, 1)
    try:
        yield
    finally:
        with _held_guard:
            connection, count = _held[key]
            if count > 1:
                _held[key] = (connection, count - 1)
            else:
                del _held[key]
                connection.close()  # closing the session releases the lock


def swap_shadow_schemas(destination: Destination) -> float:
    """Replace staging, intermediate and marts by the `__next` schemas dbt just built, in one
    transaction: a reader sees the old set or the new one, never a mix (Postgres DDL is
    transactional; views follow the renamed schemas, since they refer to tables by oid).
    Returns the seconds it took."""
    started = time.perf_counter()
    connection = postgres_connect(destination)
    try:
        connection.autocommit = False
        with connection.cursor() as cursor:
            # Readers of the old marts hold locks the drop waits for: wait, never fail a build.
            cursor.execute("set local lock_timeout = 0")
            for schema in DBT_SCHEMAS:
                cursor.execute(f'drop schema if exists "{schema}" cascade')
                cursor.execute(
                    "select 1 from information_schema.schemata where schema_name = %s",
                    (schema + SHADOW_SUFFIX,),
                )
                if cursor.fetchone():
                    cursor.execute(f'alter schema "{schema}{SHADOW_SUFFIX}" rename to "{schema}"')
        connection.commit()
    finally:
        connection.close()
    return time.perf_counter() - started


def drop_shadow_schemas(destination: Destination) -> None:
    """Start a build from empty shadow schemas (a failed build's leftovers go)."""
    with postgres_connect(destination) as connection, connection.cursor() as cursor:
        for schema in DBT_SCHEMAS:
            cursor.execute(f'drop schema if exists "{schema}{SHADOW_SUFFIX}" cascade')
    connection.close()

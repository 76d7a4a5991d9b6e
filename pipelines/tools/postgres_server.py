"""A throwaway Postgres server from the machine's binaries (pytest-postgresql's executor), for
the tests and `make bench`: one password-protected role (allowed to create databases) on
127.0.0.1, deleted when done."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

# Debian's server binaries are not on PATH: pg_ctl is looked up there after PATH.
DEBIAN_BINARIES = "/usr/lib/postgresql/*/bin/pg_ctl"
ROLE = "mpac"
DATABASE = "mpac"


def find_pg_ctl() -> str | None:
    """pg_ctl on PATH, else the newest Debian server's."""
    found = shutil.which("pg_ctl")
    if found:
        return found
    candidates = sorted(glob.glob(DEBIAN_BINARIES), key=lambda p: int(Path(p).parts[-3]))
    return candidates[-1] if candidates else None


def _as_server_user(pg_ctl: str, folder: Path) -> str:
    """pg_ctl refuses to run as root: as root, a wrapper that runs it as `postgres`, owning
    `folder` (CI containers run as root)."""
    if os.geteuid() != 0:
        return pg_ctl
    user = pwd.getpwnam("postgres")
    os.chown(folder, user.pw_uid, user.pw_gid)
    wrapper = folder / "pg_ctl"
    wrapper.write_text(f'#!/bin/sh\nexec runuser -u postgres -- "{pg_ctl}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(wrapper)


def _connect_when_ready(psycopg2: Any, **arguments: Any) -> Any:
    """The first connection: the server may still be recovering/starting on a busy machine."""
    deadline = time.monotonic() + 300
    while True:
        try:
            return psycopg2.connect(dbname="postgres", **arguments)
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@contextmanager
def throwaway_postgres(pg_ctl: str) -> Iterator[str]:
    """Start a server, yield its URL (role `mpac` with a random password, database `mpac`),
    stop it and delete its files at the end."""
    import psycopg2
    from port_for import get_port
    from pytest_postgresql.executor import PostgreSQLExecutor

    folder = Path(tempfile.mkdtemp(prefix="mpac-pg-"))
    folder.chmod(0o755)
    executable = _as_server_user(pg_ctl, folder)
    port = get_port(None)
    assert port is not None
    executor = PostgreSQLExecutor(
        executable=executable,
        host="127.0.0.1",
        port=port,
        datadir=str(folder / "data"),
        unixsocketdir=str(folder),
        logfile=str(folder / "server.log"),
        # A busy CI machine can take more than pg_ctl's default minute to start a server.
        startparams="-w -t 300",
        timeout=300,
        dbname=DATABASE,
        # fsync off: a throwaway server, and CI time matters more than crash safety here.
        postgres_options="-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
    )
    password = secrets.token_hex(12)
    try:
        executor.start()
        # initdb trusts everyone; from here on TCP asks for a password (the tests of a wrong
        # password need a server that checks it), the socket stays trusted for set-up.
        admin = _connect_when_ready(psycopg2, host=str(folder), port=port, user="postgres")
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f"create role {ROLE} login createdb password %s", (password,))
            cursor.execute(f"create database {DATABASE} owner {ROLE}")
            # Tests drop their databases `with (force)`, past dlt's pooled sessions.
            cursor.execute(f"grant pg_signal_backend to {ROLE}")
            hba = (folder / "data" / "pg_hba.conf").resolve()
            cursor.execute("select pg_reload_conf()")
        hba.write_text(
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
            "host all all ::1/128 scram-sha-256\n"
        )
        with admin.cursor() as cursor:
            cursor.execute("select pg_reload_conf()")
        admin.close()
        yield f"postgresql://{ROLE}:{password}@127.0.0.1:{port}/{DATABASE}"
    finally:
        with suppress(subprocess.CalledProcessError, OSError):
            executor.stop()
        shutil.rmtree(folder, ignore_errors=True)


def with_database(url: str, database: str) -> str:
    """`url` (postgresql://...) naming another database."""
    return f"{url.rsplit('/', 1)[0]}/{database}"


@contextmanager
def fresh_database(server: str, prefix: str) -> Iterator[str]:
    """A new, empty database on `server` (a URL whose role may create databases), yielded as
    its URL and dropped at the end, whoever is still connected."""
    import psycopg2

    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = psycopg2.connect(server)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"create database {name}")
        yield with_database(server, name)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"drop database if exists {name} with (force)")
        admin.close()

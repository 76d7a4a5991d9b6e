"""`make bench`: the pipeline beside DuckDB's own speed on the same data, per vendor size.

For each size (default: medium = 100k licenses, then large = 1.04M) one table: phase, seconds,
rows/s, peak RSS and the ratio to the ceiling measured in the same run. The ceiling is DuckDB's
`read_json` of the very export files the backfill downloads, so a busy machine slows both sides
alike and the ratio stays comparable. Every phase runs in its own process (the simulator too),
so each peak RSS is that process's alone (os.wait4). A benchmark asserts nothing.

When a Postgres is at hand ($MPAC_BENCH_POSTGRES_URL, whose user may create a database, or a
throwaway server started from the machine's binaries), the same runs are timed into Postgres
too, beside DuckDB's, on the same simulated vendor.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from pipelines.marketplace import settings
from pipelines.marketplace.client import MarketplaceClient
from pipelines.marketplace.helpers import license_windows, parse_date, window_params, windows

# The exports a backfill of licenses + transactions downloads, as (kind, path, params).
Export = tuple[str, str, dict[str, str]]


@dataclass
class Phase:
    name: str
    seconds: float
    rows: int | None = None
    peak_mb: float | None = None
    # The process's own CPU seconds (user + system): on a shared machine the wall clock also
    # counts waiting for a core, and for the simulator in another process.
    cpu: float | None = None
    # Ratio to the ceiling: the ceiling's seconds over this phase's (1.0 = DuckDB's own speed).
    compare: bool = False
    note: str = ""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def timed(
    command: list[str], env: dict[str, str] | None = None, stdout: Any = None
) -> tuple[float, float, float, int]:
    """Run a command to its end: (wall seconds, its peak RSS in MB, its CPU seconds, exit code)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=stdout)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in KiB on Linux.
    cpu = usage.ru_utime + usage.ru_stime
    return time.perf_counter() - started, usage.ru_maxrss / 1024, cpu, process.returncode


def backfill_exports(today: dt.date) -> list[Export]:
    """The same plan as the backfill (extraction.license_records / transaction_records)."""
    first = parse_date(settings.DEFAULT_START_DATE, "start_date")
    plan: list[Export] = [
        (
            "licenses",
            "licenses",
            {
                **settings.LICENSE_FLAGS,
                **window_params(w),
                **(settings.INSIGHTS_FLAG if w.insights else {}),
            },
        )
        for w in license_windows(first)
    ]
    plan += [
        ("transactions", "sales/transactions", {**settings.TRANSACTION_FLAGS, **window_params(w)})
        for w in windows(first, today, settings.BACKFILL_WINDOW_MONTHS)
    ]
    return plan


def download(client: MarketplaceClient, plan: list[Export], folder: Path) -> tuple[float, int]:
    """Initiate every export, wait for each, stream each body to a file: (seconds, bytes)."""
    started = time.perf_counter()
    handles = [client.initiate_export(path, params) for _, path, params in plan]
    total = 0
    raw = httpx.Client(auth=httpx.BasicAuth(*_credentials()), timeout=600)
    for number, ((kind, _, _), handle) in enumerate(zip(plan, handles, strict=True)):
        while client.export_status(handle) != "COMPLETED":
            time.sleep(0.05)
        target = folder / f"{kind}-{number:02d}.json"
        with raw.stream("GET", handle.download_url) as response, target.open("wb") as out:
            response.raise_for_status()
            for chunk in response.iter_bytes(1 << 20):
                out.write(chunk)
                total += len(chunk)
    raw.close()
    return time.perf_counter() - started, total


def _credentials() -> tuple[str, str]:
    from pipelines.simulator.state import DEFAULT_API_TOKEN, DEFAULT_EMAIL

    return DEFAULT_EMAIL, DEFAULT_API_TOKEN


# Runs in a child process so that its peak RSS is its own; prints the row count.
_CEILING = """
import sys, duckdb
folder, database = sys.argv[1], sys.argv[2]
con = duckdb.connect(database)
con.execute("set memory_limit = '1GB'")
con.execute("set enable_progress_bar = false")
rows = 0
for kind in ("licenses", "transactions"):
    con.execute(
        f"create table {kind} as select * from read_json('{folder}/{kind}-*.json', "
        "format = 'array', union_by_name = true)"
    )
    rows += con.execute(f"select count(*) from {kind}").fetchone()[0]
print(rows)
"""


def ceiling(folder: Path, database: Path) -> tuple[Phase, int]:
    """DuckDB's read_json of the downloaded files into tables, in a child process."""
    out = folder / "ceiling.out"
    with out.open("w") as sink:
        seconds, peak, cpu, code = timed(
            [sys.executable, "-c", _CEILING, str(folder), str(database)], stdout=sink
        )
    rows = int(out.read_text().split()[-1]) if code == 0 else 0
    phase = Phase("ceiling: DuckDB read_json", seconds, rows, peak, cpu, True)
    return phase, rows


def _mpac(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *arguments]


def bench_size(size: str, seed: str, keep: Path | None, postgres: bool) -> list[Phase]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    simulator = subprocess.Popen(
        _mpac("simulate", "--port", str(port), "--size", size, "--seed", seed),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    phases: list[Phase] = []
    try:
        state = _wait_for(url, simulator, timeout=1800)
        phases.append(
            Phase(
                "simulator start-up",
                time.perf_counter() - started,
                note=", ".join(f"{k} {v:,}" for k, v in state["counts"].items()),
            )
        )
        # The metric ground truth is computed on the first metric request (minutes for a large
        # vendor, blocking the simulator): before any clock starts.
        warm = time.perf_counter()
        httpx.get(f"{url}/admin/expected/churn", timeout=3600).raise_for_status()
        phases.append(Phase("simulator metrics", time.perf_counter() - warm))
        env = {
            "SOURCES__MARKETPLACE__VENDOR_ID": str(state["vendor_id"]),
            "SOURCES__MARKETPLACE__BASE_URL": url,
            "SOURCES__MARKETPLACE__EMAIL": _credentials()[0],
            "SOURCES__MARKETPLACE__API_TOKEN": _credentials()[1],
            "SOURCES__MARKETPLACE__EXPORT_POLL_SECONDS": "0.2",
        }
        client = MarketplaceClient(
            base_url=url,
            email=_credentials()[0],
            api_token=_credentials()[1],
            vendor_id=str(state["vendor_id"]),
        )
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            today = dt.date.fromisoformat(state["today"])
            seconds, size_bytes = download(client, backfill_exports(today), folder)
            ceiling_phase, rows = ceiling(folder, folder / "ceiling.duckdb")
            phases.append(_serving("simulator export serving", seconds, rows, size_bytes))
            phases.append(ceiling_phase)
            for path in folder.glob("*.json"):
                path.unlink()
            # The same exports again (what the backfill below downloads): the simulator now
            # streams the bodies it rendered above.
            seconds, size_bytes = download(client, backfill_exports(today), folder)
            client.close()
            phases.append(_serving("simulator export serving again", seconds, rows, size_bytes))
            for path in folder.glob("*.json"):
                path.unlink()
            # --keep: the warehouse (and its run state beside it) outlives the run, to look at
            # or to time dbt on again.
            home = folder if keep is None else keep / size
            home.mkdir(parents=True, exist_ok=True)
            warehouse = str(home / "bench.duckdb")
            phases += pipeline_phases(warehouse, env, rows, "")
            if not postgres:
                phases.append(Phase("postgres", 0, note="skipped: --no-postgres"))
                return phases
            with bench_postgres() as pg_url:
                if pg_url is None:
                    phases.append(Phase("postgres", 0, note=NO_POSTGRES))
                else:
                    pg_env = {
                        **env,
                        "DESTINATION_TYPE": "postgres",
                        "DESTINATION__POSTGRES__CREDENTIALS": pg_url,
                    }
                    phases += pipeline_phases(warehouse, pg_env, rows, "postgres: ")
    finally:
        simulator.terminate()
        simulator.wait(timeout=60)
    return phases


def _serving(name: str, seconds: float, rows: int, size_bytes: int) -> Phase:
    megabytes = size_bytes / 2**20
    note = f"{megabytes:,.0f} MB, {megabytes / seconds:,.1f} MB/s"
    return Phase(name, seconds, rows, compare=True, note=note)


NO_POSTGRES = "skipped: no $MPAC_BENCH_POSTGRES_URL and no pg_ctl to start a server"
BENCH_POSTGRES_ENV = "MPAC_BENCH_POSTGRES_URL"


@contextmanager
def bench_postgres() -> Iterator[str | None]:
    """A fresh database for the Postgres phases (dropped afterwards), or None without one."""
    from pipelines.tools.postgres_server import find_pg_ctl, fresh_database, throwaway_postgres

    given = os.environ.get(BENCH_POSTGRES_ENV)
    pg_ctl = None if given else find_pg_ctl()
    server: AbstractContextManager[str]
    if given:
        server = nullcontext(given)
    elif pg_ctl is not None:
        server = throwaway_postgres(pg_ctl)
    else:
        yield None
        return
    with server as url, fresh_database(url, "mpac_bench") as database:
        yield database


def pipeline_phases(warehouse: str, env: dict[str, str], rows: int, prefix: str) -> list[Phase]:
    """Backfill, incremental and no-op runs, then dbt build, each in its own process."""
    phases: list[Phase] = []
    steps = [
        ("backfill licenses + transactions", ["--resources", "licenses,transactions"]),
        (
            "backfill other resources",
            [
                "--resources",
                "feedback,marketing_attribution,metric_aggregates,metric_events",
            ],
        ),
        # The first incremental run re-reads and loads its look-back windows; the next
        # finds them unchanged (nothing changed in between): that is the no-op run.
        ("first incremental run", []),
        ("no-op incremental run", []),
    ]
    for name, extra in steps:
        seconds, peak, cpu, code = timed(
            _mpac("run", "--no-transform", "--warehouse", warehouse, *extra), env
        )
        first = name.startswith("backfill licenses")
        phases.append(
            Phase(
                prefix + name,
                seconds,
                rows if first else None,
                peak,
                cpu,
                compare=first,
                note="" if code == 0 else f"exit {code}",
            )
        )
    seconds, peak, cpu, code = timed(_mpac("transform", "--warehouse", warehouse), env)
    note = "" if code == 0 else f"exit {code}"
    phases.append(Phase(prefix + "dbt build", seconds, None, peak, cpu, note=note))
    return phases


def _wait_for(url: str, process: subprocess.Popen[Any], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the simulator exited with code {process.returncode}")
        try:
            state: dict[str, Any] = httpx.get(f"{url}/admin/state", timeout=5).json()
            return state
        except httpx.HTTPError:
            time.sleep(0.5)
    raise SystemExit("the simulator did not start in time")


def render(size: str, phases: list[Phase]) -> Table:
    table = Table(title=f"{size} vendor")
    for column in ("phase", "seconds", "CPU s", "rows/s", "peak RSS MB", "x ceiling", "note"):
        table.add_column(column, justify="left" if column in ("phase", "note") else "right")
    top = next((p for p in phases if p.name.startswith("ceiling")), None)
    for phase in phases:
        rate = f"{phase.rows / phase.seconds:,.0f}" if phase.rows else ""
        ratio = f"{top.seconds / phase.seconds:.2f}" if top and phase.compare else ""
        peak = f"{phase.peak_mb:,.0f}" if phase.peak_mb is not None else ""
        cpu = f"{phase.cpu:,.1f}" if phase.cpu is not None else ""
        table.add_row(phase.name, f"{phase.seconds:,.1f}", cpu, rate, peak, ratio, phase.note)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="medium,large", help="comma-separated size names")
    parser.add_argument("--seed", default="42")
    parser.add_argument(
        "--keep", type=Path, help="keep each size's warehouse in KEEP/<size>/ (default: deleted)"
    )
    parser.add_argument(
        "--no-postgres",
        dest="postgres",
        action="store_false",
        help="time DuckDB only, even when a Postgres is at hand",
    )
    options = parser.parse_args()
    # Wide enough for the table on one line per phase, whatever the terminal says.
    console = Console(width=160)
    tables = []
    for size in options.sizes.split(","):
        console.print(f"[bold]{size}[/]: running (load average {os.getloadavg()[0]:.1f})")
        phases = bench_size(size.strip(), options.seed, options.keep, options.postgres)
        tables.append(render(size, phases))
        console.print(tables[-1])
    console.print("\nSummary")
    for table in tables:
        console.print(table)


if __name__ == "__main__":
    main()

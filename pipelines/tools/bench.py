"""`make bench`: a large-vendor backfill into a temporary warehouse; prints rows/s and peak RSS.

The simulator runs in its own process so that the figures are the pipeline's alone (its CPU
and memory would otherwise be counted with ours). A benchmark asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from pipelines import runner


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _wait_for(url: str, process: subprocess.Popen[bytes], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the simulator exited with code {process.returncode}")
        try:
            return httpx.get(f"{url}/admin/state", timeout=5).json()
        except httpx.HTTPError:
            time.sleep(0.5)
    raise SystemExit("the simulator did not start in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="large", help="tiny, small, large or a license count")
    parser.add_argument("--seed", default="42")
    parser.add_argument("--resources", default=None, help="comma-separated subset (default: all)")
    options = parser.parse_args()
    console = Console()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    logging.getLogger("pipelines.marketplace").setLevel(logging.INFO)

    from pipelines.simulator.state import DEFAULT_API_TOKEN, DEFAULT_EMAIL

    port = _free_port()
    started = time.perf_counter()
    simulator = subprocess.Popen(
        [
            sys.executable, "-m", "pipelines.cli", "simulate",
            "--port", str(port), "--size", options.size, "--seed", options.seed,
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        state = _wait_for(url, simulator, timeout=900)
        console.print(
            f"simulator: size {options.size}, up in {time.perf_counter() - started:.0f} s, "
            f"records {state.get('counts')}"
        )
        # The simulator computes its metric ground truth on the first metric request (minutes
        # for a large vendor, blocking its event loop): do it before the clock starts, so the
        # figures measure the pipeline rather than the simulator.
        warm = time.perf_counter()
        httpx.get(f"{url}/admin/expected/churn", timeout=1800).raise_for_status()
        console.print(f"simulator metrics computed in {time.perf_counter() - warm:.0f} s")
        # Not RunningSimulator.env(): this simulator is another process, known by its URL only.
        os.environ.update(
            {
                "SOURCES__MARKETPLACE__VENDOR_ID": str(state["vendor_id"]),
                "SOURCES__MARKETPLACE__BASE_URL": url,
                "SOURCES__MARKETPLACE__EMAIL": DEFAULT_EMAIL,
                "SOURCES__MARKETPLACE__API_TOKEN": DEFAULT_API_TOKEN,
                "SOURCES__MARKETPLACE__EXPORT_POLL_SECONDS": "0.2",
            }
        )
        with tempfile.TemporaryDirectory() as scratch:
            warehouse = Path(scratch) / "bench.duckdb"
            rss_before = _peak_rss_mb()
            cpu_before = _cpu_seconds()
            started = time.perf_counter()
            result = runner.run(warehouse, resources=options.resources, transform=False)
            seconds = time.perf_counter() - started
            cpu = _cpu_seconds() - cpu_before
            size_mb = warehouse.stat().st_size / 2**20
    finally:
        simulator.terminate()
        simulator.wait(timeout=30)

    rows = sum(result.rows.values())
    table = Table(title=f"Backfill of a {options.size} vendor (parquet loader)")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in sorted(result.rows.items()):
        table.add_row(name, f"{count:,}")
    console.print(table)
    console.print(f"rows loaded      {rows:,} (all tables, child tables included)")
    console.print(f"wall time        {seconds:.1f} s")
    console.print(
        f"throughput       {rows / seconds:,.0f} rows/s (API + extract + normalize + load)"
    )
    console.print(
        f"pipeline CPU     {cpu:.1f} s = {rows / max(cpu, 0.001):,.0f} rows per CPU second "
        "(the rate a faster API would allow: the one-process simulator is usually the limit)"
    )
    console.print(
        f"peak RSS         {_peak_rss_mb():,.0f} MB (before the run: {rss_before:,.0f} MB)"
    )
    console.print(f"warehouse size   {size_mb:,.1f} MB")


if __name__ == "__main__":
    main()

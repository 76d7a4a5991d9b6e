"""The commands as a user runs them (subprocesses, as cron or a terminal would): log files
with one line per record, progress in a terminal, failure notices, the dashboard, the digest,
the docs and the demo's signposts."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
MPAC = str(Path(sys.executable).parent / "mpac")
# 2026-12-03T13:26:13.396471Z [info] ...
RECORD = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z \[(debug|info|warning|error)\] \S")


def environment(sim: Any, **more: str) -> dict[str, str]:
    return {**os.environ, **sim.env(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **more}


@pytest.fixture
def inbox() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A Slack-compatible webhook on 127.0.0.1: its URL and the messages it received."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/s3cr3t", received
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@dataclass
class LoggedRun:
    warehouse: Path
    log: Path
    returncode: int


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory: pytest.TempPathFactory) -> LoggedRun:
    """`mpac run` (load and dbt build) of a tiny vendor as cron runs it, once for the tests that
    read its log or its warehouse (they share an xdist group, so they meet on one worker)."""
    from pipelines.simulator.harness import run_simulator

    folder = tmp_path_factory.mktemp("logged-run")
    warehouse = folder / "marketplace.duckdb"
    log = folder / "run.log"
    with run_simulator(size="tiny") as sim, log.open("a") as out:
        # The README's cron line: stdout and stderr appended to a file.
        done = subprocess.run(
            [MPAC, "run", "--warehouse", str(warehouse)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment(sim, COLUMNS="80"),
            cwd=ROOT,
            timeout=600,
        )
    return LoggedRun(warehouse, log, done.returncode)


@pytest.mark.xdist_group("logged_run")
def test_a_run_logged_to_a_file_is_one_line_per_record(logged_run: LoggedRun) -> None:
    warehouse, log = logged_run.warehouse, logged_run.log
    lines = log.read_text().splitlines()
    assert logged_run.returncode == 0, lines[-20:]
    assert [line for line in lines if not RECORD.match(line)] == []
    assert [line for line in lines if line != line.rstrip()] == []
    start = next(line for line in lines if "mpac run started" in line)
    for field in ("vendor=", "api_version=v2", f"warehouse={warehouse}", "run_id="):
        assert field in start
    end = next(line for line in lines if "mpac run finished" in line)
    for field in ("outcome=ok", "rows=", "seconds="):
        assert field in end
    assert any("dbt build" in line and "models built" in line for line in lines)


def test_json_log_lines(make_simulator: Any, tmp_path: Path) -> None:
    sim = make_simulator(size="tiny")
    done = subprocess.run(
        [
            MPAC,
            "--log-format",
            "json",
            "run",
            "--no-transform",
            "--warehouse",
            str(tmp_path / "w.duckdb"),
        ],
        capture_output=True,
        text=True,
        env=environment(sim),
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert records[0]["event"] == "mpac run started"
    assert records[-1]["event"] == "mpac run finished"
    assert all(record["timestamp"].endswith("Z") for record in records)


@pytest.mark.usefixtures("models_only")  # the subject is the bars; built_warehouse tests the data
def test_a_terminal_shows_progress_of_load_and_dbt(make_simulator: Any, tmp_path: Path) -> None:
    sim = make_simulator(size="tiny")
    pid, terminal = pty.fork()
    if pid == 0:  # the child: mpac in a pseudo-terminal
        os.execve(
            MPAC,
            [MPAC, "run", "--warehouse", str(tmp_path / "marketplace.duckdb")],
            environment(sim, TERM="xterm-256color", COLUMNS="120"),
        )
    output = b""
    while True:
        ready, _, _ = select.select([terminal], [], [], 300)
        if not ready:
            break
        try:
            chunk = os.read(terminal, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode("utf-8", "replace"))
    assert os.waitstatus_to_exitcode(status) == 0, text[-2000:]
    for bar in ("normalize", "load", "dbt build: models and tests"):
        assert bar in text, f"no {bar!r} progress"


def test_a_failed_run_notifies_the_webhook(
    make_simulator: Any, tmp_path: Path, inbox: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = inbox
    sim = make_simulator(size="tiny")
    env = environment(sim, SOURCES__MARKETPLACE__API_TOKEN="wrong-token", MPAC_NOTIFY_URL=url)
    done = subprocess.run(
        [MPAC, "run", "--warehouse", str(tmp_path / "w.duckdb")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 2
    assert len(received) == 1
    text = received[0]["text"]
    assert text.startswith("mpac run failed")
    assert "wrong-token" not in text + done.stderr
    assert "s3cr3t" not in done.stderr


@pytest.mark.xdist_group("logged_run")
def test_dashboard_digest_and_report_from_the_command_line(
    logged_run: LoggedRun, inbox: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = inbox
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    folder, warehouse = logged_run.warehouse.parent, str(logged_run.warehouse)

    def mpac(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MPAC, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600
        )

    assert logged_run.returncode == 0
    shown = mpac("dashboard", "--warehouse", warehouse)
    assert shown.returncode == 0, shown.stderr
    assert (folder / "marketplace.dashboard.html").exists()
    assert str(folder / "marketplace.dashboard.html") in shown.stdout
    digest = mpac("digest", "--warehouse", warehouse, "--notify", url)
    assert digest.returncode == 0, digest.stderr
    assert digest.stdout.startswith("# Marketplace digest: marketplace")
    assert received == [{"text": digest.stdout}]
    report = mpac("report", "--warehouse", warehouse, "--format", "json", "--months", "1")
    assert json.loads(report.stdout)["metrics"]["mrr"]
    wrong = mpac("report", "--warehouse", warehouse, "--app", "no.such.app")
    assert wrong.returncode == 2
    assert "no app 'no.such.app'" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_make_docs_without_a_warehouse_refuses_in_one_sentence(tmp_path: Path) -> None:
    missing = tmp_path / "none.duckdb"
    done = subprocess.run(
        ["make", "--no-print-directory", "docs", f"MPAC_WAREHOUSE={missing}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode != 0
    assert f"no warehouse at {missing}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not missing.exists()


def test_the_demo_says_where_its_warehouse_dashboard_and_docs_are(tmp_path: Path) -> None:
    warehouse = tmp_path / "demo.duckdb"
    # The demo moves under tools/ with issue 7.
    module = "pipelines.tools.demo" if find_spec("pipelines.tools") else "pipelines.demo"
    done = subprocess.run(
        [sys.executable, "-m", module, "--size", "tiny", "--warehouse", str(warehouse)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for label, path in (
        ("warehouse", warehouse),
        ("dashboard", tmp_path / "demo.dashboard.html"),
        ("docs", tmp_path / "demo.docs.html"),
    ):
        assert re.search(rf"{label}:\s+{re.escape(str(path))}", done.stdout), label
        assert path.exists(), label


def test_the_readme_points_mpac_run_at_mpac_simulate(tmp_path: Path) -> None:
    import socket
    import time

    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Trying it against the simulator", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    assert "mpac simulate --port 8787" in block
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    # The README's settings as written, on a free port; fast polling only to keep the test short.
    for name, value in re.findall(r"(SOURCES__MARKETPLACE__\w+)=(\S+)", block):
        env[name] = value.replace("8787", str(port))
    env["SOURCES__MARKETPLACE__EXPORT_POLL_SECONDS"] = "0.05"
    server = subprocess.Popen(
        [MPAC, "simulate", "--port", str(port), "--size", "tiny"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        done = subprocess.run(
            [MPAC, "run", "--no-transform", "--warehouse", str(tmp_path / "sim.duckdb")],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=600,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "mpac run finished" in done.stderr

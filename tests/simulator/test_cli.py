"""`mpac simulate`: one-line errors for bad arguments, and a real server from the command line."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from pipelines.errors import UserError
from pipelines.simulator.serve import serve

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": "huge"}, "Unknown vendor size"),
        ({"faults": "{oops"}, "faults JSON"),
        ({"faults": "stormy"}, "Unknown fault profile"),
        ({"port": 70000}, "not a TCP port"),
    ],
)
def test_bad_arguments_raise_one_user_error(kwargs, message):
    with pytest.raises(UserError, match=message):
        serve(**{"port": free_port(), **kwargs})


def test_port_in_use_is_a_user_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(UserError, match="in use"):
            serve(port=taken.getsockname()[1], size="tiny")


def test_mpac_simulate_serves_and_prints_urls_and_credentials(tmp_path):
    port = free_port()
    log = tmp_path / "simulate.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipelines.cli",
                "simulate",
                "--port",
                str(port),
                "--size",
                "tiny",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200"},
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                state = httpx.get(f"http://127.0.0.1:{port}/admin/state").json()
                break
            except httpx.TransportError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        response = httpx.get(
            f"http://127.0.0.1:{port}/rest/2/vendors/{state['vendor_id']}/reporting/licenses",
            auth=("simulator@example.com", "sim-api-token"),
        )
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    text = log.read_text()
    assert f"/rest/2/vendors/{state['vendor_id']}/reporting" in text
    assert f"/rest/3/reporting/developer-space/{state['developer_id']}" in text
    assert "simulator@example.com" in text
    assert "/admin/state" in text
    # The request log must never show the Authorization header.
    assert base64.b64encode(b"simulator@example.com:sim-api-token").decode() not in text
    assert "GET /rest/2/vendors/" in text

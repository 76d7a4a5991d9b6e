"""`mpac digest`: only what is new since the last digest, as Markdown and to a webhook on
127.0.0.1; a refusing webhook is one sentence that never shows the webhook's secret path."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipelines import runner
from pipelines.digest import collect, run_digest, state_path
from pipelines.errors import UserError

SECRET_PATH = "/services/T000/B000/s3cr3tT0ken"


@dataclass
class Receiver:
    url: str
    status: int = 200
    messages: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A Slack-compatible incoming webhook on 127.0.0.1 that records what it is sent."""
    found = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            found.paths.append(self.path)
            found.messages.append(json.loads(body))
            self.send_response(found.status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.url = f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def renewed(sim: Any) -> set[tuple[str, str]]:
    """The simulator's own ground truth: renewed opportunities, by license and end."""
    return {
        (str(o["license_key"]), str(o["end_date"]))
        for o in sim.expected().renewal_opportunities
        if o["outcome"] == "renewed"
    }


@pytest.mark.integration
@pytest.mark.usefixtures("models_only")  # the digest reads the marts; the demo tests that data
def test_the_digest_reports_what_is_new_and_posts_it_to_the_webhook(
    simulator: Any, built_copy: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    # A tiny vendor loaded and transformed (a copy of the shared build of what `sim` serves).
    sim, warehouse = simulator, built_copy
    for name, value in sim.env().items():
        monkeypatch.setenv(name, value)

    first = run_digest(warehouse, notify=receiver.url)
    assert "First digest of this warehouse" in first
    assert receiver.messages == [{"text": first}]
    assert receiver.paths == [SECRET_PATH]
    assert state_path(warehouse).exists()

    # Nothing ran in between: nothing is new.
    again = collect(warehouse)
    assert {kind: len(events) for kind, events in again.new.items()} == dict.fromkeys(again.new, 0)

    before = renewed(sim)
    sim.advance(30)
    runner.run(warehouse)
    later = collect(warehouse)
    assert later.previous_as_of is not None
    assert later.as_of > later.previous_as_of
    assert len(later.new["renewal"]) == len(renewed(sim) - before) > 0
    text = later.markdown("marketplace")
    assert f"Since the last digest (data as of {later.previous_as_of})" in text
    assert f"**Renewals**: {len(later.new['renewal'])}" in text


def test_a_refusing_webhook_is_one_sentence_without_its_secret(receiver: Receiver) -> None:
    from pipelines.notify import post

    receiver.status = 404
    with pytest.raises(UserError) as raised:
        post(receiver.url, "hello")
    message = str(raised.value)
    assert "refused the message (HTTP 404)" in message
    assert "s3cr3t" not in message
    assert "/services" not in message
    assert receiver.messages == [{"text": "hello"}]


def test_an_unreachable_webhook_is_one_sentence() -> None:
    from pipelines.notify import post

    with pytest.raises(UserError, match=r"could not reach the webhook at 127\.0\.0\.1"):
        post(f"http://127.0.0.1:9{SECRET_PATH}", "hello")


def test_without_marts_the_digest_refuses_in_one_sentence(tmp_path: Path) -> None:
    import duckdb

    empty = tmp_path / "w.duckdb"
    duckdb.connect(str(empty)).close()
    with pytest.raises(UserError, match="marts are not built yet"):
        collect(empty)


def test_a_burst_of_cancellations_is_flagged_as_a_spike() -> None:
    from datetime import date

    from pipelines.digest import KINDS, Digest

    cancellations = [
        {"id": str(i), "day": date(2026, 12, 1), "addon_key": "a", "detail": "Monthly"}
        for i in range(5)
    ]
    new: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    digest = Digest(date(2026, 12, 2), date(2026, 12, 1), False, new, {}, {})
    digest.new["cancellation"] = cancellations
    digest.expected_cancellations = 1.0
    assert "**spike**" in digest.markdown("w")
    digest.expected_cancellations = 3.0
    assert "**spike**" not in digest.markdown("w")

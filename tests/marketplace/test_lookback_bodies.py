"""An incremental look-back whose export bodies are the bytes of the last load is not parsed
(extraction.with_cursor with `reads`); changed bytes are parsed and loaded as before."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import httpx
import orjson
import pytest

from pipelines.marketplace import extraction
from pipelines.marketplace.client import MarketplaceClient
from pipelines.marketplace.exports import ExportLedger, ExportRunner
from pipelines.marketplace.extraction import Extraction, Read, Source, with_cursor
from tests.marketplace.test_client import make_client

EVENTS = "sales/metrics/churn/details"


class Api:
    """A churn details endpoint whose export body the test sets; paging answers the same."""

    def __init__(self) -> None:
        self.body = b"[]"
        self.export_fails = False
        self.exports = 0

    def set(self, records: list[dict[str, Any]]) -> None:
        self.body = orjson.dumps(records)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(f"{EVENTS}/export"):
            self.exports += 1
            if self.export_fails:
                return httpx.Response(500)
            return httpx.Response(200, content=self.body)
        assert request.url.path.endswith(EVENTS), request.url.path
        return httpx.Response(200, json={"_links": {}, "events": orjson.loads(self.body)})


def incremental(client: MarketplaceClient, pii: str, salt: str | None) -> Extraction:
    """An incremental run of one vendor on 2026-11-15 (3-day look-back); `salt` only for hash."""
    return Extraction(
        client=client,
        exporter=ExportRunner(client, ExportLedger(None)),
        first_day=dt.date(2026, 1, 1),
        lookback_days=3,
        backfill=False,
        today=dt.date(2026, 11, 15),
        pii=pii,
        pii_salt=salt if pii == "hash" else None,
        vendor_id="1",
    )


def events_of(start: dt.date) -> list[Read]:
    return [Read(EVENTS, "events", {"lastUpdated": start.isoformat()}, "churn events")]


def records(run: Extraction, start: dt.date | None, source: Source) -> Iterator[dict[str, Any]]:
    for read in events_of(start or run.first_day):
        for record in source(read):
            yield run.protect(record)


@dlt.resource(name="events", write_disposition="merge", primary_key="n")
def events(run: Extraction) -> Iterator[Any]:
    yield from with_cursor(
        run,
        lambda start, source: records(run, start, source),
        lambda record: record.get("lastUpdated"),
        reads=events_of,
    )


@pytest.fixture
def api() -> Api:
    return Api()


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The bodies parsed from their downloaded files (extraction.body_records calls)."""
    calls: list[Path] = []
    real = extraction.body_records

    def counting(path: Path) -> Iterator[dict[str, Any]]:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(extraction, "body_records", counting)
    return calls


class Runs:
    def __init__(self, api: Api, tmp_path: Path) -> None:
        self.api = api
        self.pipeline = dlt.pipeline(
            pipeline_name="lookback_bodies",
            destination=dlt.destinations.duckdb(str(tmp_path / "w.duckdb")),
            pipelines_dir=str(tmp_path / "pipelines"),
            dataset_name="raw",
        )
        self.pii = "keep"

    def run(self) -> int:
        """One run; the rows it loaded into `events`."""
        run = incremental(make_client(self.api, attempts=2), self.pii, "salt")
        self.pipeline.run(events(run))
        trace = self.pipeline.last_trace
        assert trace.last_normalize_info is not None
        return int(trace.last_normalize_info.row_counts.get("events", 0))

    def state(self) -> dict[str, Any]:
        sources = self.pipeline.state.get("sources") or {}
        return dict(sources["lookback_bodies"]["resources"]["events"])


@pytest.fixture
def runs(api: Api, tmp_path: Path) -> Runs:
    return Runs(api, tmp_path)


A = {"n": 1, "lastUpdated": "2026-11-14", "email": "a@example.com"}
B = {"n": 2, "lastUpdated": "2026-11-14", "email": "b@example.com"}


def loaded_once(runs: Runs) -> None:
    """A backfill, then the first incremental run, which loads its window and records the
    bytes it was parsed from."""
    runs.api.set([A, B])
    assert runs.run() == 2  # backfill (streamed, no bytes kept)
    assert "last_bytes" not in runs.state()
    assert runs.run() == 2  # the window: loaded, its bytes recorded with it
    assert runs.state()["last_bytes"]["bodies"]


def test_a_re_read_with_the_bytes_of_the_last_load_is_not_parsed_and_lands_nothing(
    runs: Runs, parsed: list[Path]
) -> None:
    loaded_once(runs)
    before = runs.state()
    parsed.clear()
    exports = runs.api.exports
    assert runs.run() == 0
    assert runs.api.exports == exports + 1  # the body was read again
    assert parsed == []  # ... and not parsed
    assert runs.state() == before


def test_changed_bytes_are_parsed_and_loaded(runs: Runs, parsed: list[Path]) -> None:
    loaded_once(runs)
    before = runs.state()
    parsed.clear()
    rewritten = {**B, "lastUpdated": "2026-11-15", "status": "refunded"}
    runs.api.set([A, rewritten])
    assert runs.run() == 2
    assert len(parsed) == 1
    after = runs.state()
    assert after["last_bytes"] != before["last_bytes"]
    assert after["cursor"] == "2026-11-15"
    # A record withdrawn from the window changes the bytes too: the window is loaded again
    # (delete-insert resources then drop what is gone).
    parsed.clear()
    runs.api.set([A])
    assert runs.run() == 1
    assert len(parsed) == 1


def test_other_bytes_with_the_same_records_are_parsed_but_land_nothing(
    runs: Runs, parsed: list[Path]
) -> None:
    loaded_once(runs)
    before = runs.state()
    parsed.clear()
    runs.api.set([B, A])  # the same records in another order: other bytes
    assert runs.run() == 0
    assert len(parsed) == 1
    # Not recorded: a state change would land on every run whose bytes merely move.
    assert runs.state() == before


def test_the_same_bytes_under_another_pii_policy_are_parsed_and_loaded(
    runs: Runs, parsed: list[Path]
) -> None:
    loaded_once(runs)
    parsed.clear()
    runs.pii = "drop"
    assert runs.run() == 2  # the records lost their email: loaded again
    assert len(parsed) == 1
    parsed.clear()
    assert runs.run() == 0  # and now these bytes under this policy are known
    assert parsed == []


def test_the_first_read_under_new_rules_records_the_bytes_once(
    runs: Runs, parsed: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an upgrade sees: a window loaded under other record-rule code, whose records are
    unchanged: parsed once and its bytes recorded under the new rules, then skipped."""
    loaded_once(runs)
    before = runs.state()["last_bytes"]
    monkeypatch.setattr(extraction, "rules_fingerprint", lambda run: "new code")
    parsed.clear()
    assert runs.run() == 0
    assert len(parsed) == 1
    assert runs.state()["last_bytes"]["rules"] == "new code"
    assert runs.state()["last_bytes"] != before
    parsed.clear()
    assert runs.run() == 0
    assert parsed == []


def test_a_paged_window_has_no_bytes_and_is_parsed_every_run(
    runs: Runs, parsed: list[Path]
) -> None:
    loaded_once(runs)
    parsed.clear()
    runs.api.export_fails = True
    runs.api.set([A, {**B, "status": "refunded"}])
    assert runs.run() == 2  # paged, loaded
    assert "last_bytes" not in runs.state()
    assert runs.run() == 0  # paged again: same records, nothing loaded
    assert parsed == []  # paging parses no body file


def test_the_rules_fingerprint_follows_the_pii_policy_and_its_salt(api: Api) -> None:
    client = make_client(api)

    def fingerprint(pii: str, salt: str | None) -> str:
        return extraction.rules_fingerprint(incremental(client, pii, salt))

    keep = fingerprint("keep", None)
    assert keep == fingerprint("keep", None)
    assert len({keep, fingerprint("drop", None), fingerprint("hash", "one")}) == 3
    assert fingerprint("hash", "one") != fingerprint("hash", "two")

"""The API client against httpx.MockTransport: paging, errors, the retry policy, exports."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from pipelines.errors import UserError
from pipelines.marketplace.client import MarketplaceClient, RetryPolicy, join_link
from pipelines.marketplace.exports import ExportLedger, ExportRunner, export_key

TOKEN = "tok-Secret-123"
BASE = "https://mp.example"


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_client(
    handler: Callable[[httpx.Request], httpx.Response],
    version: str = "v2",
    sleeps: Sleeps | None = None,
    attempts: int = 5,
    budget: float = 100.0,
) -> MarketplaceClient:
    policy = RetryPolicy(
        attempts=attempts,
        budget_seconds=budget,
        initial_wait=0.5,
        max_wait=4.0,
        sleep=sleeps if sleeps is not None else Sleeps(),
    )
    return MarketplaceClient(
        base_url=BASE,
        email="me@example.com",
        api_token=TOKEN,
        vendor_id="42",
        api_version=version,
        retry=policy,
        transport=httpx.MockTransport(handler),
    )


def page(items_key: str, items: list[dict], next_href: str | None = None) -> httpx.Response:
    links: dict = {"self": {"href": "/x"}}
    if next_href:
        links["next"] = {"href": next_href}
    return httpx.Response(200, json={"_links": links, items_key: items})


class TestLinks:
    def test_v2_relative_link_is_joined_to_the_host(self) -> None:
        href = "/rest/2/vendors/42/reporting/licenses?offset=50&limit=50"
        assert join_link(BASE, href, "/rest/2") == f"{BASE}{href}"

    def test_v3_link_without_rest_3_gets_it_back(self) -> None:
        href = "/reporting/developer-space/abc/licenses?offset=50"
        assert join_link(BASE, href, "/rest/3") == f"{BASE}/rest/3{href}"

    def test_base_url_with_a_path_is_kept(self) -> None:
        base = "https://api.example/marketplace"
        href = "/rest/3/reporting/developer-space/abc/licenses?offset=50"
        assert join_link(base, href, "/rest/3") == f"{base}{href}"
        assert join_link(base, f"/marketplace{href}", "/rest/3") == f"{base}{href}"

    def test_a_link_to_another_host_is_refused(self) -> None:
        with pytest.raises(UserError, match="another host"):
            join_link(BASE, "https://evil.example/rest/2/x", "/rest/2")


class TestPaging:
    def test_follows_next_links_until_absent_with_pages_of_50(self) -> None:
        seen: list[httpx.URL] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request.url)
            offset = int(request.url.params.get("offset", "0"))
            items = [{"n": offset + i} for i in range(50 if offset < 100 else 7)]
            nxt = f"/rest/2/vendors/42/reporting/licenses?hosting=cloud&offset={offset + 50}"
            return page("licenses", items, nxt if offset < 100 else None)

        with make_client(handler) as client:
            rows = list(client.paginate("licenses", "licenses", {"hosting": ["cloud", "server"]}))
        assert [r["n"] for r in rows] == list(range(107))
        assert len(seen) == 3
        # multi-value filters go as repeated parameters, never comma-joined
        assert seen[0].params.get_list("hosting") == ["cloud", "server"]
        assert seen[0].params["limit"] == "50"
        assert seen[1].params["offset"] == "50"

    def test_v3_resolves_the_developer_space_and_joins_short_links(self) -> None:
        paths: list[str] = []

        def handler(request: httpx.Request) -> httpx.Response:
            paths.append(request.url.path)
            if request.url.path == "/rest/3/developer-space/vendor/42":
                return httpx.Response(200, json={"developerId": "dev-1"})
            if request.url.params.get("offset") == "50":
                return page("licenses", [{"n": 2}])
            short = "/reporting/developer-space/dev-1/licenses?offset=50"
            return page("licenses", [{"n": 1}], short)

        with make_client(handler, version="v3") as client:
            rows = list(client.paginate("licenses", "licenses"))
        assert rows == [{"n": 1}, {"n": 2}]
        assert paths == [
            "/rest/3/developer-space/vendor/42",
            "/rest/3/reporting/developer-space/dev-1/licenses",
            "/rest/3/reporting/developer-space/dev-1/licenses",
        ]


class TestErrors:
    def test_401_names_the_settings_to_check(self) -> None:
        with (
            make_client(lambda r: httpx.Response(401)) as client,
            pytest.raises(UserError, match="credentials rejected: check email and api_token"),
        ):
            list(client.paginate("licenses", "licenses"))

    @pytest.mark.parametrize("status", [403, 404])
    def test_403_and_404_blame_the_vendor_id(self, status: int) -> None:
        with (
            make_client(lambda r: httpx.Response(status)) as client,
            pytest.raises(UserError, match="vendor 42 was not found or is not yours"),
        ):
            list(client.paginate("licenses", "licenses"))

    def test_the_token_is_in_no_repr_and_no_message(self) -> None:
        client = make_client(lambda r: httpx.Response(503))
        assert TOKEN not in repr(client)
        with pytest.raises(UserError) as caught:
            list(client.paginate("licenses", "licenses"))
        assert TOKEN not in str(caught.value)

    def test_the_resolved_config_masks_the_token(self) -> None:
        from pipelines.config import SourceConfig

        config = SourceConfig("42", BASE, "v2", "2016-01-01", 3, "me@example.com", TOKEN)
        assert TOKEN not in repr(config)
        assert TOKEN not in str(config)


class TestRetryPolicy:
    def test_retry_after_is_honoured(self) -> None:
        calls = iter(
            [httpx.Response(429, headers={"Retry-After": "7"}), page("licenses", [{"n": 1}])]
        )
        sleeps = Sleeps()
        with make_client(lambda r: next(calls), sleeps=sleeps) as client:
            assert list(client.paginate("licenses", "licenses")) == [{"n": 1}]
        assert sleeps == [7.0]

    def test_5xx_timeouts_drops_and_bad_bodies_are_retried_with_bounded_backoff(self) -> None:
        def timeout(request: httpx.Request) -> httpx.Response:
            raise httpx.ReadTimeout("slow", request=request)

        def dropped(request: httpx.Request) -> httpx.Response:
            raise httpx.RemoteProtocolError("peer closed connection", request=request)

        steps = [
            lambda r: httpx.Response(502),
            timeout,
            dropped,
            lambda r: httpx.Response(200, content=b'{"licenses": [{"n"'),
            lambda r: httpx.Response(200, content=b"<html>oops</html>"),
            lambda r: page("licenses", [{"n": 1}]),
        ]
        calls = iter(steps)
        sleeps = Sleeps()
        with make_client(lambda r: next(calls)(r), sleeps=sleeps, attempts=6) as client:
            assert list(client.paginate("licenses", "licenses")) == [{"n": 1}]
        assert len(sleeps) == 5
        assert all(0 <= s <= 4.0 for s in sleeps)

    def test_attempts_are_bounded_then_one_clear_error(self) -> None:
        count = 0

        def handler(request: httpx.Request) -> httpx.Response:
            nonlocal count
            count += 1
            return httpx.Response(503)

        with (
            make_client(handler, attempts=4) as client,
            pytest.raises(UserError, match=r"kept failing \(HTTP 503\)"),
        ):
            list(client.paginate("licenses", "licenses"))
        assert count == 4

    def test_the_time_budget_stops_before_a_wait_that_would_overrun_it(self) -> None:
        count = 0

        def handler(request: httpx.Request) -> httpx.Response:
            nonlocal count
            count += 1
            return httpx.Response(429, headers={"Retry-After": "30"})

        sleeps = Sleeps()
        with (
            make_client(handler, sleeps=sleeps, attempts=50, budget=10.0) as client,
            pytest.raises(UserError, match="kept failing"),
        ):
            list(client.paginate("licenses", "licenses"))
        assert count == 1
        assert sleeps == []


def export_api(
    statuses: list[str],
    body: bytes = b'[{"id": 1}, {"id": 2}, {"id": 3}]',
    truncate_first: bool = False,
) -> tuple[Callable[[httpx.Request], httpx.Response], dict[str, int]]:
    """A fake async export API: each initiation gets a new id and walks `statuses`."""
    counts = {"initiated": 0, "downloads": 0}
    polls: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST":
            counts["initiated"] += 1
            export_id = f"exp-{counts['initiated']}"
            return httpx.Response(200, json={"_links": {}, "export": {"id": export_id}})
        export_id = path.split("/async/export/")[1].split("/")[0]
        if path.endswith("/status"):
            n = polls.get(export_id, 0)
            polls[export_id] = n + 1
            status = statuses[min(n, len(statuses) - 1)]
            if status.startswith("FAILED-ONCE"):
                status = "FAILED" if export_id == "exp-1" else "COMPLETED"
            return httpx.Response(200, json={"export": {"id": export_id, "status": status}})
        counts["downloads"] += 1
        if truncate_first and counts["downloads"] == 1:
            return httpx.Response(200, content=body[: body.index(b"}, {") + 3])
        return httpx.Response(200, content=body)

    return handler, counts


def runner_for(handler: Callable, ledger: ExportLedger, **kwargs: float) -> ExportRunner:
    client = make_client(handler)
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    return ExportRunner(
        client,
        ledger,
        poll_initial=1.0,
        poll_max=4.0,
        sleep=sleep,
        clock=lambda: clock[0],
        **kwargs,  # type: ignore[arg-type]
    )


class TestExports:
    def test_polls_until_completed_and_streams_the_array(self, tmp_path: Path) -> None:
        handler, counts = export_api(["QUEUED", "IN_PROGRESS", "COMPLETED"])
        ledger = ExportLedger(tmp_path / "exports.json")
        rows = list(runner_for(handler, ledger).records("licenses", {"a": "1"}, "licenses"))
        assert rows == [{"id": 1}, {"id": 2}, {"id": 3}]
        assert counts["initiated"] == 1

    def test_the_download_reports_its_records_and_megabytes(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        handler, _ = export_api(["COMPLETED"])
        runner = runner_for(handler, ExportLedger(tmp_path / "e.json"))
        with caplog.at_level("INFO", logger="pipelines.marketplace"):
            rows = list(runner.records("licenses", {}, "licenses"))
        body = b'[{"id": 1}, {"id": 2}, {"id": 3}]'
        assert runner.client.bytes_downloaded == len(body)
        done = [r.getMessage() for r in caplog.records if "downloaded," in r.getMessage()]
        assert len(done) == 1
        assert done[0].endswith(f"downloaded, {len(rows)} records (0.0 MB)")

    def test_a_download_cut_short_resumes_without_duplicates(self, tmp_path: Path) -> None:
        handler, counts = export_api(["COMPLETED"], truncate_first=True)
        ledger = ExportLedger(tmp_path / "exports.json")
        rows = list(runner_for(handler, ledger).records("licenses", {}, "licenses"))
        assert rows == [{"id": 1}, {"id": 2}, {"id": 3}]
        assert counts["downloads"] == 2

    def test_marketing_attribution_object_body_is_accepted(self, tmp_path: Path) -> None:
        body = b'{"marketingAttribution": [{"id": 1}]}'
        handler, _ = export_api(["COMPLETED"], body=body)
        runner = runner_for(handler, ExportLedger(tmp_path / "e.json"))
        assert list(runner.records("marketing-attribution", {}, "ma")) == [{"id": 1}]

    def test_a_failed_export_is_initiated_again(self, tmp_path: Path) -> None:
        handler, counts = export_api(["FAILED-ONCE"])
        ledger = ExportLedger(tmp_path / "exports.json")
        rows = list(runner_for(handler, ledger).records("licenses", {}, "licenses"))
        assert len(rows) == 3
        assert counts["initiated"] == 2

    def test_failures_are_bounded_then_one_clear_error(self, tmp_path: Path) -> None:
        handler, counts = export_api(["FAILED"])
        runner = runner_for(handler, ExportLedger(tmp_path / "e.json"), max_reinitiations=2)
        with pytest.raises(UserError, match="licenses export failed 3 times"):
            list(runner.records("licenses", {}, "licenses"))
        assert counts["initiated"] == 3

    def test_past_the_deadline_the_id_is_kept_and_the_next_run_resumes_it(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "exports.json"
        handler, counts = export_api(["QUEUED"])
        stuck = runner_for(handler, ExportLedger(path), deadline_seconds=10.0)
        with pytest.raises(UserError, match="still QUEUED"):
            list(stuck.records("licenses", {"startDate": "2020-01-01"}, "licenses"))
        saved = json.loads(path.read_text())
        assert saved[export_key("licenses", {"startDate": "2020-01-01"})]["id"] == "exp-1"

        handler, counts = export_api(["COMPLETED"])
        resumed = runner_for(handler, ExportLedger(path))
        rows = list(resumed.records("licenses", {"startDate": "2020-01-01"}, "licenses"))
        assert len(rows) == 3
        assert counts["initiated"] == 0

    def test_a_saved_export_is_resumed_on_its_api_day_and_made_anew_on_a_later_one(
        self, tmp_path: Path
    ) -> None:
        # A run that lands nothing keeps the ledger; the next day's run must not read the
        # previous day's attribution export again (its late rows would wait for a load).
        path = tmp_path / "exports.json"
        params = {"startDate": "2026-10-01"}
        handler, counts = export_api(["COMPLETED"])
        first = runner_for(handler, ExportLedger(path))
        first.client.api_day = dt.date(2026, 11, 15)
        list(first.records("marketing-attribution", params, "ma"))
        assert (
            json.loads(path.read_text())[export_key("marketing-attribution", params)]["api_day"]
            == "2026-11-15"
        )

        same_day = runner_for(handler, ExportLedger(path))
        same_day.client.api_day = dt.date(2026, 11, 15)
        list(same_day.records("marketing-attribution", params, "ma"))
        assert counts["initiated"] == 1

        next_day = runner_for(handler, ExportLedger(path))
        next_day.client.api_day = dt.date(2026, 11, 16)
        assert len(list(next_day.records("marketing-attribution", params, "ma"))) == 3
        assert counts["initiated"] == 2


def test_a_failing_sync_export_falls_back_to_paging() -> None:
    from pipelines.marketplace.extraction import Read, exported_or_paged

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/export"):
            return httpx.Response(500)
        return page("events", [{"n": 1}])

    with make_client(handler, attempts=2) as client:
        read = Read("sales/metrics/churn/details", "events", {}, "x")
        rows = list(exported_or_paged(client, read))
    assert rows == [{"n": 1}]


def test_a_sync_export_streams_its_array() -> None:
    from pipelines.marketplace.extraction import Read, exported_or_paged

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/sales/metrics/churn/details/export")
        assert request.url.params["startDate"] == "2024-01-01"
        return httpx.Response(200, content=b'[{"n": 1}, {"n": 2}]')

    with make_client(handler) as client:
        read = Read("sales/metrics/churn/details", "events", {"startDate": "2024-01-01"}, "x")
        rows = list(exported_or_paged(client, read))
    assert rows == [{"n": 1}, {"n": 2}]


def test_an_incremental_look_back_is_one_sync_export_and_each_line_once() -> None:
    import datetime as dt

    from pipelines.marketplace.extraction import Extraction, transaction_records

    line = {"transactionId": "AT-1", "transactionLineItemId": "1", "purchaseDetails": {}}
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        assert request.url.path.endswith("/sales/transactions/export")
        assert request.url.params["lastUpdated"] == "2026-11-12"
        assert request.url.params["includeManualInvoice"] == "true"
        if len(calls) == 1:
            # Cut short after one record: the retried export starts over and repeats it.
            whole = json.dumps(line).encode()
            return httpx.Response(200, content=b"[" + whole + b', {"transactionId": "AT-')
        return httpx.Response(200, json=[line, {**line, "transactionLineItemId": "2"}])

    with make_client(handler) as client:
        first, today = dt.date(2016, 1, 1), dt.date(2026, 11, 15)
        run = Extraction(client, None, first, 3, False, today)  # type: ignore[arg-type]
        rows = list(transaction_records(run, dt.date(2026, 11, 12)))
    assert [r["transaction_key"] for r in rows] == ["AT-1|1", "AT-1|2"]
    assert len(calls) == 2

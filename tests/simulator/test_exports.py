"""The simulator's sync and async exports: streaming, the status machine, failures, stuck jobs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.integration

ASYNC = [
    ("licenses/async/export", "licenses/async/export"),
    ("sales/transactions/async/export", "sales/transactions/async/export"),
    ("marketing-attribution/async/export", "async/export"),
]


def url(simulator, generation: int, href: str) -> str:
    # v3 hrefs leave out /rest/3 as the live API's do.
    return f"{simulator.base_url}{'/rest/3' if generation == 3 else ''}{href}"


def list_all(client, base: str, path: str, key: str, params: dict) -> list[dict]:
    records, offset = [], 0
    while True:
        body = client.get(f"{base}/{path}", params={**params, "offset": offset}).json()
        records.extend(body[key])
        if "next" not in body["_links"]:
            return records
        offset += 50


@pytest.mark.parametrize("generation", [2, 3])
def test_async_export_flow_for_licenses_and_transactions(simulator, generation):
    base = simulator.v2_base if generation == 2 else simulator.v3_base
    params = {"startDate": "2021-01-01", "withDataInsights": "true"}
    with simulator.client() as client:
        for initiate, key, path in (
            ("licenses/async/export", "licenses", "licenses"),
            ("sales/transactions/async/export", "transactions", "sales/transactions"),
        ):
            first = client.post(f"{base}/{initiate}", params=params)
            assert first.status_code == 200, first.text
            again = client.post(f"{base}/{initiate}", params=dict(reversed(params.items())))
            export_id = first.json()["export"]["id"]
            assert again.json()["export"]["id"] == export_id
            links = first.json()["_links"]
            assert set(links) == {"self", "query", "status", "download"}
            early = client.get(url(simulator, generation, links["download"]["href"]))
            assert early.status_code == 404
            assert early.json()["errors"][0]["message"] == "Export is being processed"
            statuses = [
                client.get(url(simulator, generation, links["status"]["href"])).json()["export"]
                for _ in range(4)
            ]
            assert [s["status"] for s in statuses] == [
                "QUEUED",
                "IN_PROGRESS",
                "COMPLETED",
                "COMPLETED",
            ]
            assert {s["id"] for s in statuses} == {export_id}
            download = client.get(url(simulator, generation, links["download"]["href"]))
            assert download.status_code == 200
            assert download.headers.get("transfer-encoding") == "chunked"
            listed = list_all(client, base, path, key, params)
            assert download.json() == listed != []


def test_export_content_is_fixed_when_initiated(simulator):
    with simulator.client() as client:
        started = client.post(f"{simulator.v2_base}/sales/transactions/async/export").json()
        before = client.get(f"{simulator.v2_base}/sales/transactions/export").json()
        simulator.advance(60)
        after = client.get(f"{simulator.v2_base}/sales/transactions/export").json()
        for _ in range(3):
            client.get(f"{simulator.base_url}{started['_links']['status']['href']}")
        download = client.get(f"{simulator.base_url}{started['_links']['download']['href']}").json()
        fresh = client.post(f"{simulator.v2_base}/sales/transactions/async/export").json()
    assert len(after) > len(before)
    assert download == before
    assert fresh["export"]["id"] != started["export"]["id"]


def test_marketing_attribution_uses_the_generic_path_and_filters_on_event_timestamp(simulator):
    rows = list(simulator.vendor.marketing_attribution())
    day = sorted(r["eventTimestamp"][:10] for r in rows)[len(rows) // 2]
    with simulator.client() as client:
        started = client.post(
            f"{simulator.v3_base}/marketing-attribution/async/export", params={"startDate": day}
        ).json()
        status_href = started["_links"]["status"]["href"]
        assert status_href.endswith(f"/async/export/{started['export']['id']}/status")
        assert "/marketing-attribution/" not in status_href
        for _ in range(3):
            status = client.get(url(simulator, 3, status_href)).json()["export"]["status"]
        assert status == "COMPLETED"
        body = client.get(url(simulator, 3, started["_links"]["download"]["href"])).json()
    assert isinstance(body, list)
    assert len(body) == sum(r["eventTimestamp"][:10] >= day for r in rows) > 0
    assert all(r["productId"] for r in body)


@pytest.mark.parametrize("simulator", [{"faults": {"export_fail_first_n": 1}}], indirect=True)
def test_failed_export_then_reinitiated_with_a_fresh_id_succeeds(simulator):
    with simulator.client() as client:
        first = client.post(f"{simulator.v2_base}/licenses/async/export").json()
        status_url = f"{simulator.base_url}{first['_links']['status']['href']}"
        statuses = [client.get(status_url).json()["export"]["status"] for _ in range(3)]
        assert statuses == ["QUEUED", "IN_PROGRESS", "FAILED"]
        failed = client.get(f"{simulator.base_url}{first['_links']['download']['href']}")
        assert failed.status_code == 404
        second = client.post(f"{simulator.v2_base}/licenses/async/export").json()
        assert second["export"]["id"] != first["export"]["id"]
        status_url = f"{simulator.base_url}{second['_links']['status']['href']}"
        statuses = [client.get(status_url).json()["export"]["status"] for _ in range(3)]
        assert statuses[-1] == "COMPLETED"
        download = client.get(f"{simulator.base_url}{second['_links']['download']['href']}")
        assert len(download.json()) == sum(1 for _ in simulator.vendor.licenses())


@pytest.mark.parametrize("simulator", [{"faults": {"export_stuck": True}}], indirect=True)
def test_stuck_export_stays_queued(simulator):
    with simulator.client() as client:
        started = client.post(f"{simulator.v2_base}/sales/transactions/async/export").json()
        status_url = f"{simulator.base_url}{started['_links']['status']['href']}"
        statuses = {client.get(status_url).json()["export"]["status"] for _ in range(10)}
        download = client.get(f"{simulator.base_url}{started['_links']['download']['href']}")
    assert statuses == {"QUEUED"}
    assert download.status_code == 404


def test_unknown_export_id_is_404(simulator):
    unknown = "00000000-0000-0000-0000-000000000000"
    with simulator.client() as client:
        for _, prefix in ASYNC:
            for suffix in ("/status", ""):
                response = client.get(f"{simulator.v2_base}/{prefix}/{unknown}{suffix}")
                assert response.status_code == 404
                assert response.json()["errors"][0]["message"]


def test_sync_exports_stream_a_top_level_array_and_ignore_paging(simulator):
    with simulator.client() as client:
        for path, count in (
            ("licenses", sum(1 for _ in simulator.vendor.licenses())),
            ("sales/transactions", sum(1 for _ in simulator.vendor.transactions())),
            ("feedback/details", sum(1 for _ in simulator.vendor.feedback())),
            ("sales/metrics/renewal/details", None),
        ):
            with client.stream(
                "GET", f"{simulator.v3_base}/{path}/export", params={"limit": 5, "offset": 3}
            ) as response:
                assert response.status_code == 200
                assert response.headers.get("transfer-encoding") == "chunked"
                assert "content-length" not in response.headers
                response.read()
            body = response.json()
            assert isinstance(body, list)
            if count is not None:
                assert len(body) == count


def test_csv_is_refused_with_a_json_errors_doc(simulator):
    with simulator.client() as client:
        response = client.get(f"{simulator.v2_base}/licenses/export", params={"accept": "csv"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "accept"


@pytest.mark.parametrize("simulator", [{"size": "small"}], indirect=True)
def test_concurrent_exports_and_pages_stay_complete(simulator):
    counts = {
        "licenses": sum(1 for _ in simulator.vendor.licenses()),
        "sales/transactions": sum(1 for _ in simulator.vendor.transactions()),
    }

    def fetch(path: str) -> int:
        with simulator.client() as client:
            return len(client.get(f"{simulator.v3_base}/{path}/export").json())

    def total(path: str) -> int:
        with simulator.client() as client:
            return client.get(f"{simulator.v3_base}/{path}").json()["totalCount"]

    paths = list(counts) * 3
    with ThreadPoolExecutor(max_workers=6) as pool:
        exported = list(pool.map(fetch, paths))
        totals = list(pool.map(total, paths))
    assert exported == [counts[p] for p in paths]
    assert totals == [counts[p] for p in paths]

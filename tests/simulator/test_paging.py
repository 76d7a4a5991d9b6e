"""The simulator's paged lists: every record exactly once through `_links.next`, on v2 and v3."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from pipelines.simulator.ground_truth.payloads import details_events

pytestmark = pytest.mark.integration

LISTS = [
    ("licenses", "licenses"),
    ("sales/transactions", "transactions"),
    ("feedback/details", "feedback"),
    ("sales/metrics/churn/details", "events"),
    ("sales/metrics/renewal/details", "events"),
    ("sales/metrics/conversion/details", "events"),
]


def absolute(simulator, generation: int, href: str) -> str:
    # v3 hrefs leave out /rest/3, as the live API's do; v2 hrefs are host-relative.
    prefix = "/rest/3" if generation == 3 and not href.startswith("/rest/3") else ""
    return f"{simulator.base_url}{prefix}{href}"


def walk(client, simulator, generation: int, path: str, items_key: str, params=None):
    base = simulator.v2_base if generation == 2 else simulator.v3_base
    url, pages, records = f"{base}/{path}", [], []
    response = client.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body)
        records.extend(body[items_key])
        if "next" not in body["_links"]:
            return pages, records
        response = client.get(absolute(simulator, generation, body["_links"]["next"]["href"]))


def expected_records(simulator, items_key: str, path: str) -> list[dict]:
    vendor = simulator.vendor
    if items_key == "licenses":
        return list(vendor.licenses(with_data_insights=False))
    if items_key == "transactions":
        return list(vendor.transactions())
    if items_key == "feedback":
        return list(vendor.feedback())
    return details_events(simulator.expected(), path.split("/")[2])


def key(record: dict) -> bytes:
    return orjson.dumps(
        {k: v for k, v in record.items() if k != "productId"}, option=orjson.OPT_SORT_KEYS
    )


@pytest.mark.parametrize("simulator", [{"size": "small"}], indirect=True)
@pytest.mark.parametrize("generation", [2, 3])
def test_paging_returns_every_record_exactly_once(simulator, generation):
    with simulator.client() as client:
        for path, items_key in LISTS:
            pages, records = walk(client, simulator, generation, path, items_key)
            expected = expected_records(simulator, items_key, path)
            assert len(records) == len(expected) > 0, path
            assert sorted(map(key, records)) == sorted(map(key, expected)), path
            assert all(len(p[items_key]) == 50 for p in pages[:-1]), path
            assert 0 < len(pages[-1][items_key]) <= 50 or len(expected) == 0
            if generation == 3:
                assert {p["totalCount"] for p in pages} == {len(expected)}
                assert all(
                    r["productId"] == simulator.state.product_of[r["addonKey"]] for r in records
                )
            else:
                assert all("totalCount" not in p for p in pages)
                assert all("productId" not in r for r in records)


@pytest.mark.parametrize("generation", [2, 3])
def test_links_are_relative_and_carry_every_query_parameter(simulator, generation):
    params = [("hosting", "cloud"), ("hosting", "server"), ("limit", "7"), ("offset", "7")]
    with simulator.client() as client:
        base = simulator.v2_base if generation == 2 else simulator.v3_base
        body = client.get(f"{base}/licenses", params=params).json()
    links = body["_links"]
    expected_prefix = "/rest/2/vendors/" if generation == 2 else "/reporting/developer-space/"
    for name in ("self", "next", "prev"):
        href = links[name]["href"]
        assert href.startswith(expected_prefix), href
        query = parse_qs(urlsplit(href).query)
        assert query["hosting"] == ["cloud", "server"]
        assert query["limit"] == ["7"]
    assert parse_qs(urlsplit(links["next"]["href"]).query)["offset"] == ["14"]
    assert parse_qs(urlsplit(links["prev"]["href"]).query)["offset"] == ["0"]
    assert links["query"]["templated"] is True
    assert links["export"][0]["href"].startswith(expected_prefix)


def test_limit_is_capped_at_50_and_defaults_to_50(simulator):
    with simulator.client() as client:
        capped = client.get(f"{simulator.v2_base}/sales/transactions", params={"limit": 500}).json()
        default = client.get(f"{simulator.v2_base}/sales/transactions").json()
    assert len(capped["transactions"]) == 50
    assert len(default["transactions"]) == 50
    assert "limit=50" in capped["_links"]["next"]["href"]


def test_last_page_has_no_next_link_and_offset_past_the_end_is_empty(simulator):
    total = sum(1 for _ in simulator.vendor.licenses())
    with simulator.client() as client:
        last = client.get(f"{simulator.v3_base}/licenses", params={"offset": total - 1}).json()
        past = client.get(f"{simulator.v3_base}/licenses", params={"offset": total + 10}).json()
    assert len(last["licenses"]) == 1
    assert "next" not in last["_links"]
    assert past["licenses"] == []
    assert past["totalCount"] == total


def test_links_index_and_developer_lookup(simulator):
    vendor = simulator.vendor
    with simulator.client() as client:
        v2 = client.get(simulator.v2_base).json()
        v3 = client.get(f"{simulator.v3_base}/").json()
        lookup = client.get(
            f"{simulator.base_url}/rest/3/developer-space/vendor/{vendor.vendor_id}"
        )
    assert {"self", "licensesExport", "transactionsExport"} <= set(v2["_links"])
    assert v2["_links"]["licenses"]["template"].startswith("/rest/2/vendors/")
    assert v3["_links"]["licensesExport"][0]["template"].startswith("/reporting/developer-space/")
    assert lookup.json() == {"developerId": vendor.developer_id}

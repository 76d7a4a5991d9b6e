"""Each fault kind as a raw httpx client sees it, and fault determinism per seed."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from pipelines.errors import UserError
from pipelines.simulator.faults import PROFILES, FaultInjector, parse_faults

pytestmark = pytest.mark.integration


def test_429_carries_retry_after(simulator):
    simulator.set_faults(rate_429=1.0, retry_after_seconds=3)
    response = httpx.get(f"{simulator.v2_base}/licenses", auth=simulator.auth)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json()["errors"][0]["message"]


def test_5xx_has_a_json_body(simulator):
    simulator.set_faults(rate_5xx=1.0)
    statuses = set()
    for _ in range(12):
        response = httpx.get(f"{simulator.v3_base}/licenses", auth=simulator.auth)
        statuses.add(response.status_code)
        assert response.json()["errors"][0]["message"]
    assert statuses <= {500, 502, 503}
    assert len(statuses) > 1


def test_dropped_connection_raises_in_the_client(simulator):
    simulator.set_faults(rate_drop=1.0)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        httpx.get(f"{simulator.v2_base}/licenses", auth=simulator.auth)


def read_raw(url: str, auth) -> tuple[int, bytes, Exception | None]:
    """Status, the bytes that arrived, and the transport error that ended the body, if any."""
    received, status = b"", 0
    try:
        with httpx.stream("GET", url, auth=auth) as response:
            status = response.status_code
            for chunk in response.iter_raw():
                received += chunk
    except httpx.TransportError as error:
        return status, received, error
    return status, received, None


@pytest.mark.parametrize("path", ["licenses/export", "licenses", "sales/transactions/export"])
def test_truncated_body_is_never_valid_json(simulator, path):
    simulator.set_faults(rate_truncate=1.0, seed=5)
    for _ in range(3):
        status, received, error = read_raw(f"{simulator.v2_base}/{path}", simulator.auth)
        assert status == 200
        assert isinstance(error, (httpx.RemoteProtocolError, httpx.ReadError))
        assert received
        with pytest.raises(json.JSONDecodeError):
            json.loads(received)


def test_latency_is_added(simulator):
    simulator.set_faults(latency_ms=300)
    started = time.perf_counter()
    assert httpx.get(f"{simulator.v2_base}/feedback/details", auth=simulator.auth).is_success
    assert time.perf_counter() - started >= 0.3


def test_faults_never_touch_admin(simulator):
    simulator.set_faults(rate_drop=1.0)
    for _ in range(5):
        assert httpx.get(f"{simulator.admin_url}/state").is_success


def test_same_seed_same_request_sequence_same_faults(make_simulator):
    faults = {"seed": 11, "rate_429": 0.2, "rate_5xx": 0.2, "retry_after_seconds": 0}

    def statuses(simulator) -> list[int]:
        with simulator.client() as client:
            return [
                client.get(f"{simulator.v2_base}/feedback/details").status_code for _ in range(30)
            ]

    first, second = statuses(make_simulator(faults=faults)), statuses(make_simulator(faults=faults))
    assert first == second
    assert {200, 429} <= set(first)


def test_admin_put_faults_changes_them_at_run_time_and_state_counts_them(simulator):
    response = httpx.put(f"{simulator.admin_url}/faults", content=json.dumps({"rate_429": 1.0}))
    assert response.status_code == 200
    assert httpx.get(f"{simulator.v2_base}/licenses", auth=simulator.auth).status_code == 429
    bad = httpx.put(f"{simulator.admin_url}/faults", content='{"rate_429": 2}')
    assert bad.status_code == 400
    state = httpx.get(f"{simulator.admin_url}/state").json()
    assert state["requests"]["fault_429"] == 1
    assert state["requests"]["status_429"] == 1
    httpx.put(f"{simulator.admin_url}/faults", content="")
    assert httpx.get(f"{simulator.v2_base}/licenses", auth=simulator.auth).is_success


def test_flaky_profile_and_fault_specs():
    flaky = parse_faults("flaky")
    assert flaky == PROFILES["flaky"]
    assert flaky.rate_429 > 0
    assert flaky.rate_5xx > 0
    assert flaky.rate_drop > 0
    assert flaky.rate_truncate > 0
    assert flaky.export_fail_first_n == 1
    tuned = parse_faults('{"profile": "flaky", "rate_429": 0.5}')
    assert tuned.rate_429 == 0.5
    assert tuned.rate_drop == flaky.rate_drop
    for bad in ("stormy", "{not json", '{"rate_teapot": 1}', '{"rate_429": 1.5}', "[1]"):
        with pytest.raises(UserError):
            parse_faults(bad)


def test_flaky_profile_draws_each_kind():
    injector = FaultInjector(parse_faults("flaky", seed=3))
    kinds = {injector.draw() for _ in range(2000)}
    assert kinds == {"none", "429", "5xx", "drop", "truncate"}


@pytest.mark.parametrize(
    "simulator",
    [{"size": "small", "faults": {"profile": "flaky", "seed": 9, "retry_after_seconds": 0}}],
    indirect=True,
)
def test_a_retrying_client_still_gets_every_record_once_under_the_flaky_profile(simulator):
    def get(client, url: str) -> httpx.Response:
        for _ in range(30):
            try:
                response = client.get(url)
                response.read()
                json.loads(response.content)
            except (httpx.TransportError, json.JSONDecodeError):
                continue
            if response.status_code not in (429, 500, 502, 503):
                return response
        raise AssertionError("no answer in 30 tries")

    seen = []
    with simulator.client() as client:
        url = f"{simulator.v3_base}/sales/transactions?limit=50"
        while url:
            body = get(client, url).json()
            seen.extend(
                (r["transactionId"], r["transactionLineItemId"]) for r in body["transactions"]
            )
            href = body["_links"].get("next", {}).get("href")
            url = f"{simulator.base_url}/rest/3{href}" if href else None
        exported = get(client, f"{simulator.v3_base}/licenses/export").json()
    expected = [
        (r["transactionId"], r["transactionLineItemId"]) for r in simulator.vendor.transactions()
    ]
    assert seen == expected
    assert len(exported) == sum(1 for _ in simulator.vendor.licenses())
    counters = simulator.faults.counters
    assert counters["fault_429"] + counters["fault_5xx"] + counters["fault_drop"] > 0

"""Metric endpoints serve the ground truth's figures; time travel and the admin ground truth."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import orjson
import pytest

from pipelines.simulator.app import EXPECTED_TABLES
from pipelines.simulator.ground_truth.payloads import aggregate_payload, details_events

pytestmark = pytest.mark.integration


def roundtrip(value):
    return orjson.loads(orjson.dumps(value))


@pytest.mark.parametrize("simulator", [{"size": "small"}], indirect=True)
def test_aggregates_equal_the_ground_truth_payload(simulator):
    tables = simulator.expected()
    names = simulator.state.addon_names
    with simulator.client() as client:
        for metric in ("churn", "renewal", "conversion"):
            for aggregation in ("week", "month"):
                body = client.get(
                    f"{simulator.v2_base}/sales/metrics/{metric}",
                    params={"aggregation": aggregation, "hosting": "server", "productId": "x"},
                ).json()
                links = body.pop("_links")
                assert links["self"]["href"].startswith("/rest/2/")
                expected = aggregate_payload(
                    tables, metric, aggregation=aggregation, addon_names=names
                )
                assert body == roundtrip(expected), (metric, aggregation)
                assert body["total"]
            default = client.get(f"{simulator.v3_base}/sales/metrics/{metric}").json()
            default.pop("_links")
            assert default == roundtrip(aggregate_payload(tables, metric, addon_names=names))


def test_aggregate_window_and_group_by(simulator):
    tables = simulator.expected()
    names = simulator.state.addon_names
    params = {"aggregation": "month", "startDate": "2024-01-01", "endDate": "2025-06-30"}
    with simulator.client() as client:
        churn = client.get(f"{simulator.v2_base}/sales/metrics/churn", params=params).json()
        grouped = client.get(
            f"{simulator.v2_base}/sales/metrics/conversion",
            params={**params, "groupBy": "conversionType"},
        ).json()
    churn.pop("_links")
    grouped.pop("_links")
    window = {"start": date(2024, 1, 1), "end": date(2025, 6, 30), "addon_names": names}
    assert churn == roundtrip(aggregate_payload(tables, "churn", "month", **window))
    assert grouped == roundtrip(
        aggregate_payload(tables, "conversion", "month", group_by="conversionType", **window)
    )


@pytest.mark.parametrize("generation", [2, 3])
def test_details_serve_the_ground_truth_events_with_filters(simulator, generation):
    tables = simulator.expected()
    base = simulator.v2_base if generation == 2 else simulator.v3_base
    with simulator.client() as client:
        for metric in ("churn", "renewal", "conversion"):
            events = details_events(tables, metric)
            served = client.get(f"{base}/sales/metrics/{metric}/details/export").json()
            assert [{k: v for k, v in e.items() if k != "productId"} for e in served] == roundtrip(
                events
            )
            if generation == 3:
                assert all(e["productId"] for e in served)
            if not events:
                continue
            day = events[len(events) // 2]["eventDate"]
            since = client.get(
                f"{base}/sales/metrics/{metric}/details", params={"startDate": day, "limit": 50}
            ).json()
            assert len(since["events"]) == min(50, sum(e["eventDate"] >= day for e in events))
            assert (
                client.get(
                    f"{base}/sales/metrics/{metric}/details/export", params={"hosting": "server"}
                ).json()
                == []
            )


def test_time_travel_changes_what_last_updated_returns(simulator):
    before = simulator.today
    since = (before + timedelta(days=1)).isoformat()
    with simulator.client() as client:
        empty = client.get(f"{simulator.v2_base}/licenses/export", params={"lastUpdated": since})
        tx_empty = client.get(
            f"{simulator.v2_base}/sales/transactions/export", params={"lastUpdated": since}
        )
        assert empty.json() == []
        assert tx_empty.json() == []
        moved = httpx.post(f"{simulator.admin_url}/advance", params={"days": 45}).json()
        assert moved == {"today": (before + timedelta(days=45)).isoformat()}
        changed = client.get(f"{simulator.v2_base}/licenses/export", params={"lastUpdated": since})
        tx_changed = client.get(
            f"{simulator.v2_base}/sales/transactions/export", params={"lastUpdated": since}
        )
    assert changed.json()
    assert tx_changed.json()
    assert all(r["lastUpdated"] >= since for r in changed.json() + tx_changed.json())
    latest = max(r["lastUpdated"] for r in changed.json() + tx_changed.json())
    assert simulator.expected().as_of.isoformat() == latest
    assert simulator.expected().as_of <= simulator.today


def test_admin_state_ground_truth_and_expected_tables(simulator):
    state = httpx.get(f"{simulator.admin_url}/state").json()
    vendor = simulator.vendor
    assert state["today"] == vendor.today.isoformat()
    assert state["vendor_id"] == vendor.vendor_id
    assert state["developer_id"] == vendor.developer_id
    assert state["seed"] == 42
    assert state["counts"] == vendor.counts()
    truth = httpx.get(f"{simulator.admin_url}/ground-truth/licenses").json()
    assert truth == list(vendor.licenses(with_data_insights=True))
    for kind in ("transactions", "feedback", "marketing_attribution"):
        served = httpx.get(f"{simulator.admin_url}/ground-truth/{kind}").json()
        assert served == list(getattr(vendor, kind)())
    tables = simulator.expected()
    for table in EXPECTED_TABLES:
        served = httpx.get(f"{simulator.admin_url}/expected/{table}")
        assert served.status_code == 200
        assert served.json() == roundtrip(getattr(tables, table)), table
    assert httpx.get(f"{simulator.admin_url}/expected/nope").status_code == 404


@pytest.mark.parametrize("simulator", [{"size": "small"}], indirect=True)
def test_upgrade_conversions_are_the_edition_upgrade_trials(simulator):
    # Atlassian's meaning (METRICS.md v2): an Upgrade evaluation is an edition upgrade trial.
    trials = [
        lic
        for lic in simulator.state.records("licenses", with_data_insights=True)
        if lic["hosting"] == "Cloud" and lic.get("upgradeEvaluationStartDate")
    ]
    bought = [lic for lic in trials if lic.get("appEdition") == "Advanced"]
    with simulator.client() as client:
        body = client.get(
            f"{simulator.v2_base}/sales/metrics/conversion",
            params={"aggregation": "month", "groupBy": "conversionType"},
        ).json()
    totals = {
        (series["name"], series["conversionType"]): sum(e["count"] for e in series["elements"])
        for series in body["total"]["series"]
    }
    assert totals[("Evaluations", "Upgrade")] == len(trials) > 0
    assert totals[("Conversions", "Upgrade")] == len(bought) > 0


def test_an_aggregate_is_computed_once_a_day_and_anew_the_next(simulator, monkeypatch):
    """The simulator keeps a day's aggregate bodies (a large vendor's took seconds each ask);
    the same query the next simulated day is computed from that day's tables."""
    import pipelines.simulator.state as state_module

    calls = []
    real = state_module.aggregate_payload

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(state_module, "aggregate_payload", counting)
    params = {"aggregation": "month", "startDate": "2016-01-01"}
    url = f"{simulator.v2_base}/sales/metrics/churn"
    with simulator.client() as client:
        first = client.get(url, params=params).json()
        again = client.get(url, params=params).json()
        assert calls == ["churn"]
        assert again == first
        # Another query is another body.
        client.get(url, params={**params, "aggregation": "week"})
        assert calls == ["churn", "churn"]
        simulator.advance(400)
        later = client.get(url, params=params).json()
    assert calls == ["churn", "churn", "churn"]
    names = simulator.state.addon_names
    expected = aggregate_payload(
        simulator.expected(), "churn", "month", start=date(2016, 1, 1), addon_names=names
    )
    later.pop("_links")
    first.pop("_links")
    assert later == roundtrip(expected)
    assert later != first

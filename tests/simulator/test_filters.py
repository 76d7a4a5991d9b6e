"""The simulator's filters, each checked against the vendor's own records."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.simulator.vendor.synthetic import SyntheticVendor

pytestmark = pytest.mark.integration

WINDOW = {"startDate": "2022-01-01", "endDate": "2022-12-31"}


def export(simulator, path: str, params: Any = None, generation: int = 2) -> list[dict]:
    base = simulator.v2_base if generation == 2 else simulator.v3_base
    with simulator.client() as client:
        response = client.get(f"{base}/{path}/export", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def ids(records: list[dict]) -> list[str]:
    return sorted(
        r.get("addonLicenseId") or r.get("appEntitlementId") or r["licenseId"] for r in records
    )


def tx_ids(records: list[dict]) -> list[tuple[str, str]]:
    return sorted((r["transactionId"], r["transactionLineItemId"]) for r in records)


class RecordingVendor:
    """A SyntheticVendor that remembers the insight flag, marks some invoices manual and some
    licenses Atlassian's own."""

    def __init__(self) -> None:
        self._inner = SyntheticVendor(seed=7, size="tiny")
        self.insight_flags: list[bool] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def licenses(self, as_of=None, with_data_insights=True):
        self.insight_flags.append(with_data_insights)
        for index, record in enumerate(
            self._inner.licenses(as_of=as_of, with_data_insights=with_data_insights)
        ):
            yield {**record, "licenseSourceType": "Atlassian"} if index % 7 == 0 else record

    def transactions(self, as_of=None):
        for index, record in enumerate(self._inner.transactions(as_of=as_of)):
            yield {**record, "isInvoiceManual": True} if index % 10 == 0 else record


def test_hosting_repeated_values_comma_form_and_unknown_value(simulator):
    licenses = list(simulator.vendor.licenses(with_data_insights=False))
    repeated = export(simulator, "licenses", [("hosting", "cloud"), ("hosting", "server")])
    assert ids(repeated) == ids([r for r in licenses if r["hosting"] in ("Cloud", "Server")])
    assert {r["hosting"] for r in export(simulator, "licenses", {"hosting": "datacenter"})} == {
        "Data Center"
    }
    # The comma form is silently mis-parsed live: nothing matches it.
    assert export(simulator, "licenses", {"hosting": "cloud,server"}) == []
    with simulator.client() as client:
        bad = client.get(f"{simulator.v2_base}/licenses", params={"hosting": "Cloud"})
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["path"] == "hosting"


def test_date_type_start_filters_on_maintenance_start_and_end_means_overlap(simulator):
    licenses = list(simulator.vendor.licenses(with_data_insights=False))
    sticky = simulator.vendor.sticky_license_ids
    start, end = WINDOW["startDate"], WINDOW["endDate"]
    by_start = export(simulator, "licenses", WINDOW)
    by_start_explicit = export(simulator, "licenses", {**WINDOW, "dateType": "start"})
    overlap = export(simulator, "licenses", {**WINDOW, "dateType": "end"})
    in_window = [
        r
        for r in licenses
        if start <= r["maintenanceStartDate"] <= end or r["addonLicenseId"] in sticky
    ]
    overlapping = [
        r
        for r in licenses
        if r["addonLicenseId"] in sticky
        or (
            r["maintenanceStartDate"] <= end
            and (r.get("maintenanceEndDate") is None or r["maintenanceEndDate"] >= start)
        )
    ]
    assert ids(by_start) == ids(by_start_explicit) == ids(in_window)
    assert ids(overlap) == ids(overlapping)
    assert len(overlap) > len(by_start)


def test_mp557_sticky_licenses_ignore_date_filters_only(simulator):
    sticky = simulator.vendor.sticky_license_ids
    assert sticky
    early = export(simulator, "licenses", {"endDate": "2010-01-01"})
    assert {r["addonLicenseId"] for r in early} == set(sticky)
    assert export(simulator, "licenses", {"endDate": "2010-01-01", "text": "no-such-text"}) == []
    everything = export(simulator, "licenses")
    assert len(ids(everything)) == len(set(ids(everything)))


def test_last_updated_is_on_or_after(simulator):
    licenses = list(simulator.vendor.licenses(with_data_insights=False))
    day = sorted(r["lastUpdated"] for r in licenses)[len(licenses) // 2]
    got = export(simulator, "licenses", {"lastUpdated": day})
    assert ids(got) == ids([r for r in licenses if r["lastUpdated"] >= day])
    assert any(r["lastUpdated"] == day for r in got)


def test_transactions_filter_on_sale_date_and_sale_type(simulator):
    transactions = list(simulator.vendor.transactions())
    got = export(simulator, "sales/transactions", WINDOW)
    expected = [
        r
        for r in transactions
        if WINDOW["startDate"] <= r["purchaseDetails"]["saleDate"] <= WINDOW["endDate"]
    ]
    assert tx_ids(got) == tx_ids(expected) != []
    renewals = export(
        simulator, "sales/transactions", [("saleType", "renewal"), ("saleType", "refund")]
    )
    assert {r["purchaseDetails"]["saleType"] for r in renewals} <= {"Renewal", "Refund"}
    assert len(renewals) == sum(
        r["purchaseDetails"]["saleType"] in ("Renewal", "Refund") for r in transactions
    )


def test_exclude_zero_transactions(simulator):
    transactions = list(simulator.vendor.transactions())
    zero = [r for r in transactions if r["purchaseDetails"]["purchasePrice"] == 0]
    assert zero
    assert len(export(simulator, "sales/transactions")) == len(transactions)
    without = export(simulator, "sales/transactions", {"excludeZeroTransactions": "true"})
    assert len(without) == len(transactions) - len(zero)
    assert all(r["purchaseDetails"]["purchasePrice"] != 0 for r in without)


def test_manual_invoices_are_excluded_unless_asked_for(make_simulator):
    simulator = make_simulator(vendor=RecordingVendor())
    transactions = list(simulator.vendor.transactions())
    manual = [r for r in transactions if r.get("isInvoiceManual")]
    default = export(simulator, "sales/transactions")
    included = export(simulator, "sales/transactions", {"includeManualInvoice": "true"})
    assert len(default) == len(transactions) - len(manual)
    assert not any(r.get("isInvoiceManual") for r in default)
    assert len(included) == len(transactions)


def test_with_data_insights_is_passed_through_and_defaults_to_false(make_simulator):
    vendor = RecordingVendor()
    simulator = make_simulator(vendor=vendor)
    export(simulator, "licenses")
    export(simulator, "licenses", {"withDataInsights": "true"})
    export(simulator, "licenses", {"withDataInsights": "false"})
    assert vendor.insight_flags == [False, True, False]


def test_atlassian_licenses_are_left_out_unless_asked_for(make_simulator):
    simulator = make_simulator(vendor=RecordingVendor())
    licenses = list(simulator.vendor.licenses())
    atlassian = [r for r in licenses if r.get("licenseSourceType") == "Atlassian"]
    assert atlassian
    default = export(simulator, "licenses")
    included = export(simulator, "licenses", {"includeAtlassianLicenses": "true"})
    assert len(default) == len(licenses) - len(atlassian)
    assert ids(included) == ids(licenses)


def test_feedback_filters_on_its_date(simulator):
    feedback = list(simulator.vendor.feedback())
    day = sorted(r["date"] for r in feedback)[len(feedback) // 2]
    got = export(simulator, "feedback/details", {"startDate": day})
    assert len(got) == sum(r["date"] >= day for r in feedback) > 0
    assert export(simulator, "feedback/details", {"startDate": day, "endDate": day}) == [
        r for r in feedback if r["date"] == day
    ]


def test_inverted_window_is_empty_not_an_error(simulator):
    for path in ("licenses", "sales/transactions", "feedback/details"):
        assert export(simulator, path, {"startDate": "2024-01-01", "endDate": "2023-01-01"}) == []


def test_addon_on_v2_and_product_id_on_v3(simulator):
    app = simulator.vendor.apps[0]
    licenses = list(simulator.vendor.licenses(with_data_insights=False))
    expected = ids([r for r in licenses if r["addonKey"] == app.addon_key])
    assert ids(export(simulator, "licenses", {"addon": app.addon_key})) == expected
    v3 = export(simulator, "licenses", {"productId": app.product_id}, generation=3)
    assert ids(v3) == expected
    assert {r["productId"] for r in v3} == {app.product_id}


def test_license_type_status_and_text(simulator):
    licenses = list(simulator.vendor.licenses(with_data_insights=False))
    evaluations = export(simulator, "licenses", {"licenseType": "evaluation"})
    assert len(evaluations) == sum(r["licenseType"] == "EVALUATION" for r in licenses)
    active = export(simulator, "licenses", [("status", "active"), ("status", "cancelled")])
    assert len(active) == sum(r["status"] in ("active", "cancelled") for r in licenses)
    one = licenses[3]
    found = export(simulator, "licenses", {"text": one["licenseId"].lower()})
    assert one["licenseId"] in {r["licenseId"] for r in found}

"""Tests of the synthetic vendor: determinism, as-of rendering, time travel and API shape."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import date, timedelta
from functools import cache

import pytest

from pipelines.simulator.vendor.catalog import DEFAULT_TODAY
from pipelines.simulator.vendor.synthetic import SyntheticVendor
from tests.helpers import reference_file

ENTITIES = ("licenses", "transactions", "feedback", "marketing_attribution")
INSIGHT_FIELDS = (
    "evaluationOpportunitySize",
    "evaluationLicense",
    "daysToConvertEval",
    "evaluationStartDate",
    "evaluationEndDate",
    "evaluationSaleDate",
    "parentProductBillingCycle",
    "parentProductName",
    "parentProductEdition",
    "installedOnSandbox",
)
SPEC = reference_file("marketplace-api-v2-reporting.reconstructed.openapi.json")


@cache
def _vendor(seed: int = 42, size: str = "small") -> SyntheticVendor:
    """Return a shared vendor; tests that time-travel build their own."""
    return SyntheticVendor(seed, size)


@cache
def _records(seed: int = 42, size: str = "small") -> dict[str, list[dict]]:
    vendor = _vendor(seed, size)
    return {name: list(getattr(vendor, name)()) for name in ENTITIES}


def _license_key(rec: dict) -> str:
    hosting = rec.get("hosting") or rec["purchaseDetails"]["hosting"]
    if hosting == "Cloud" and "appEntitlementId" in rec:
        return rec["appEntitlementId"]
    return rec["addonLicenseId"]


def _tx_key(tx: dict) -> tuple[str, str]:
    return tx["transactionId"], tx["transactionLineItemId"]


def _keyed(vendor: SyntheticVendor, as_of: date | None = None) -> dict[str, dict]:
    out = {"L" + _license_key(rec): rec for rec in vendor.licenses(as_of)}
    out |= {"T" + "/".join(_tx_key(tx)): tx for tx in vendor.transactions(as_of)}
    return out


def test_same_seed_gives_identical_records_and_another_seed_differs() -> None:
    first = SyntheticVendor(7, "tiny")
    second = SyntheticVendor(7, "tiny")
    other = SyntheticVendor(8, "tiny")
    for name in ENTITIES:
        assert list(getattr(first, name)()) == list(getattr(second, name)()), name
    assert list(first.transactions()) != list(other.transactions())
    assert first.vendor_id != other.vendor_id
    assert first.vendor_id.isdigit()
    assert first.apps[0].product_id != other.apps[0].product_id


def test_iterators_are_repeatable_and_yield_fresh_dicts() -> None:
    vendor = SyntheticVendor(3, "tiny")
    first = list(vendor.transactions())
    first[0]["purchaseDetails"]["saleDate"] = "mutated"
    first[0]["customerDetails"]["country"] = "mutated"
    assert list(vendor.transactions()) != first
    assert list(vendor.transactions()) == list(vendor.transactions())


def test_counts_match_what_the_iterators_yield() -> None:
    vendor = _vendor()
    for as_of in (None, date(2021, 6, 30)):
        counts = vendor.counts(as_of)
        for name in ENTITIES:
            assert counts[name] == sum(1 for _ in getattr(vendor, name)(as_of)), name


def test_sizes_are_roughly_the_number_of_licenses() -> None:
    assert 60 <= _vendor(42, "tiny").counts()["licenses"] <= 110
    assert 700 <= _vendor().counts()["licenses"] <= 950
    assert 180 <= SyntheticVendor(1, 200).counts()["licenses"] <= 240


@pytest.mark.parametrize("as_of", [DEFAULT_TODAY, date(2024, 2, 20), date(2019, 3, 1)])
def test_nothing_is_dated_after_as_of_and_last_updated_is_in_range(as_of: date) -> None:
    vendor = _vendor()
    day = as_of.isoformat()
    for lic in vendor.licenses(as_of):
        assert lic["maintenanceStartDate"] <= lic["lastUpdated"] <= day
        assert lic.get("evaluationSaleDate", "") <= day
        assert lic.get("evaluationStartDate", "") <= day
    for tx in vendor.transactions(as_of):
        pd = tx["purchaseDetails"]
        assert pd["saleDate"] <= tx["lastUpdated"] <= day
    for row in vendor.feedback(as_of):
        assert row["date"] <= day
    for row in vendor.marketing_attribution(as_of):
        assert row["eventTimestamp"][:10] <= day


def test_advance_adds_records_and_bumps_last_updated_of_the_rewritten_ones() -> None:
    vendor = SyntheticVendor(11, "small")
    before = _keyed(vendor)
    old_today = vendor.today
    vendor.advance(45)
    assert vendor.today == old_today + timedelta(days=45)
    after = _keyed(vendor)
    assert set(before) <= set(after)
    assert len(after) > len(before)
    changed = [key for key in before if before[key] != after[key]]
    assert changed, "time travel rewrote nothing"
    for key in changed:
        assert after[key]["lastUpdated"] > old_today.isoformat(), key
    kinds = Counter(key[0] for key in changed)
    assert kinds["L"]
    assert kinds["T"]
    # Time travel is the same as asking for a later as_of day.
    assert after == _keyed(SyntheticVendor(11, "small"), vendor.today)


def test_redrawing_past_the_horizon_changes_no_record_already_shown() -> None:
    near = SyntheticVendor(5, "tiny")
    far = SyntheticVendor(5, "tiny")
    far.counts(far.today + timedelta(days=1500))
    for name in ENTITIES:
        assert list(getattr(near, name)()) == list(getattr(far, name)(far.today)), name


def test_advance_rejects_non_positive_days() -> None:
    with pytest.raises(ValueError, match="days"):
        SyntheticVendor(1, "tiny").advance(0)


def test_keys_are_unique() -> None:
    records = _records()
    tx_keys = [_tx_key(tx) for tx in records["transactions"]]
    assert len(tx_keys) == len(set(tx_keys))
    lic_keys = [_license_key(lic) for lic in records["licenses"]]
    assert len(lic_keys) == len(set(lic_keys))
    addon_ids = [lic["addonLicenseId"] for lic in records["licenses"]]
    assert len(addon_ids) == len(set(addon_ids))


def test_carts_have_several_lines_on_different_licenses() -> None:
    lines: dict[str, list[dict]] = defaultdict(list)
    for tx in _records()["transactions"]:
        lines[tx["transactionId"]].append(tx)
    carts = [group for group in lines.values() if len(group) > 1]
    assert carts
    for group in carts:
        assert len({tx["addonKey"] for tx in group}) == len(group)
        assert len({tx["purchaseDetails"]["saleDate"] for tx in group}) == 1


def test_refunds_are_negative_separate_rows_linked_to_their_original() -> None:
    txs = _records()["transactions"]
    by_key = {_tx_key(tx): tx for tx in txs}
    refunds = [tx for tx in txs if tx["purchaseDetails"]["saleType"] == "Refund"]
    assert refunds
    full = 0
    for refund in refunds:
        pd = refund["purchaseDetails"]
        assert pd["purchasePrice"] < 0
        assert pd["purchasePrice"] < pd["vendorAmount"] <= 0
        assert pd["refundReason"]
        link = pd["originalTransactionDetails"]
        original = by_key[(link["transactionId"], refund["transactionLineItemId"])]
        opd = original["purchaseDetails"]
        assert link["saleDate"] == opd["saleDate"] < pd["saleDate"]
        assert _license_key(original) == _license_key(refund)
        assert (opd["maintenanceStartDate"], opd["maintenanceEndDate"]) == (
            pd["maintenanceStartDate"],
            pd["maintenanceEndDate"],
        )
        assert -pd["purchasePrice"] <= opd["purchasePrice"]
        if pd["purchasePrice"] == -opd["purchasePrice"]:
            full += 1
            assert pd["vendorAmount"] == -opd["vendorAmount"]
            assert original["paymentStatus"] == "Refunded"
            assert (
                original["lastUpdated"] == pd["saleDate"]
                or original["lastUpdated"] > (pd["saleDate"])
            )
    assert 0 < full < len(refunds)


def test_amounts_are_cents_and_atlassian_takes_a_cut() -> None:
    zero = 0
    for tx in _records()["transactions"]:
        pd = tx["purchaseDetails"]
        for field in ("purchasePrice", "vendorAmount"):
            assert isinstance(pd[field], float)
            assert round(pd[field], 2) == pd[field]
        if pd["purchasePrice"] > 0:
            assert 0 < pd["vendorAmount"] < pd["purchasePrice"]
        if pd["purchasePrice"] == 0:
            zero += 1
            assert pd["vendorAmount"] == 0
    assert zero


def test_partner_sales_carry_partner_details_and_discounts() -> None:
    txs = _records()["transactions"]
    partner = [tx for tx in txs if "partnerDetails" in tx]
    assert partner
    assert {tx["partnerDetails"]["partnerType"] for tx in partner} <= {"Expert", "Reseller"}
    kinds = Counter(d["type"] for tx in txs for d in tx["purchaseDetails"].get("discounts", []))
    assert {"EXPERT", "LOYALTY_DISCOUNT", "MARKETPLACE_PROMOTION"} <= set(kinds)
    for tx in txs:
        for discount in tx["purchaseDetails"].get("discounts", []):
            assert ("code" in discount) == (discount["type"] == "MARKETPLACE_PROMOTION")


def test_conversion_rewrites_the_evaluation_license_and_sells_a_new_on_it() -> None:
    vendor = _vendor()
    news = {
        (_license_key(tx), tx["purchaseDetails"]["saleDate"])
        for tx in _records()["transactions"]
        if tx["purchaseDetails"]["saleType"] == "New"
    }
    converted = [lic for lic in _records()["licenses"] if "evaluationSaleDate" in lic]
    assert len(converted) > 20
    checked = 0
    for lic in converted:
        assert lic["licenseType"] == "COMMERCIAL"
        assert lic["maintenanceStartDate"] == lic["evaluationSaleDate"]
        start = date.fromisoformat(lic["evaluationStartDate"])
        sale = date.fromisoformat(lic["evaluationSaleDate"])
        assert lic["daysToConvertEval"] == str((sale - start).days)
        assert (_license_key(lic), lic["evaluationSaleDate"]) in news
        if checked < 15:
            # The same record, as of the evaluation's first day, was the evaluation.
            then = {_license_key(old): old for old in vendor.licenses(start)}
            old = then[_license_key(lic)]
            assert old["licenseType"] == "EVALUATION"
            assert old["maintenanceStartDate"] == lic["evaluationStartDate"]
            assert old["maintenanceEndDate"] == lic["evaluationEndDate"]
            checked += 1


def test_insight_fields_appear_only_with_insights_and_from_july_2018() -> None:
    vendor = _vendor()
    for lic in vendor.licenses(with_data_insights=False):
        assert not set(INSIGHT_FIELDS) & set(lic)
    seen = 0
    for lic in vendor.licenses():
        present = set(INSIGHT_FIELDS) & set(lic)
        if lic["maintenanceStartDate"] < "2018-07-01":
            assert not present
        else:
            assert "installedOnSandbox" in present
            seen += bool(present)
        assert all(isinstance(lic[name], str) for name in present)
    assert seen


def test_identifiers_follow_hosting_and_era() -> None:
    vendor = _vendor()
    licenses = _records()["licenses"]
    cloud = [lic for lic in licenses if lic["hosting"] == "Cloud"]
    assert any("appEntitlementId" not in lic for lic in cloud)
    for lic in cloud:
        assert lic["licenseId"].startswith("SEN-L")
        assert lic["addonLicenseId"].isdigit()
        assert ("appEntitlementId" in lic) == ("appEntitlementNumber" in lic)
        if "appEntitlementId" in lic:
            assert lic["appEntitlementNumber"].startswith("E-")
            assert lic["maintenanceStartDate"] >= "2019"
    assert not any("appEntitlementNumber" in lic for lic in licenses if lic["hosting"] == "Server")
    dc_now = [lic for lic in licenses if lic["hosting"] == "Data Center"]
    assert any("appEntitlementNumber" in lic for lic in dc_now)
    before = [lic for lic in vendor.licenses(date(2025, 8, 31)) if lic["hosting"] == "Data Center"]
    assert before
    assert not any("appEntitlementNumber" in lic for lic in before)
    assert vendor.sticky_license_ids
    sticky = [lic for lic in licenses if lic["addonLicenseId"] in vendor.sticky_license_ids]
    assert len(sticky) == len(vendor.sticky_license_ids)
    assert all(lic["maintenanceStartDate"][:4] == "2018" for lic in sticky)


def test_server_sales_stop_at_end_of_server_sale() -> None:
    server = [
        tx["purchaseDetails"]
        for tx in _records()["transactions"]
        if tx["purchaseDetails"]["hosting"] == "Server"
    ]
    assert server
    assert all(pd["saleDate"] <= "2024-02-15" for pd in server if pd["saleType"] != "Refund")
    assert all(pd["billingPeriod"] == "Annual" for pd in server)


def test_lifecycle_contains_every_kind_of_sale() -> None:
    txs = _records()["transactions"]
    cloud = Counter(
        (tx["purchaseDetails"]["saleType"], tx["purchaseDetails"]["billingPeriod"])
        for tx in txs
        if tx["purchaseDetails"]["hosting"] == "Cloud"
    )
    for sale_type in ("New", "Renewal", "Upgrade", "Downgrade", "Refund"):
        assert cloud[(sale_type, "Monthly")] + cloud[(sale_type, "Annual")], sale_type
    switches = [tx for tx in txs if tx["purchaseDetails"].get("changeInBillingPeriod") == "Yes"]
    assert switches
    assert all(tx["purchaseDetails"]["oldBillingPeriod"] == "Monthly" for tx in switches)
    types = Counter(lic["licenseType"] for lic in _records()["licenses"])
    assert {"EVALUATION", "COMMERCIAL", "ACADEMIC"} <= set(types)
    statuses = Counter(lic["status"] for lic in _records()["licenses"])
    assert {"active", "inactive", "cancelled"} <= set(statuses)


def test_every_recent_month_has_cloud_activity() -> None:
    months: dict[str, Counter] = defaultdict(Counter)
    for lic in _records()["licenses"]:
        if lic["hosting"] != "Cloud":
            continue
        if lic["licenseType"] == "EVALUATION":
            months[lic["maintenanceStartDate"][:7]]["evaluations"] += 1
        if "evaluationStartDate" in lic:
            months[lic["evaluationStartDate"][:7]]["evaluations"] += 1
        if "evaluationSaleDate" in lic:
            months[lic["evaluationSaleDate"][:7]]["conversions"] += 1
    terms: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for tx in _records()["transactions"]:
        pd = tx["purchaseDetails"]
        if pd["hosting"] == "Cloud" and pd["saleType"] != "Refund" and pd["purchasePrice"] > 0:
            terms[_license_key(tx)].add((pd["maintenanceStartDate"], pd["maintenanceEndDate"]))
    # A simplified METRICS.md churn: a term end not inside another term and not followed by
    # a term within 7 days is a cancellation.
    for spans in terms.values():
        for end in {e for _, e in spans}:
            if any(s < end < e for s, e in spans):
                continue
            limit = (date.fromisoformat(end) + timedelta(days=7)).isoformat()
            kind = "renewals" if any(end <= s <= limit for s, _ in spans) else "cancellations"
            months[end[:7]][kind] += 1
    month = date(2025, 11, 1)
    while month < DEFAULT_TODAY.replace(day=1):
        got = months[month.isoformat()[:7]]
        for kind in ("evaluations", "conversions", "cancellations", "renewals"):
            assert got[kind] > 0, (month, kind)
        month = (month + timedelta(days=32)).replace(day=1)


def test_feedback_and_attribution_rows_are_tied_to_licenses() -> None:
    records = _records()
    by_sen = {lic["licenseId"]: lic for lic in records["licenses"]}
    assert records["feedback"]
    for row in records["feedback"]:
        assert row["licenseId"] in by_sen
        assert row["hosting"] == by_sen[row["licenseId"]]["hosting"]
    assert any(row.get("email") == "RTBF" for row in records["feedback"])
    assert any("email" not in row for row in records["feedback"])
    by_id = {lic["addonLicenseId"]: lic for lic in records["licenses"]}
    per_license = Counter(row["addonLicenseId"] for row in records["marketing_attribution"])
    assert max(per_license.values()) > 1
    for row in records["marketing_attribution"]:
        lic = by_id.get(row["addonLicenseId"])
        assert lic is not None, "attribution appears only once its evaluation has started"
        if lic["licenseType"] != "EVALUATION":
            # Converted: the record no longer shows the evaluation start without insights.
            continue
        start = date.fromisoformat(lic["maintenanceStartDate"])
        gap = start - date.fromisoformat(row["eventTimestamp"][:10])
        assert timedelta(0) <= gap <= timedelta(days=30)
        assert row["eventTimestamp"].endswith(".000Z")


def test_contacts_are_unicode_with_rtbf_and_absent_parts() -> None:
    licenses = _records()["licenses"]
    text = json.dumps([lic["contactDetails"] for lic in licenses], ensure_ascii=False)
    assert any(ord(ch) > 0x2000 for ch in text)
    assert "RTBF" in text
    assert any("billingContact" not in lic["contactDetails"] for lic in licenses)
    assert any("partnerDetails" not in lic for lic in licenses)


def test_field_names_exist_in_the_openapi_schema() -> None:
    schemas = json.loads(SPEC.read_text())["components"]["schemas"]

    def check(value: object, schema_name: str, path: str) -> None:
        schema = schemas[schema_name]
        props = schema.get("properties", {})
        assert isinstance(value, dict)
        for key, item in value.items():
            assert key in props, f"{path}.{key} is not in {schema_name}"
            ref = props[key].get("$ref") or props[key].get("items", {}).get("$ref")
            if ref:
                child = ref.rsplit("/", 1)[-1]
                for element in item if isinstance(item, list) else [item]:
                    check(element, child, f"{path}.{key}")
        missing = set(schema.get("required", [])) - set(value)
        assert not missing, f"{path} lacks required {missing}"

    records = _records()
    for name, schema_name in (
        ("licenses", "License"),
        ("transactions", "Transaction"),
        ("feedback", "VendorFeedback"),
        ("marketing_attribution", "MarketingAttributionActivity"),
    ):
        for record in records[name]:
            check(record, schema_name, name)


def test_attribution_appears_when_its_evaluation_starts_dated_up_to_30_days_earlier() -> None:
    vendor = SyntheticVendor(5, "small")
    old_today = vendor.today
    seen = {json.dumps(row, sort_keys=True) for row in vendor.marketing_attribution()}
    vendor.advance(20)
    arrived = [
        row for row in vendor.marketing_attribution() if json.dumps(row, sort_keys=True) not in seen
    ]
    assert arrived, "20 days should start new evaluations with attribution"
    backdated = [r for r in arrived if r["eventTimestamp"][:10] < old_today.isoformat()]
    # The rows an incremental pull by eventTimestamp alone would miss.
    assert backdated
    oldest = min(date.fromisoformat(r["eventTimestamp"][:10]) for r in arrived)
    assert old_today - oldest <= timedelta(days=30)

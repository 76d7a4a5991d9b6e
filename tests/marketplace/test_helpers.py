"""Keys, row hashes, date windows and metric flattening of the marketplace source."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools

import orjson
import pytest

from pipelines.errors import UserError
from pipelines.marketplace.helpers import (
    ContentDigest,
    Window,
    _canonical,
    add_months,
    flatten_metric_aggregates,
    has_insights,
    later,
    license_key,
    license_windows,
    lookback_start,
    parse_date,
    row_hash,
    sort_nested_lists,
    transaction_key,
    transaction_license_key,
    window_params,
    windows,
)

D = dt.date


class TestLicenseKey:
    def test_cloud_license_is_keyed_by_app_entitlement_id(self) -> None:
        record = {"hosting": "Cloud", "appEntitlementId": "ent-1", "addonLicenseId": "123"}
        assert license_key(record) == "ent-1"

    def test_old_cloud_license_without_entitlement_falls_back_to_addon_license_id(self) -> None:
        assert license_key({"hosting": "Cloud", "addonLicenseId": "123"}) == "123"

    def test_data_center_ignores_entitlement_numbers_it_gained_in_2025(self) -> None:
        record = {
            "hosting": "Data Center",
            "addonLicenseId": "456",
            "appEntitlementNumber": "E-9",
            "appEntitlementId": "ent-9",
        }
        assert license_key(record) == "456"

    def test_server_is_keyed_by_addon_license_id(self) -> None:
        assert license_key({"hosting": "Server", "addonLicenseId": "789"}) == "789"

    def test_transaction_reads_hosting_from_purchase_details(self) -> None:
        line = {
            "appEntitlementId": "ent-1",
            "addonLicenseId": "123",
            "purchaseDetails": {"hosting": "Cloud"},
        }
        assert transaction_license_key(line) == "ent-1"
        line["purchaseDetails"] = {"hosting": "Data Center"}
        assert transaction_license_key(line) == "123"

    def test_transaction_key_cannot_collide_by_concatenation(self) -> None:
        a = transaction_key({"transactionId": "AT-1", "transactionLineItemId": "23"})
        b = transaction_key({"transactionId": "AT-12", "transactionLineItemId": "3"})
        assert a != b

    def test_the_copy_with_data_insights_is_recognised(self) -> None:
        assert has_insights({"evaluationOpportunitySize": "NA"})
        assert not has_insights({"licenseId": "SEN-1"})


class TestRowHash:
    def test_is_stable_under_nested_array_order_and_key_order(self) -> None:
        a = {"x": 1, "prorated": [{"date": "2024-01-01", "n": 2}, {"date": "2024-02-01", "n": 1}]}
        b = {"prorated": [{"n": 1, "date": "2024-02-01"}, {"n": 2, "date": "2024-01-01"}], "x": 1}
        assert row_hash(a) == row_hash(b)

    def test_changes_when_a_value_changes(self) -> None:
        assert row_hash({"a": 1, "b": [1, 2]}) != row_hash({"a": 1, "b": [1, 3]})

    def test_distinguishes_missing_from_null(self) -> None:
        assert row_hash({"a": None}) != row_hash({})

    def test_records_without_arrays_hash_as_their_canonical_form(self) -> None:
        # The fast path (no canonical copy) must give the key a canonical copy gives: keys
        # saved in warehouses before it (feedback, attribution, event keys) stay the same.
        event = {
            "addonKey": "app",
            "eventDate": "2026-01-31",
            "licenseDetails": {"monthsValid": 12, "licenseId": "SEN-1", "cloudId": None},
            "amount": 1.5,
            "inGracePeriod": False,
        }
        canonical = orjson.dumps(_canonical(event), option=orjson.OPT_SORT_KEYS)
        assert row_hash(event) == hashlib.blake2b(canonical, digest_size=16).hexdigest()
        reordered = dict(reversed(list(event.items())))
        assert row_hash(reordered) == row_hash(event)
        assert row_hash({**event, "amount": 1.25}) != row_hash(event)

    def test_sorting_nested_lists_keeps_content(self) -> None:
        record = {"tags": ["b", "a"], "inner": {"list": [3, 1, 2]}}
        assert sort_nested_lists(record) == {"tags": ["a", "b"], "inner": {"list": [1, 2, 3]}}


class TestDates:
    def test_add_months_clamps_to_the_end_of_short_months(self) -> None:
        assert add_months(D(2024, 1, 31), 1) == D(2024, 2, 29)
        assert add_months(D(2024, 12, 15), 1) == D(2025, 1, 15)
        assert add_months(D(2024, 3, 31), -1) == D(2024, 2, 29)
        assert add_months(D(2024, 1, 1), -13) == D(2022, 12, 1)

    def test_windows_are_consecutive_inclusive_and_the_last_is_open(self) -> None:
        plan = windows(D(2016, 1, 1), D(2018, 6, 15), 12)
        assert plan == [
            Window(D(2016, 1, 1), D(2016, 12, 31)),
            Window(D(2017, 1, 1), D(2017, 12, 31)),
            Window(D(2018, 1, 1), None),
        ]

    def test_windows_have_no_gap_and_no_overlap(self) -> None:
        plan = windows(D(2016, 3, 17), D(2026, 11, 27), 5)
        for earlier, following in itertools.pairwise(plan):
            assert earlier.end is not None
            assert earlier.end + dt.timedelta(days=1) == following.start
        assert plan[-1].end is None

    def test_licenses_split_at_the_insights_start_with_insights_first(self) -> None:
        assert license_windows(D(2016, 1, 1)) == [
            Window(D(2018, 7, 1), None, True),
            Window(D(2016, 1, 1), D(2018, 6, 30), False),
        ]
        assert license_windows(D(2020, 1, 1)) == [Window(D(2020, 1, 1), None, True)]

    def test_window_params_leave_out_an_open_end(self) -> None:
        assert window_params(Window(D(2020, 1, 1), None)) == {"startDate": "2020-01-01"}
        assert window_params(Window(D(2020, 1, 1), D(2020, 12, 31))) == {
            "startDate": "2020-01-01",
            "endDate": "2020-12-31",
        }

    def test_lookback_starts_before_the_cursor(self) -> None:
        assert lookback_start("2024-03-02", 3) == D(2024, 2, 28)
        assert lookback_start("2024-03-02", 0) == D(2024, 3, 2)

    @pytest.mark.parametrize("bad", ["2024-13-01", "yesterday", "01/02/2024", ""])
    def test_a_bad_date_is_one_clear_sentence(self, bad: str) -> None:
        with pytest.raises(UserError, match=r"--since must be a date like 2024-01-31"):
            parse_date(bad, "--since")

    def test_later_ignores_missing_values(self) -> None:
        assert later(None, "2024-01-01") == "2024-01-01"
        assert later("2024-02-01", "2024-01-01") == "2024-02-01"
        assert later(None, None) is None


class TestMetricAggregates:
    def test_churn_datasets_become_billing_periods(self) -> None:
        body = {
            "total": {"name": "Total", "datasets": []},
            "addons": [
                {
                    "addonKey": "com.a",
                    "datasets": [
                        {
                            "name": "Monthly",
                            "series": [
                                {
                                    "name": "Customers",
                                    "uniqueTotal": 3,
                                    "elements": [
                                        {"date": "2024-01-01", "count": 3},
                                        {"date": "2024-02-01", "count": 0},
                                    ],
                                },
                                {
                                    "name": "Cancellations",
                                    "elements": [{"date": "2024-01-01", "count": 1}],
                                },
                            ],
                        }
                    ],
                }
            ],
        }
        rows = list(flatten_metric_aggregates("churn", body))
        assert len(rows) == 3
        assert rows[0] == {
            "metric": "churn",
            "aggregation": "month",
            "period_start": "2024-01-01",
            "addon_key": "com.a",
            "billing_period": "Monthly",
            "conversion_type": None,
            "series": "Customers",
            "count": 3,
        }

    def test_conversion_series_carry_their_conversion_type(self) -> None:
        body = {
            "addons": [
                {
                    "addonKey": "com.a",
                    "series": [
                        {
                            "name": "Conversions",
                            "conversionType": "Net New",
                            "elements": [{"date": "2024-01-01", "count": 2}],
                        }
                    ],
                }
            ]
        }
        [row] = flatten_metric_aggregates("conversion", body)
        assert row["billing_period"] is None
        assert row["conversion_type"] == "Net New"
        assert row["count"] == 2


def _digest(records: list[dict[str, object]]) -> str:
    digest = ContentDigest()
    for record in records:
        digest.add(record)
    return digest.hexdigest()


class TestContentDigest:
    def test_the_order_of_records_and_keys_does_not_matter(self) -> None:
        a, b = {"id": 1, "status": "active"}, {"status": "paid", "id": 2}
        assert _digest([a, b]) == _digest([{"id": 2, "status": "paid"}, a])

    def test_a_rewritten_field_an_extra_or_a_missing_record_changes_it(self) -> None:
        a, b = {"id": 1, "status": "active"}, {"id": 2, "status": "paid"}
        base = _digest([a, b])
        assert _digest([a, {**b, "status": "refunded"}]) != base
        assert _digest([a, b, {"id": 3}]) != base
        assert _digest([a]) != base
        assert _digest([]) != base

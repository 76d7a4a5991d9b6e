"""Unit tests of the ground-truth metrics: one test per METRICS.md and DECISIONLOG rule."""

from datetime import date
from itertools import count

import pytest

from pipelines.simulator.ground_truth.builder import compute_metrics, license_key
from pipelines.simulator.ground_truth.payloads import aggregate_payload, details_events
from pipelines.simulator.ground_truth.tables import MetricTables, MetricVars, months_between

_line_ids = count(1)
D = date.fromisoformat


def lic(
    key: str,
    *,
    hosting: str = "Cloud",
    addon: str = "app.a",
    license_type: str = "COMMERCIAL",
    start: str = "2024-01-01",
    end: str | None = None,
    eval_start: str | None = None,
    eval_end: str | None = None,
    last_updated: str = "2020-01-01",
    **extra: object,
) -> dict:
    """A v2 license record; Cloud ones carry `key` as appEntitlementId; `extra` adds fields."""
    record = {
        "addonLicenseId": f"L-{key}" if hosting == "Cloud" else key,
        "licenseId": f"SEN-{key}",
        "addonKey": addon,
        "addonName": addon.upper(),
        "hosting": hosting,
        "licenseType": license_type,
        "maintenanceStartDate": start,
        "maintenanceEndDate": end,
        "lastUpdated": last_updated,
    }
    if hosting == "Cloud":
        record["appEntitlementId"] = key
        record["appEntitlementNumber"] = f"E-{key}"
        record["cloudId"] = f"cloud-{key}"
    if eval_start:
        record["evaluationStartDate"] = eval_start
        record["evaluationEndDate"] = eval_end
    return record | extra


def tx(
    key: str,
    start: str,
    end: str,
    *,
    sale: str | None = None,
    sale_type: str = "New",
    price: float = 100.0,
    vendor: float | None = None,
    billing: str = "Monthly",
    hosting: str = "Cloud",
    addon: str = "app.a",
    last_updated: str = "2020-01-01",
    **extra: object,
) -> dict:
    """A v2 transaction line; the sale date defaults to the maintenance start; `extra` adds
    top-level fields."""
    line = next(_line_ids)
    record = {
        "transactionId": f"AT-{line}",
        "transactionLineItemId": f"{line:06d}",
        "addonLicenseId": f"L-{key}" if hosting == "Cloud" else key,
        "licenseId": f"SEN-{key}",
        "addonKey": addon,
        "addonName": addon.upper(),
        "lastUpdated": last_updated,
        "purchaseDetails": {
            "saleDate": sale or start,
            "saleType": sale_type,
            "hosting": hosting,
            "billingPeriod": billing,
            "purchasePrice": price,
            "vendorAmount": price * 0.8 if vendor is None else vendor,
            "maintenanceStartDate": start,
            "maintenanceEndDate": end,
        },
    }
    if hosting == "Cloud":
        record["appEntitlementId"] = key
    return record | extra


def opportunities(tables: MetricTables) -> list[tuple[date, str]]:
    """(end_date, outcome) of every renewal opportunity."""
    return [(o["end_date"], o["outcome"]) for o in tables.renewal_opportunities]


def mrr_of(tables: MetricTables, key: str) -> list[tuple[date, float, str]]:
    """(month, mrr, movement_type) of one license's spine."""
    return [
        (m["month"], m["mrr"], m["movement_type"])
        for m in tables.mrr_movements
        if m["license_key"] == key
    ]


@pytest.fixture
def mixed() -> MetricTables:
    """Two apps, both billing periods, renewals, churn, pending, conversions, Server and DC."""
    licenses = [
        lic("e1", license_type="EVALUATION", start="2024-01-02", end="2024-02-01"),
        lic("e2", license_type="EVALUATION", start="2024-01-10", end="2024-02-09"),
        lic("e3", license_type="EVALUATION", start="2024-03-04", end="2024-04-03", addon="app.b"),
        lic("p1", eval_start="2024-02-01", eval_end="2024-03-01", start="2024-01-01"),
        lic("s1", hosting="Server"),
        # An edition upgrade trial, converted by a co-terminated Upgrade line of the edition.
        lic("u1", upgradeEvaluationStartDate="2024-02-05", upgradeEvaluatingEdition="Advanced"),
    ]
    transactions = [
        tx("u1", "2024-01-05", "2025-01-05", billing="Annual", price=1200),
        tx(
            "u1",
            "2024-02-05",
            "2025-01-05",
            sale="2024-02-20",
            sale_type="Upgrade",
            billing="Annual",
            price=550,
            appEdition="Advanced",
        ),
        tx("e1", "2024-01-20", "2024-02-20"),
        tx("e1", "2024-02-20", "2024-03-20", sale_type="Renewal"),
        tx("e1", "2024-03-20", "2024-04-20", sale_type="Renewal", price=150),
        tx("e3", "2024-04-01", "2025-04-01", billing="Annual", price=1200, addon="app.b"),
        tx("p1", "2024-01-01", "2024-02-01"),
        tx("p1", "2024-02-20", "2024-03-20", sale_type="New", price=300),
        tx("m1", "2024-01-15", "2024-02-15", addon="app.b"),
        tx("m1", "2024-02-15", "2024-03-15", sale_type="Renewal", addon="app.b"),
        tx("a1", "2023-03-01", "2024-03-01", billing="Annual", price=2400),
        tx("a1", "2024-03-03", "2025-03-03", billing="Annual", price=2400, sale_type="Renewal"),
        tx("a2", "2023-04-01", "2024-04-01", billing="Annual", price=1200),
        tx("s1", "2024-01-01", "2025-01-01", billing="Annual", hosting="Server", price=600),
        tx("d1", "2024-02-01", "2024-03-01", hosting="Data Center", price=50),
    ]
    return compute_metrics(licenses, transactions, as_of=D("2024-04-25"))


# --- identities -------------------------------------------------------------------------------


def test_license_key_is_entitlement_id_for_cloud_else_addon_license_id() -> None:
    assert license_key({"hosting": "Cloud", "appEntitlementId": "E", "addonLicenseId": "A"}) == "E"
    assert license_key({"hosting": "Cloud", "appEntitlementId": None, "addonLicenseId": "A"}) == "A"
    assert license_key(
        {"hosting": "Data Center", "appEntitlementId": "E", "addonLicenseId": "A"}
    ) == ("A")


def test_license_key_of_a_transaction_reads_hosting_from_purchase_details() -> None:
    assert license_key(tx("k", "2024-01-01", "2024-02-01")) == "k"
    assert license_key(tx("k", "2024-01-01", "2024-02-01", hosting="Server")) == "k"
    server = tx("k", "2024-01-01", "2024-02-01", hosting="Server")
    server["appEntitlementId"] = "ent"
    assert license_key(server) == "k"


def test_as_of_defaults_to_the_latest_last_updated_of_licenses_and_transactions() -> None:
    tables = compute_metrics(
        [lic("a", last_updated="2024-05-03")],
        [tx("a", "2024-01-01", "2024-02-01", last_updated="2024-05-01")],
    )
    assert tables.as_of == D("2024-05-03")
    tables = compute_metrics(
        [lic("a", last_updated="2024-05-03")],
        [tx("a", "2024-01-01", "2024-02-01", last_updated="2024-06-09")],
    )
    assert tables.as_of == D("2024-06-09")


# --- terms ------------------------------------------------------------------------------------


def test_full_refund_makes_the_term_count_nowhere() -> None:
    tables = compute_metrics(
        [lic("k", license_type="EVALUATION", start="2023-12-20", end="2024-01-19")],
        [
            tx("k", "2024-01-01", "2024-02-01"),
            tx("k", "2024-01-01", "2024-02-01", sale="2024-01-05", sale_type="Refund", price=-100),
        ],
        as_of=D("2024-06-01"),
    )
    assert [t["is_refunded"] for t in tables.terms] == [True]
    assert tables.terms[0]["amount"] == 0.0
    assert tables.renewal_opportunities == []
    assert tables.mrr_movements == []
    assert tables.evaluations[0]["is_converted"] is False


def test_partial_refund_nets_the_amount_of_the_term() -> None:
    tables = compute_metrics(
        [],
        [
            tx("k", "2024-01-01", "2024-02-01", price=100, vendor=80),
            tx("k", "2024-01-01", "2024-02-01", sale_type="Refund", price=-40, vendor=-32),
        ],
        as_of=D("2024-01-20"),
    )
    [term] = tables.terms
    assert (term["amount"], term["purchase_price"], term["is_refunded"]) == (48.0, 60.0, False)
    assert mrr_of(tables, "k") == [(D("2024-01-01"), 48.0, "new")]


def test_refund_with_no_matching_term_counts_nowhere() -> None:
    tables = compute_metrics(
        [],
        [
            tx("k", "2024-01-01", "2024-02-01", price=100, vendor=80),
            tx("k", "2024-01-01", "2024-03-01", sale_type="Refund", price=-100, vendor=-80),
        ],
        as_of=D("2024-01-20"),
    )
    assert [t["amount"] for t in tables.terms] == [80.0]


def test_zero_price_lines_make_no_term() -> None:
    tables = compute_metrics([], [tx("k", "2024-01-01", "2024-02-01", price=0)], D("2024-03-01"))
    assert tables.terms == []
    assert tables.mrr_movements == []


def test_sales_after_as_of_are_not_counted_but_terms_starting_after_it_are() -> None:
    tables = compute_metrics(
        [],
        [
            tx("k", "2024-01-01", "2024-02-01"),
            tx("k", "2024-02-01", "2024-03-01", sale="2024-01-28", sale_type="Renewal"),
            tx("k", "2024-03-01", "2024-04-01", sale="2024-02-25", sale_type="Renewal"),
        ],
        as_of=D("2024-01-30"),
    )
    assert [t["start_date"] for t in tables.terms] == [D("2024-01-01"), D("2024-02-01")]


def test_term_amount_is_rounded_to_cents_after_summing() -> None:
    lines = [tx("k", "2024-01-01", "2024-02-01", price=0.1, vendor=0.1) for _ in range(3)]
    tables = compute_metrics([], lines, as_of=D("2024-01-20"))
    assert tables.terms[0]["amount"] == 0.3


def test_amount_basis_purchase_price_sums_purchase_price() -> None:
    lines = [tx("k", "2024-01-01", "2024-02-01", price=100, vendor=70)]
    default = compute_metrics([], lines, as_of=D("2024-01-20"))
    by_price = compute_metrics(
        [], lines, as_of=D("2024-01-20"), params=MetricVars(amount_basis="purchase_price")
    )
    assert default.terms[0]["amount"] == 70.0
    assert by_price.terms[0]["amount"] == 100.0
    assert by_price.mrr[0]["mrr"] == 100.0


def test_unknown_amount_basis_is_refused() -> None:
    with pytest.raises(ValueError, match="amount_basis"):
        compute_metrics([], [], as_of=D("2024-01-01"), params=MetricVars(amount_basis="net"))


def test_billing_period_addon_and_hosting_come_from_the_latest_paid_transaction() -> None:
    tables = compute_metrics(
        [],
        [
            tx("k", "2024-01-01", "2025-01-01", billing="Monthly", price=100),
            tx("k", "2024-01-01", "2025-01-01", sale="2024-01-05", billing="Annual", price=50),
        ],
        as_of=D("2025-02-01"),
    )
    assert tables.terms[0]["billing_period"] == "Annual"
    assert tables.renewal_opportunities[0]["billing_period"] == "Annual"


# --- renewal and churn ------------------------------------------------------------------------


def test_upgrade_inside_a_term_makes_no_opportunity_at_the_old_end() -> None:
    tables = compute_metrics(
        [],
        [
            tx("k", "2024-01-01", "2025-01-01", billing="Annual", price=1200),
            tx("k", "2024-06-15", "2025-06-15", billing="Annual", price=2400, sale_type="Upgrade"),
        ],
        as_of=D("2025-08-01"),
    )
    assert opportunities(tables) == [(D("2025-06-15"), "cancelled")]


def test_monthly_to_annual_switch_makes_no_opportunity_inside_the_annual_term() -> None:
    tables = compute_metrics(
        [],
        [
            tx("k", "2024-01-01", "2024-02-01"),
            tx("k", "2024-02-01", "2024-03-01", sale_type="Renewal"),
            tx("k", "2024-02-15", "2025-02-15", billing="Annual", price=1200, sale_type="Upgrade"),
        ],
        as_of=D("2024-12-01"),
    )
    assert opportunities(tables) == [(D("2024-02-01"), "renewed")]
    assert tables.renewal_opportunities[0]["billing_period"] == "Monthly"


def test_renewal_starting_within_grace_days_is_renewed() -> None:
    renewal = tx("k", "2024-02-08", "2024-03-08", sale_type="Renewal")
    tables = compute_metrics(
        [], [tx("k", "2024-01-01", "2024-02-01"), renewal], as_of=D("2024-02-20")
    )
    [opp] = tables.renewal_opportunities
    assert opp["outcome"] == "renewed"
    assert opp["renewal_start_date"] == D("2024-02-08")
    assert opp["renewal_transaction_id"] == renewal["transactionId"]


def test_renewal_just_outside_grace_is_a_cancellation_then_a_reactivation_in_mrr() -> None:
    tables = compute_metrics(
        [],
        [
            tx("k", "2023-12-29", "2024-01-29"),
            tx("k", "2024-02-06", "2024-03-06", sale_type="Renewal"),
        ],
        as_of=D("2024-02-20"),
    )
    assert opportunities(tables)[0] == (D("2024-01-29"), "cancelled")
    assert mrr_of(tables, "k") == [
        (D("2023-12-01"), 80.0, "new"),
        (D("2024-01-01"), 0.0, "churn"),
        (D("2024-02-01"), 80.0, "reactivation"),
    ]


def test_opportunity_is_cancelled_when_end_plus_grace_days_equals_as_of() -> None:
    lines = [tx("k", "2024-01-01", "2024-02-01")]
    assert opportunities(compute_metrics([], lines, as_of=D("2024-02-08"))) == [
        (D("2024-02-01"), "cancelled")
    ]


def test_opportunity_is_pending_one_day_before_end_plus_grace_days() -> None:
    tables = compute_metrics([], [tx("k", "2024-01-01", "2024-02-01")], as_of=D("2024-02-07"))
    assert opportunities(tables) == [(D("2024-02-01"), "pending")]
    [row] = tables.churn
    assert (row["opportunities"], row["cancellations"], row["pending"]) == (0, 0, 1)
    assert row["churn_rate"] is None
    assert tables.renewal[0]["renewal_rate"] is None


def test_grace_days_is_a_parameter() -> None:
    lines = [tx("k", "2024-01-01", "2024-02-01"), tx("k", "2024-02-10", "2024-03-10")]
    strict = compute_metrics([], lines, as_of=D("2024-03-01"))
    lenient = compute_metrics([], lines, as_of=D("2024-03-01"), params=MetricVars(grace_days=9))
    assert opportunities(strict) == [(D("2024-02-01"), "cancelled")]
    assert opportunities(lenient) == [(D("2024-02-01"), "renewed")]


def test_term_ending_after_as_of_is_not_an_opportunity_yet() -> None:
    tables = compute_metrics([], [tx("k", "2024-01-01", "2024-02-01")], as_of=D("2024-01-31"))
    assert tables.renewal_opportunities == []


def test_server_and_data_center_are_excluded_from_churn_but_counted_in_mrr(
    mixed: MetricTables,
) -> None:
    assert not {"s1", "d1"} & {o["license_key"] for o in mixed.renewal_opportunities}
    assert mrr_of(mixed, "s1")[0] == (D("2024-01-01"), 40.0, "new")
    assert mrr_of(mixed, "d1")[:2] == [
        (D("2024-02-01"), 40.0, "new"),
        (D("2024-03-01"), 0.0, "churn"),
    ]


def test_churn_rate_plus_renewal_rate_is_one_in_every_row_with_opportunities(
    mixed: MetricTables,
) -> None:
    assert len(mixed.churn) == len(mixed.renewal) >= 4
    for churn, renewal in zip(mixed.churn, mixed.renewal, strict=True):
        assert churn["opportunities"] == renewal["opportunities"]
        assert churn["opportunities"] == churn["cancellations"] + renewal["renewals"]
        if churn["opportunities"]:
            assert churn["churn_rate"] + renewal["renewal_rate"] == pytest.approx(1.0)


def test_churn_and_renewal_rows_by_month_app_and_billing_period(mixed: MetricTables) -> None:
    grains = {(r["month"], r["addon_key"], r["billing_period"]): r for r in mixed.churn}
    assert grains[(D("2024-03-01"), "app.a", "Annual")]["opportunities"] == 1
    assert grains[(D("2024-03-01"), "app.a", "Annual")]["cancellations"] == 0
    assert grains[(D("2024-04-01"), "app.a", "Annual")]["churn_rate"] == 1.0
    assert grains[(D("2024-03-01"), "app.b", "Monthly")]["cancellations"] == 1
    assert grains[(D("2024-04-01"), "app.a", "Monthly")]["pending"] == 1


# --- conversion -------------------------------------------------------------------------------


def _evaluation_with_sale(sale: str, as_of: str = "2024-06-01") -> dict:
    tables = compute_metrics(
        [lic("k", license_type="EVALUATION", start="2024-01-01", end="2024-01-31")],
        [tx("k", sale, "2024-12-01")],
        as_of=D(as_of),
    )
    [evaluation] = tables.evaluations
    return evaluation


def test_new_sale_on_the_last_day_of_the_conversion_window_converts() -> None:
    evaluation = _evaluation_with_sale("2024-03-01")
    assert evaluation["is_converted"] is True
    assert evaluation["days_to_convert"] == 60
    assert evaluation["conversion_sale_date"] == D("2024-03-01")


def test_new_sale_after_the_conversion_window_does_not_convert() -> None:
    evaluation = _evaluation_with_sale("2024-03-02")
    assert evaluation["is_converted"] is False
    assert evaluation["days_to_convert"] is None


def test_earliest_new_sale_in_the_window_converts() -> None:
    tables = compute_metrics(
        [lic("k", license_type="EVALUATION", start="2024-01-01", end="2024-01-31")],
        [tx("k", "2024-01-20", "2024-02-20"), tx("k", "2024-01-10", "2024-01-20")],
        as_of=D("2024-06-01"),
    )
    assert tables.evaluations[0]["conversion_sale_date"] == D("2024-01-10")


def test_evaluation_is_open_until_end_plus_window_reaches_as_of() -> None:
    assert _evaluation_with_sale("2024-01-15", as_of="2024-03-01")["is_open"] is False
    open_one = _evaluation_with_sale("2024-01-15", as_of="2024-02-29")
    assert open_one["is_open"] is True
    assert open_one["is_converted"] is True


def test_open_evaluations_are_counted_in_evaluations() -> None:
    tables = compute_metrics(
        [
            lic("a", license_type="EVALUATION", start="2024-05-01", end="2024-05-31"),
            lic("b", license_type="EVALUATION", start="2024-05-20", end="2024-06-19"),
        ],
        [],
        as_of=D("2024-06-20"),
    )
    [row] = tables.conversion
    assert (row["evaluations"], row["open_evaluations"], row["conversions"]) == (2, 2, 0)
    assert row["conversion_rate"] == 0.0
    assert row["median_days_to_convert"] is None


def test_net_new_evaluation_after_an_earlier_term_is_a_returning_customer_not_upgrade() -> None:
    tables = compute_metrics(
        [
            lic("new", license_type="EVALUATION", start="2023-06-01", end="2023-07-01"),
            lic("back", eval_start="2023-06-01", eval_end="2023-07-01", start="2023-01-01"),
        ],
        [
            tx("new", "2023-06-20", "2023-07-20"),
            tx("back", "2023-01-01", "2024-01-01", billing="Annual", price=1200),
            tx("back", "2023-06-20", "2024-06-20", billing="Annual", price=2400),
        ],
        as_of=D("2023-12-01"),
    )
    assert {
        e["license_key"]: (e["conversion_type"], e["is_returning_customer"], e["is_converted"])
        for e in tables.evaluations
    } == {"new": ("Net New", False, True), "back": ("Net New", True, True)}
    [row] = tables.conversion
    assert (row["evaluations"], row["conversions"], row["returning_evaluations"]) == (2, 1 + 1, 1)


def test_evaluations_are_read_from_both_forms_and_deduplicated() -> None:
    tables = compute_metrics(
        [
            # The rewritten, converted license and a stale evaluation version of it.
            lic("k", eval_start="2024-01-01", eval_end="2024-01-31", start="2024-01-15"),
            lic("k", license_type="EVALUATION", start="2024-01-01", end="2024-01-31"),
            lic("s", hosting="Server", license_type="EVALUATION", start="2024-01-01"),
        ],
        [tx("k", "2024-01-15", "2024-02-15")],
        as_of=D("2024-06-01"),
    )
    assert [(e["license_key"], e["is_converted"]) for e in tables.evaluations] == [("k", True)]


def test_median_days_to_convert_interpolates() -> None:
    tables = compute_metrics(
        [
            lic(k, license_type="EVALUATION", start="2024-01-01", end="2024-01-31")
            for k in ("a", "b")
        ],
        [tx("a", "2024-01-10", "2024-02-10"), tx("b", "2024-01-21", "2024-02-21")],
        as_of=D("2024-06-01"),
    )
    assert tables.conversion[0]["median_days_to_convert"] == 14.5


# --- recurring revenue ------------------------------------------------------------------------


def test_mrr_movements_new_expansion_contraction_churn_unchanged() -> None:
    tables = compute_metrics(
        [],
        [
            tx("k", "2024-01-01", "2024-02-01", price=100, vendor=100),
            tx("k", "2024-02-01", "2024-03-01", price=150, vendor=150, sale_type="Upgrade"),
            tx("k", "2024-03-01", "2024-04-01", price=120, vendor=120, sale_type="Downgrade"),
        ],
        as_of=D("2024-05-15"),
    )
    rows = [m for m in tables.mrr_movements if m["license_key"] == "k"]
    assert [(r["movement_type"], r["movement_amount"]) for r in rows] == [
        ("new", 100.0),
        ("expansion", 50.0),
        ("contraction", -30.0),
        ("churn", -120.0),
        ("unchanged", 0.0),
    ]
    assert [r["prior_mrr"] for r in rows] == [0.0, 100.0, 150.0, 120.0, 0.0]


def test_a_cent_of_drift_is_a_movement_no_tolerance() -> None:
    tables = compute_metrics(
        [],
        [
            tx("k", "2024-01-01", "2024-02-01", vendor=100.0),
            tx("k", "2024-02-01", "2024-03-01", vendor=100.01, sale_type="Renewal"),
            tx("k", "2024-03-01", "2024-04-01", vendor=100.01, sale_type="Renewal"),
        ],
        as_of=D("2024-03-20"),
    )
    assert [m for _, _, m in mrr_of(tables, "k")] == ["new", "expansion", "unchanged"]
    assert tables.mrr[1]["expansion_mrr"] == pytest.approx(0.01)


def test_mrr_snapshot_in_the_as_of_month_is_as_of_not_the_month_end() -> None:
    tables = compute_metrics([], [tx("k", "2024-02-20", "2024-03-20")], as_of=D("2024-03-15"))
    assert mrr_of(tables, "k") == [
        (D("2024-02-01"), 80.0, "new"),
        (D("2024-03-01"), 80.0, "unchanged"),
    ]


def test_mrr_snapshot_takes_the_later_starting_of_two_overlapping_terms() -> None:
    tables = compute_metrics(
        [],
        [
            tx("k", "2024-01-01", "2025-01-01", billing="Annual", price=1200, vendor=1200),
            tx("k", "2024-01-20", "2025-01-20", billing="Annual", price=2400, vendor=2400),
        ],
        as_of=D("2024-02-10"),
    )
    assert mrr_of(tables, "k") == [
        (D("2024-01-01"), 200.0, "new"),
        (D("2024-02-01"), 200.0, "unchanged"),
    ]


def test_annual_term_mrr_is_amount_over_twelve_and_arr_is_mrr_times_twelve() -> None:
    tables = compute_metrics(
        [], [tx("k", "2024-01-01", "2025-01-01", billing="Annual", price=1500)], D("2024-01-31")
    )
    [row] = tables.mrr
    assert (row["mrr"], row["arr"], row["paying_licenses"]) == (100.0, 1200.0, 1)


def test_mrr_spine_runs_from_the_first_term_to_the_as_of_month_with_zero_months() -> None:
    tables = compute_metrics([], [tx("k", "2024-01-01", "2024-02-01")], as_of=D("2024-06-03"))
    months = [m for m, _, _ in mrr_of(tables, "k")]
    assert months == [D(f"2024-0{n}-01") for n in range(1, 7)]
    assert [r["month"] for r in tables.mrr] == months
    assert tables.mrr[-1]["paying_licenses"] == 0


def test_movements_add_up_to_closing_minus_opening_mrr(mixed: MetricTables) -> None:
    columns = ("new_mrr", "expansion_mrr", "contraction_mrr", "churned_mrr", "reactivation_mrr")
    opening: dict[str, float] = {}
    for row in mixed.mrr:
        moved = sum(row[c] for c in columns)
        assert moved == pytest.approx(row["mrr"] - opening.get(row["addon_key"], 0.0))
        opening[row["addon_key"]] = row["mrr"]
    for row in mixed.mrr_movements:
        assert row["movement_amount"] == pytest.approx(row["mrr"] - row["prior_mrr"])


# --- API payloads -----------------------------------------------------------------------------


def test_churn_payload_splits_monthly_and_annual_with_customers_and_cancellations(
    mixed: MetricTables,
) -> None:
    payload = aggregate_payload(mixed, "churn", aggregation="month", addon_names={"app.a": "A"})
    assert set(payload) == {"total", "addons"}
    datasets = payload["total"]["datasets"]
    assert [d["name"] for d in datasets] == ["Monthly", "Annual"]
    assert [s["name"] for s in datasets[0]["series"]] == ["Customers", "Cancellations"]
    assert all("uniqueTotal" in s for d in datasets for s in d["series"])
    annual = {s["name"]: s for s in datasets[1]["series"]}
    assert annual["Customers"]["elements"] == [
        {"date": "2024-02-01", "count": 0},
        {"date": "2024-03-01", "count": 1},
        {"date": "2024-04-01", "count": 1},
    ]
    assert annual["Cancellations"]["uniqueTotal"] == 1
    assert [(a["addonKey"], a["name"]) for a in payload["addons"]] == [
        ("app.a", "A"),
        ("app.b", "app.b"),
    ]


def test_month_payload_counts_equal_the_churn_and_renewal_tables(mixed: MetricTables) -> None:
    for metric, numerator, column in (
        ("churn", "Cancellations", "cancellations"),
        ("renewal", "Renewals", "renewals"),
    ):
        payload = aggregate_payload(mixed, metric, aggregation="month")
        from_payload = {}
        for addon in payload["addons"]:
            for dataset in addon["datasets"]:
                for series in dataset["series"]:
                    for element in series["elements"]:
                        grain = (D(element["date"]), addon["addonKey"], dataset["name"])
                        from_payload[(*grain, series["name"])] = element["count"]
        table = mixed.churn if metric == "churn" else mixed.renewal
        for row in table:
            grain = (row["month"], row["addon_key"], row["billing_period"])
            assert from_payload.get((*grain, numerator), 0) == row[column]
            denominator = "Customers" if metric == "churn" else "Renewal opportunities"
            assert from_payload.get((*grain, denominator), 0) == row["opportunities"]


def test_renewal_payload_has_no_unique_total() -> None:
    tables = compute_metrics([], [tx("k", "2024-01-01", "2024-02-01")], as_of=D("2024-03-01"))
    payload = aggregate_payload(tables, "renewal", aggregation="month")
    series = payload["total"]["datasets"][0]["series"]
    assert [s["name"] for s in series] == ["Renewal opportunities", "Renewals"]
    assert all("uniqueTotal" not in s for s in series)


def test_week_payload_buckets_by_iso_week_monday_and_fills_empty_weeks() -> None:
    tables = compute_metrics(
        [],
        [tx("a", "2024-01-03", "2024-02-03"), tx("b", "2024-01-20", "2024-02-18")],
        as_of=D("2024-04-01"),
    )
    payload = aggregate_payload(tables, "churn", aggregation="week")
    customers = payload["total"]["datasets"][0]["series"][0]["elements"]
    # 2024-02-03 is a Saturday (week of Mon 2024-01-29); 2024-02-18 a Sunday (Mon 2024-02-12).
    assert customers == [
        {"date": "2024-01-29", "count": 1},
        {"date": "2024-02-05", "count": 0},
        {"date": "2024-02-12", "count": 1},
    ]


def test_payload_start_and_end_keep_the_periods_starting_inside_them(mixed: MetricTables) -> None:
    payload = aggregate_payload(
        mixed, "churn", aggregation="month", start=D("2024-03-01"), end=D("2024-03-31")
    )
    dates = {
        e["date"] for d in payload["total"]["datasets"] for s in d["series"] for e in s["elements"]
    }
    assert dates == {"2024-03-01"}
    weekly = aggregate_payload(mixed, "churn", aggregation="week", start=D("2024-03-01"))
    first = weekly["total"]["datasets"][0]["series"][0]["elements"][0]["date"]
    # The week of 2024-02-26 holds 2024-03-01 but starts before it, so it is left out.
    assert first >= "2024-03-04"


def test_conversion_payload_series_without_and_with_group_by_conversion_type(
    mixed: MetricTables,
) -> None:
    flat = aggregate_payload(mixed, "conversion", aggregation="month")
    assert "datasets" not in flat["total"]
    assert [s["name"] for s in flat["total"]["series"]] == ["Evaluations", "Conversions"]
    assert all("conversionType" not in s for s in flat["total"]["series"])
    grouped = aggregate_payload(mixed, "conversion", aggregation="month", group_by="conversionType")
    assert [(s["name"], s["conversionType"]) for s in grouped["total"]["series"]] == [
        ("Evaluations", "Net New"),
        ("Evaluations", "Upgrade"),
        ("Conversions", "Net New"),
        ("Conversions", "Upgrade"),
    ]
    totals = {
        (s["name"], s.get("conversionType")): sum(e["count"] for e in s["elements"])
        for s in grouped["total"]["series"]
    }
    assert totals[("Evaluations", "Net New")] == 4
    assert totals[("Evaluations", "Upgrade")] == 1
    assert totals[("Conversions", "Upgrade")] == 1
    assert sum(e["count"] for e in flat["total"]["series"][1]["elements"]) == sum(
        r["conversions"] for r in mixed.conversion
    )


def test_payload_refuses_an_unknown_metric(mixed: MetricTables) -> None:
    with pytest.raises(ValueError, match="metric"):
        aggregate_payload(mixed, "mrr")


# --- details ----------------------------------------------------------------------------------


def test_details_event_counts_equal_cancellations_renewals_and_conversions(
    mixed: MetricTables,
) -> None:
    assert len(details_events(mixed, "churn")) == sum(r["cancellations"] for r in mixed.churn)
    assert len(details_events(mixed, "renewal")) == sum(r["renewals"] for r in mixed.renewal)
    assert len(details_events(mixed, "conversion")) == sum(
        r["conversions"] for r in mixed.conversion
    )


def test_details_events_are_shaped_as_the_api_and_sorted(mixed: MetricTables) -> None:
    events = details_events(mixed, "renewal")
    assert [(e["eventDate"], e["addonKey"]) for e in events] == sorted(
        (e["eventDate"], e["addonKey"]) for e in events
    )
    first = events[0]
    assert set(first) >= {"addonKey", "addonName", "hosting", "lastUpdated", "eventDate"}
    assert first["hosting"] == "Cloud"
    assert first["transactionId"].startswith("AT-")
    details = first["licenseDetails"]
    assert {"licenseId", "maintenanceStartDate", "maintenanceEndDate", "monthsValid"} <= set(
        details
    )
    churned = details_events(mixed, "churn")
    assert all("transactionId" not in e for e in churned)
    annual = next(e for e in churned if e["licenseDetails"]["maintenanceEndDate"] == "2024-04-01")
    assert annual["licenseDetails"]["monthsValid"] == 12


def test_details_event_reads_identity_from_the_license_record() -> None:
    tables = compute_metrics(
        [lic("k", license_type="EVALUATION", start="2024-01-01", end="2024-01-31")],
        [tx("k", "2024-01-10", "2024-02-10")],
        as_of=D("2024-03-01"),
    )
    [event] = details_events(tables, "conversion")
    assert event["eventDate"] == "2024-01-10"
    assert event["licenseDetails"]["licenseId"] == "SEN-k"
    assert event["licenseDetails"]["appEntitlementNumber"] == "E-k"
    assert event["addonName"] == "APP.A"
    override = {"k": {**lic("k"), "licenseId": "SEN-other", "lastUpdated": "2024-02-02"}}
    [event] = details_events(tables, "conversion", licenses_by_key=override)
    assert (event["licenseDetails"]["licenseId"], event["lastUpdated"]) == (
        "SEN-other",
        "2024-02-02",
    )


# --- interface --------------------------------------------------------------------------------

COLUMNS = {
    "terms": "license_key addon_key hosting start_date end_date billing_period amount "
    "purchase_price is_refunded",
    "renewal_opportunities": "license_key addon_key end_date month billing_period outcome "
    "renewal_start_date renewal_transaction_id",
    "churn": "month addon_key billing_period opportunities cancellations pending churn_rate "
    "is_complete",
    "renewal": "month addon_key billing_period opportunities renewals pending renewal_rate "
    "is_complete",
    "evaluations": "license_key addon_key start_date end_date is_converted conversion_sale_date "
    "conversion_transaction_id days_to_convert conversion_type is_open is_returning_customer",
    "conversion": "month addon_key conversion_type evaluations conversions open_evaluations "
    "returning_evaluations conversion_rate median_days_to_convert is_complete",
    "mrr_movements": "month license_key addon_key mrr prior_mrr movement_type movement_amount",
    "mrr": "month addon_key mrr arr new_mrr expansion_mrr contraction_mrr churned_mrr "
    "reactivation_mrr paying_licenses gross_mrr_churn_rate net_mrr_churn_rate quick_ratio arpa "
    "is_complete",
    # The v2 tables named after the marts (METRICS.md "The marts and their columns").
    "customers": "customer_key hostings apps first_paid_month first_hosting current_mrr company "
    "country region",
    "customer_mrr": "month customer_key mrr movement movement_mrr",
    "customer_kpis": "month paying_customers mrr new_mrr expansion_mrr contraction_mrr "
    "churned_mrr reactivation_mrr logo_churn_rate arpa is_complete",
    "retention_cohorts": "cohort_month months_since customers active_customers starting_mrr mrr "
    "retained_mrr nrr grr logo_retention",
    "retention_cohorts_by_hosting": "first_hosting cohort_month months_since customers "
    "active_customers starting_mrr mrr retained_mrr nrr grr logo_retention",
    "churn_events": "license_key end_date customer_key addon_key billing_period tier "
    "partner_name tenure_months mrr_lost feedback_type feedback_reason",
    "renewal_book": "license_key due_date customer_key addon_key billing_period days_until_due "
    "arr_at_stake status",
}


@pytest.mark.parametrize("table", sorted(COLUMNS))
def test_every_table_has_exactly_the_interface_columns(mixed: MetricTables, table: str) -> None:
    rows = getattr(mixed, table)
    assert rows
    assert all(list(row) == COLUMNS[table].split() for row in rows)


def test_mrr_movements_are_ordered_by_month_then_license(mixed: MetricTables) -> None:
    keys = [(m["month"], m["license_key"]) for m in mixed.mrr_movements]
    assert keys == sorted(keys)


def test_app_mrr_is_the_sum_of_license_mrr() -> None:
    lines = [
        tx(k, "2024-01-01", "2025-01-01", billing="Annual", price=1, vendor=100.01)
        for k in ("a", "b", "c")
    ]
    [row] = compute_metrics([], lines, as_of=D("2024-01-31")).mrr
    assert row["mrr"] == pytest.approx(30003 / 1200, abs=1e-12)
    assert row["new_mrr"] == row["mrr"]


# --- contract v2 ------------------------------------------------------------------------------


def mrr_by_month(tables: MetricTables, key: str) -> dict[str, float]:
    """'YYYY-MM' -> one license's MRR."""
    return {m.isoformat()[:7]: round(v, 6) for m, v, _ in mrr_of(tables, key)}


@pytest.mark.parametrize(
    ("start", "end", "months"),
    [
        ("2024-01-01", "2025-01-01", 12.0),
        ("2024-03-15", "2024-04-15", 1.0),
        ("2024-01-01", "2026-01-01", 24.0),
        ("2024-07-01", "2025-01-01", 6.0),
        ("2024-01-31", "2024-02-29", 1.0),  # Jan 31 + 1 month clamps to Feb 29
        ("2023-01-31", "2023-02-28", 1.0),
        ("2024-01-31", "2024-03-15", 1 + 15 / 31),  # Feb 29 -> Mar 15 of Feb 29 -> Mar 31
        ("2024-01-15", "2024-01-20", 5 / 31),
    ],
)
def test_months_counts_calendar_months_and_clamps_to_the_month_end(
    start: str, end: str, months: float
) -> None:
    assert months_between(D(start), D(end)) == pytest.approx(months, abs=1e-12)


def test_two_year_data_center_term_billed_annual_counts_at_its_run_rate() -> None:
    tables = compute_metrics(
        [],
        [tx("d", "2024-01-01", "2026-01-01", billing="Annual", hosting="Data Center", vendor=2400)],
        as_of=D("2024-02-29"),
    )
    assert mrr_by_month(tables, "d") == {"2024-01": 100.0, "2024-02": 100.0}


def test_co_terminated_prorated_upgrade_adds_a_layer_and_a_restart_supersedes() -> None:
    tables = compute_metrics(
        [],
        [
            tx("k", "2024-01-01", "2025-01-01", billing="Annual", vendor=1200),
            # Prorated: same end date, six months for $300 -> +$50 a month.
            tx("k", "2024-07-01", "2025-01-01", billing="Annual", vendor=300, sale_type="Upgrade"),
            # Restarting: a new year from Sep 1 replaces both.
            tx("k", "2024-09-01", "2025-09-01", billing="Annual", vendor=2400, sale_type="Upgrade"),
        ],
        as_of=D("2024-09-30"),
    )
    months = mrr_of(tables, "k")
    assert [(m.month, round(v, 6), t) for m, v, t in months[5:]] == [
        (6, 100.0, "unchanged"),
        (7, 150.0, "expansion"),
        (8, 150.0, "unchanged"),
        (9, 200.0, "expansion"),
    ]
    # The restart moved the customer: Jan 1 2025 is strictly inside the new term.
    assert tables.renewal_opportunities == []


def test_terms_starting_the_same_day_the_one_ending_later_wins() -> None:
    tables = compute_metrics(
        [],
        [
            tx("k", "2024-01-01", "2024-02-01", vendor=50),
            tx("k", "2024-01-01", "2025-01-01", billing="Annual", vendor=2400, sale_type="Upgrade"),
        ],
        as_of=D("2024-01-31"),
    )
    assert mrr_by_month(tables, "k") == {"2024-01": 200.0}


def test_grace_applies_to_mrr_so_a_late_renewal_across_a_month_end_is_not_churn() -> None:
    lines = [
        tx("k", "2024-01-29", "2024-02-29", vendor=100),
        tx("k", "2024-03-02", "2024-04-02", vendor=100, sale_type="Renewal"),
    ]
    tables = compute_metrics([], lines, as_of=D("2024-04-30"))
    assert opportunities(tables)[0] == (D("2024-02-29"), "renewed")
    assert [t for _, _, t in mrr_of(tables, "k")] == ["new", "unchanged", "unchanged", "churn"]
    # Without the renewal it is churn at the February snapshot (the last day, Feb 29 = end).
    lapsed = compute_metrics([], lines[:1], as_of=D("2024-04-30"))
    assert [t for _, _, t in mrr_of(lapsed, "k")] == ["new", "churn", "unchanged", "unchanged"]
    # Still pending at as_of: its grace covers the as_of snapshot.
    pending = compute_metrics([], lines[:1], as_of=D("2024-03-03"))
    assert [t for _, _, t in mrr_of(pending, "k")] == ["new", "unchanged", "unchanged"]


def test_grace_in_mrr_applies_to_server_terms_too() -> None:
    lines = [
        tx("s", "2023-01-30", "2024-01-30", billing="Annual", hosting="Server", vendor=1200),
        tx("s", "2024-02-02", "2025-02-02", billing="Annual", hosting="Server", vendor=1200),
    ]
    tables = compute_metrics([], lines, as_of=D("2024-02-29"))
    assert [t for _, _, t in mrr_of(tables, "s")][-2:] == ["unchanged", "unchanged"]
    assert tables.renewal_opportunities == []  # renewal and churn are Cloud only


def test_zero_length_and_dateless_lines_form_no_term_and_net_into_none() -> None:
    tables = compute_metrics(
        [],
        [
            tx("k", "2024-01-01", "2024-02-01", vendor=100),
            tx("k", "2024-02-01", "2024-02-01", vendor=30, sale_type="Upgrade"),
            tx("k", "2024-02-01", "2024-02-01", price=-30, vendor=-30, sale_type="Refund"),
            {
                **tx("k", "2024-03-01", "2024-04-01"),
                "purchaseDetails": {
                    **tx("k", "2024-03-01", "2024-04-01")["purchaseDetails"],
                    "maintenanceStartDate": None,
                },
            },
        ],
        as_of=D("2024-03-31"),
    )
    assert [(t["start_date"], t["end_date"]) for t in tables.terms] == [
        (D("2024-01-01"), D("2024-02-01"))
    ]
    # The zero-length line does not renew its own end date.
    assert opportunities(tables) == [(D("2024-02-01"), "cancelled")]


def test_a_renewal_sold_by_as_of_that_starts_after_it_renews_and_adds_no_mrr_yet() -> None:
    tables = compute_metrics(
        [],
        [
            tx("k", "2024-01-01", "2024-02-01", vendor=100),
            tx("k", "2024-02-03", "2024-03-03", sale="2024-01-25", vendor=120, sale_type="Renewal"),
        ],
        as_of=D("2024-02-02"),
    )
    assert opportunities(tables) == [(D("2024-02-01"), "renewed")]
    # Feb 2 is in the grace of the renewed Feb 1 end: still the old term's $100.
    assert mrr_by_month(tables, "k") == {"2024-01": 100.0, "2024-02": 100.0}
    [due] = [row for row in tables.renewal_book if row["status"] == "due"]
    assert (due["due_date"], due["days_until_due"]) == (D("2024-03-03"), 30)


def test_lines_sold_after_as_of_are_ignored_everywhere() -> None:
    tables = compute_metrics(
        [],
        [
            tx("k", "2024-01-01", "2024-02-01", vendor=100),
            tx("k", "2024-02-01", "2024-03-01", sale="2024-02-10", sale_type="Renewal"),
        ],
        as_of=D("2024-02-09"),
    )
    assert len(tables.terms) == 1
    assert opportunities(tables) == [(D("2024-02-01"), "cancelled")]


def test_edition_trial_is_an_upgrade_evaluation_converted_by_an_upgrade_to_that_edition() -> None:
    trial = {"upgradeEvaluationStartDate": "2024-03-01", "upgradeEvaluatingEdition": "Advanced"}
    annual = {"billing": "Annual", "price": 1200}
    tables = compute_metrics(
        [lic("yes", **trial), lic("wrong", **trial), lic("late", **trial)],
        [
            tx("yes", "2024-01-01", "2025-01-01", **annual),
            tx(
                "yes",
                "2024-03-20",
                "2025-01-01",
                **annual,
                sale_type="Upgrade",
                appEdition="Advanced",
            ),
            tx("wrong", "2024-01-01", "2025-01-01", **annual),
            tx(
                "wrong",
                "2024-03-20",
                "2025-01-01",
                **annual,
                sale_type="Upgrade",
                appEdition="Standard",
            ),
            tx("late", "2024-01-01", "2025-01-01", **annual),
            # Day 61 after the trial start: past upgrade_trial_days + conversion_window_days.
            tx(
                "late",
                "2024-05-01",
                "2025-01-01",
                **annual,
                sale_type="Upgrade",
                appEdition="Advanced",
            ),
        ],
        as_of=D("2024-06-30"),
    )
    assert {
        e["license_key"]: (e["conversion_type"], e["end_date"], e["is_converted"])
        for e in tables.evaluations
    } == {
        "yes": ("Upgrade", D("2024-03-31"), True),
        "wrong": ("Upgrade", D("2024-03-31"), False),
        "late": ("Upgrade", D("2024-03-31"), False),
    }
    [row] = tables.conversion
    assert (row["conversion_type"], row["evaluations"], row["conversions"]) == ("Upgrade", 3, 1)
    assert row["is_complete"] is True


def test_evaluation_forms_on_one_start_are_net_new_on_a_tied_end() -> None:
    tables = compute_metrics(
        [
            lic(
                "k",
                license_type="EVALUATION",
                start="2024-03-01",
                end="2024-03-31",
                upgradeEvaluationStartDate="2024-03-01",
                upgradeEvaluatingEdition="Advanced",
            ),
        ],
        [],
        as_of=D("2024-06-30"),
    )
    assert [e["conversion_type"] for e in tables.evaluations] == ["Net New"]


def test_customer_movements_follow_a_migration_and_a_second_app() -> None:
    licenses = [
        lic("s", hosting="Server", hostLicenseId="HOST-1"),
        lic(
            "c",
            cloudId="site-1",
            cmtDetails={"status": "converted", "relatedOnPremLicense": "SEN-s"},
        ),
        lic("x", cloudId="site-1", addon="app.b"),
    ]
    tables = compute_metrics(
        licenses,
        [
            tx("s", "2023-01-01", "2024-01-01", billing="Annual", hosting="Server", vendor=1200),
            tx("c", "2024-01-01", "2024-02-01", vendor=120),
            tx("c", "2024-02-01", "2024-03-01", vendor=120, sale_type="Renewal"),
            tx("x", "2024-02-01", "2024-03-01", vendor=30, addon="app.b"),
        ],
        as_of=D("2024-02-29"),
    )
    rows = [
        (r["customer_key"], r["month"].month, r["movement"], round(r["movement_mrr"], 6))
        for r in tables.customer_mrr
        if r["month"] >= D("2023-12-01")
    ]
    # The Cloud license joined the Server customer: +20, not churn plus new; site-1 is the
    # second app's own customer.
    assert rows == [
        ("HOST-1", 12, "unchanged", 0.0),
        ("HOST-1", 1, "expansion", 20.0),
        ("HOST-1", 2, "unchanged", 0.0),
        ("site-1", 2, "new", 30.0),
    ]
    customers = {r["customer_key"]: r for r in tables.customers}
    assert customers["HOST-1"]["hostings"] == ["Cloud", "Server"]
    assert customers["HOST-1"]["first_hosting"] == "Server"
    assert customers["HOST-1"]["first_paid_month"] == D("2023-01-01")
    assert customers["HOST-1"]["current_mrr"] == pytest.approx(120.0)
    kpis = {r["month"].month: r for r in tables.customer_kpis if r["month"].year == 2024}
    assert kpis[2]["paying_customers"] == 2
    assert kpis[2]["arpa"] == pytest.approx(75.0)
    assert kpis[1]["expansion_mrr"] == pytest.approx(20.0)


def test_second_app_on_one_site_is_expansion_and_losing_it_contraction() -> None:
    licenses = [lic("a", cloudId="site"), lic("b", cloudId="site", addon="app.b")]
    tables = compute_metrics(
        licenses,
        [
            tx("a", "2024-01-01", "2025-01-01", billing="Annual", vendor=1200),
            tx("b", "2024-02-01", "2024-03-01", vendor=40, addon="app.b"),
        ],
        as_of=D("2024-04-30"),
    )
    assert [(r["month"].month, r["movement"]) for r in tables.customer_mrr] == [
        (1, "new"),
        (2, "expansion"),
        (3, "contraction"),
        (4, "unchanged"),
    ]


def test_cohort_nrr_grr_and_logo_retention() -> None:
    licenses = [lic("a", cloudId="A"), lic("b", cloudId="B")]
    tables = compute_metrics(
        licenses,
        [
            tx("a", "2024-01-01", "2024-02-01", vendor=100),
            tx("a", "2024-02-01", "2024-03-01", vendor=150, sale_type="Upgrade"),
            tx("b", "2024-01-01", "2024-02-01", vendor=100),
        ],
        as_of=D("2024-02-29"),
    )
    assert [
        (
            r["months_since"],
            r["customers"],
            r["active_customers"],
            r["starting_mrr"],
            r["mrr"],
            r["retained_mrr"],
            r["nrr"],
            r["grr"],
            r["logo_retention"],
        )
        for r in tables.retention_cohorts
    ] == [
        (0, 2, 2, 200.0, 200.0, 200.0, 1.0, 1.0, 1.0),
        (1, 2, 1, 200.0, 150.0, 100.0, 0.75, 0.5, 0.5),
    ]
    assert {r["first_hosting"] for r in tables.retention_cohorts_by_hosting} == {"Cloud"}
    feb = tables.customer_kpis[1]
    assert feb["logo_churn_rate"] == 0.5
    [mrr_feb] = [r for r in tables.mrr if r["month"] == D("2024-02-01")]
    assert mrr_feb["gross_mrr_churn_rate"] == pytest.approx(0.5)
    assert mrr_feb["net_mrr_churn_rate"] == pytest.approx(0.25)
    assert mrr_feb["quick_ratio"] == pytest.approx(0.5)
    assert mrr_feb["arpa"] == pytest.approx(150.0)


def test_churn_event_has_tenure_mrr_lost_and_the_nearest_feedback() -> None:
    feedback = [
        {
            "appEntitlementId": "k",
            "date": "2024-03-25",
            "feedbackType": "uninstall",
            "reasonKey": "bugs",
        },
        {
            "appEntitlementId": "k",
            "date": "2024-04-08",
            "feedbackType": "disable",
            "reasonKey": "other",
        },
        {
            "appEntitlementId": "k",
            "date": "2024-04-01",
            "feedbackType": "unsubscribe",
            "reasonKey": "usefulness",
        },
        {
            "licenseId": "other",
            "date": "2024-04-01",
            "feedbackType": "disable",
            "reasonKey": "sandbox",
        },
    ]
    lines = [
        tx("k", "2024-01-01", "2024-02-01", vendor=100),
        tx("k", "2024-02-01", "2024-04-01", vendor=300, sale_type="Renewal"),
    ]
    tables = compute_metrics([], lines, as_of=D("2024-06-01"), feedback=feedback)
    [event] = tables.churn_events
    assert (event["end_date"], event["tenure_months"], event["mrr_lost"]) == (
        D("2024-04-01"),
        3.0,
        150.0,
    )
    assert (event["feedback_type"], event["feedback_reason"]) == ("unsubscribe", "usefulness")
    # Two rows 7 days either side: the earlier wins.
    tied = compute_metrics([], lines, as_of=D("2024-06-01"), feedback=feedback[:2])
    assert tied.churn_events[0]["feedback_type"] == "uninstall"
    # Nothing within 30 days: no reason.
    far = [{**feedback[0], "date": "2024-05-02"}]
    assert (
        compute_metrics([], lines, D("2024-06-01"), feedback=far).churn_events[0]["feedback_type"]
        is None
    )


def test_renewal_book_lists_due_ends_of_every_hosting_and_pending_cloud_opportunities() -> None:
    tables = compute_metrics(
        [],
        [
            tx("p", "2024-02-02", "2024-03-02", vendor=100),  # ended, grace not over: pending
            tx("c", "2024-01-15", "2025-01-15", billing="Annual", vendor=1200),
            tx("m", "2024-03-01", "2024-04-01", vendor=50),  # due in 28 days
            tx("s", "2023-05-01", "2024-05-01", billing="Annual", hosting="Server", vendor=600),
            tx("f", "2024-01-01", "2024-08-01", billing="Annual", vendor=700),  # beyond 90 days
        ],
        as_of=D("2024-03-04"),
    )
    assert [
        (r["license_key"], r["status"], r["days_until_due"], round(r["arr_at_stake"], 6))
        for r in tables.renewal_book
    ] == [
        ("m", "due", 28, 600.0),
        ("p", "pending", -2, 1200.0),
        ("s", "due", 58, 600.0),
    ]


def test_is_complete_flags_and_the_as_of_month_snapshot() -> None:
    lines = [tx("k", "2024-01-01", "2024-02-01"), tx("j", "2024-01-25", "2024-02-25")]
    tables = compute_metrics([], lines, as_of=D("2024-02-05"))
    assert [(r["month"].month, r["is_complete"]) for r in tables.mrr] == [(1, True), (2, False)]
    assert [r["is_complete"] for r in tables.churn] == [False]
    later = compute_metrics([], lines, as_of=D("2024-03-07"))
    assert [r["is_complete"] for r in later.churn] == [True]
    assert [r["is_complete"] for r in later.customer_kpis] == [True, True, False]


def test_a_negative_net_term_adds_no_mrr() -> None:
    tables = compute_metrics(
        [],
        [
            tx("k", "2024-01-01", "2024-02-01", price=100, vendor=10),
            tx("k", "2024-01-01", "2024-02-01", price=-50, vendor=-40, sale_type="Refund"),
        ],
        as_of=D("2024-01-31"),
    )
    assert tables.terms[0]["amount"] == -30.0
    assert mrr_by_month(tables, "k") == {"2024-01": 0.0}

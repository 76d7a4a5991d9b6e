"""Simulator -> `mpac run` -> `dbt build`: every mart row equals the simulator's ground truth
(`compute_metrics` over the same records), after a backfill and after time travel + an
incremental run; Atlassian's figures reconcile to zero."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.simulator.ground_truth.builder import compute_metrics
from pipelines.simulator.ground_truth.tables import MetricTables
from tests.helpers import cli, configure, query

pytestmark = pytest.mark.integration

# ground-truth table -> (mart, grain, {ground-truth column: mart column})
MARTS: dict[str, tuple[str, tuple[str, ...], dict[str, str]]] = {
    "churn": ("marts.fct_churn", ("month", "addon_key", "billing_period"), {}),
    "renewal": ("marts.fct_renewal", ("month", "addon_key", "billing_period"), {}),
    "conversion": ("marts.fct_conversion", ("month", "addon_key", "conversion_type"), {}),
    "mrr": ("marts.fct_mrr", ("month", "addon_key"), {}),
    "mrr_movements": (
        "marts.fct_mrr_movements",
        ("month", "license_key"),
        {
            "prior_mrr": "prior_month_mrr",
            "movement_type": "mrr_movement_type",
            "movement_amount": "mrr_movement_amount",
        },
    ),
    "renewal_opportunities": (
        "intermediate.int_renewal_opportunities_resolved",
        ("license_key", "end_date"),
        {},
    ),
    "evaluations": (
        "intermediate.int_evaluations_resolved",
        ("license_key", "start_date"),
        {"start_date": "evaluation_start_date", "end_date": "evaluation_end_date"},
    ),
    "terms": (
        "intermediate.int_terms_netted",
        ("license_key", "start_date", "end_date"),
        {"start_date": "term_start_date", "end_date": "term_end_date"},
    ),
    "customers": ("marts.dim_customers", ("customer_key",), {}),
    "customer_mrr": ("marts.fct_customer_mrr", ("month", "customer_key"), {}),
    "customer_kpis": ("marts.fct_customer_kpis", ("month",), {}),
    "retention_cohorts": ("marts.fct_retention_cohorts", ("cohort_month", "months_since"), {}),
    "retention_cohorts_by_hosting": (
        "marts.fct_retention_cohorts_by_hosting",
        ("first_hosting", "cohort_month", "months_since"),
        {},
    ),
    "churn_events": ("marts.fct_churn_events", ("license_key", "end_date"), {}),
    "renewal_book": ("marts.fct_renewal_book", ("license_key", "due_date"), {}),
}
# Amounts are sums of cents divided by 12: equal within a cent. Rates and medians: float noise.
AMOUNT_TOLERANCE = 0.01


def mpac(*args: str) -> None:
    result = cli(list(args))
    assert result.exit_code == 0, f"mpac {' '.join(args)} failed:\n{result.output}"


def mart_rows(warehouse: Path, relation: str, columns: list[str]) -> list[dict[str, Any]]:
    rows = query(warehouse, f"select {', '.join(columns)} from {relation}")
    return [dict(zip(columns, row, strict=True)) for row in rows]


def same(expected: Any, actual: Any) -> bool:
    # Postgres returns numeric columns as Decimal, DuckDB as float: both compare as numbers.
    if isinstance(expected, float | Decimal) or isinstance(actual, float | Decimal):
        if expected is None or actual is None:
            return expected is None and actual is None
        return math.isclose(float(expected), float(actual), rel_tol=1e-9, abs_tol=AMOUNT_TOLERANCE)
    return expected == actual


def differences(warehouse: Path, tables: MetricTables) -> dict[str, list[str]]:
    """Per ground-truth table, the rows missing, extra or different in the warehouse."""
    found: dict[str, list[str]] = {}
    for name, (relation, grain, renamed) in MARTS.items():
        expected_rows = getattr(tables, name)
        if not expected_rows:
            continue
        columns = list(expected_rows[0])
        expected = {tuple(row[c] for c in grain): row for row in expected_rows}
        actual = {
            tuple(row[renamed.get(c, c)] for c in grain): row
            for row in mart_rows(warehouse, relation, [renamed.get(c, c) for c in columns])
        }
        problems = [f"missing {key}" for key in expected.keys() - actual.keys()]
        problems += [f"extra {key}" for key in actual.keys() - expected.keys()]
        for key in expected.keys() & actual.keys():
            for column in columns:
                want, got = expected[key][column], actual[key][renamed.get(column, column)]
                if not same(want, got):
                    problems.append(f"{key} {column}: expected {want!r}, mart has {got!r}")
        if problems:
            found[name] = [*sorted(problems)[:10], f"({len(problems)} in all)"]
    return found


def transform(warehouse: Path, as_of: date | None = None, severity: str = "error") -> None:
    args = ["transform", "--warehouse", str(warehouse)]
    if as_of is not None:
        args += ["--as-of", as_of.isoformat()]
    mpac(*args, "--vars", json.dumps({"reconciliation_severity": severity}))


def reconciliation_gaps(warehouse: Path) -> list[tuple[Any, ...]]:
    ((checked,),) = query(warehouse, "select count(*) from marts.rpt_metric_reconciliation")
    assert checked > 0, "no Atlassian figures were reconciled"
    return query(
        warehouse,
        "select metric, month, addon_key, segment, denominator_difference, "
        "numerator_difference from marts.rpt_metric_reconciliation where not is_matched",
    )


def test_marts_equal_ground_truth_after_backfill_and_after_time_travel(
    make_simulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, destination: str
) -> None:
    sim = make_simulator(size="small")
    configure(monkeypatch, sim)
    warehouse = tmp_path / "marketplace.duckdb"

    # Backfill, then dbt with default vars: as_of_date is the latest lastUpdated loaded, the day
    # the simulator's own figures describe too, so reconciliation must be exactly zero.
    mpac("run", "--backfill", "--no-transform", "--warehouse", str(warehouse))
    transform(warehouse)
    assert mart_rows(warehouse, "intermediate.int_as_of_date", ["as_of_date"]) == [
        {"as_of_date": sim.expected().as_of}
    ]
    # The as_of month is partial: its snapshot is as_of, not the month's last day.
    assert (sim.expected().as_of + timedelta(days=1)).day != 1
    assert differences(warehouse, sim.expected()) == {}
    assert reconciliation_gaps(warehouse) == []

    # 45 days later: new sales, renewals, refunds and rewritten records; an incremental load.
    sim.advance(45)
    mpac("run", "--no-transform", "--warehouse", str(warehouse))
    transform(warehouse)
    assert differences(warehouse, sim.expected()) == {}
    assert reconciliation_gaps(warehouse) == []

    # An explicit as_of_date in the past: the marts describe that day, as compute_metrics does.
    earlier = sim.expected().as_of - timedelta(days=40)
    transform(warehouse, as_of=earlier, severity="warn")
    licenses = list(sim.state.records("licenses", with_data_insights=True))
    transactions = list(sim.state.records("transactions"))
    feedback = list(sim.state.records("feedback"))
    truth = compute_metrics(licenses, transactions, as_of=earlier, feedback=feedback)
    assert mart_rows(warehouse, "intermediate.int_as_of_date", ["as_of_date"]) == [
        {"as_of_date": earlier}
    ]
    assert differences(warehouse, truth) == {}


@pytest.mark.xdist_group("built_warehouse")
def test_mpac_run_builds_the_marts_after_loading(built_warehouse: Any) -> None:
    assert built_warehouse.exit_code == 0, built_warehouse.output
    truth = built_warehouse.truth
    assert truth.churn, "the tiny vendor should have renewal opportunities"
    assert differences(built_warehouse.warehouse, truth) == {}


@pytest.mark.xdist_group("built_warehouse")
def test_mpac_report_shows_the_v2_figures_of_the_marts(built_warehouse: Any) -> None:
    import json

    from pipelines.report import report_json

    warehouse = built_warehouse.warehouse
    metrics = json.loads(report_json(warehouse, months=2))["metrics"]
    assert {"saas", "customers", "retention", "renewals"} <= metrics.keys()
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        newest = connection.execute(
            "select month, addon_key, quick_ratio from marts.fct_mrr"
            " where month = (select max(month) from marts.fct_mrr)"
        ).fetchall()
        kpis = connection.execute(
            "select paying_customers, is_complete from marts.fct_customer_kpis"
            " order by month desc limit 1"
        ).fetchone()
        due = connection.execute(
            "select count(*) filter (where status = 'due') from marts.fct_renewal_book"
        ).fetchone()
    shown = {(row["month"], row["addon_key"]): row["quick_ratio"] for row in metrics["saas"]}
    for month, addon_key, quick_ratio in newest:
        expected = None if quick_ratio is None else float(quick_ratio)
        assert shown[(month.isoformat(), addon_key)] == pytest.approx(expected)
    assert kpis is not None
    assert due is not None
    assert metrics["customers"][0]["paying_customers"] == kpis[0]
    assert metrics["customers"][0]["is_complete"] == kpis[1]
    # The renewal book is shown whole: every due renewal of the next 90 days is counted.
    assert sum(row["due"] for row in metrics["renewals"]) == due[0]

"""Simulator -> `mpac run` -> `dbt build`: every mart row equals the simulator's ground truth
(`compute_metrics` over the same records), after a backfill and after time travel + an
incremental run; Atlassian's figures reconcile to zero."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from pipelines.simulator.ground_truth.builder import compute_metrics
from pipelines.simulator.ground_truth.tables import MetricTables
from pipelines.simulator.harness import MoreVendor
from pipelines.transform import DBT_PROJECT_DIR
from tests.helpers import cli, configure, dlt_settings_from, query, reading

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


def mart_rows(
    warehouse: Path,
    relation: str,
    columns: list[str],
    vendor_id: str | None = None,
    run: Callable[[str], list[tuple[Any, ...]]] | None = None,
) -> list[dict[str, Any]]:
    """The rows of a mart (of one vendor's, with `vendor_id`), on DuckDB or Postgres (query;
    `run`: a connection of `reading` to ask on instead)."""
    where = "" if vendor_id is None else f" where vendor_id = '{int(vendor_id)}'"
    sql = f"select {', '.join(columns)} from {relation}{where}"
    rows = run(sql) if run is not None else query(warehouse, sql)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def same(expected: Any, actual: Any) -> bool:
    # Postgres returns numeric columns as Decimal, DuckDB as float: both compare as numbers.
    if isinstance(expected, float | Decimal) or isinstance(actual, float | Decimal):
        if expected is None or actual is None:
            return expected is None and actual is None
        return math.isclose(float(expected), float(actual), rel_tol=1e-9, abs_tol=AMOUNT_TOLERANCE)
    return expected == actual


def differences(
    warehouse: Path, tables: MetricTables, vendor_id: str | None = None
) -> dict[str, list[str]]:
    """Per ground-truth table, the rows missing, extra or different in the warehouse (in one
    vendor's rows, with `vendor_id`)."""
    found: dict[str, list[str]] = {}
    with reading(warehouse) as run:  # one connection for the 15 marts
        actual_rows = {
            name: mart_rows(
                warehouse,
                relation,
                [renamed.get(c, c) for c in getattr(tables, name)[0]],
                vendor_id,
                run,
            )
            for name, (relation, _, renamed) in MARTS.items()
            if getattr(tables, name)
        }
    for name, (_, grain, renamed) in MARTS.items():
        expected_rows = getattr(tables, name)
        if not expected_rows:
            continue
        columns = list(expected_rows[0])
        expected = {tuple(row[c] for c in grain): row for row in expected_rows}
        actual = {tuple(row[renamed.get(c, c)] for c in grain): row for row in actual_rows[name]}
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


def declared_unit_tests() -> int:
    return sum(
        len((yaml.safe_load(path.read_text()) or {}).get("unit_tests", []))
        for path in (DBT_PROJECT_DIR / "models").rglob("*.yml")
    )


def test_mpac_run_builds_the_marts_after_loading(built_warehouse: Any) -> None:
    assert built_warehouse.exit_code == 0, built_warehouse.output
    # A production build leaves the unit tests out (test_dbt_unit_tests_pass runs them).
    results = built_warehouse.results
    assert results
    assert not [node for node in results if node.startswith("unit_test.")]
    truth = built_warehouse.truth
    assert truth.churn, "the tiny vendor should have renewal opportunities"
    assert differences(built_warehouse.warehouse, truth) == {}


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


RAW_TABLES = (
    "licenses",
    "transactions",
    "transactions__purchase_details__discounts",
    "feedback",
    "marketing_attribution",
    "metric_aggregates",
    "metric_events",
    "load_days",
)


def vendors_in(warehouse: Path, relation: str) -> dict[str | None, int]:
    return dict(query(warehouse, f"select vendor_id, count(*) from {relation} group by all"))


@pytest.fixture
def settings_from_env_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The project's .dlt/config.toml names one vendor_id: settings from the environment only."""
    monkeypatch.chdir(tmp_path)
    with dlt_settings_from(tmp_path):
        yield


# Two vendors' loads and two dbt builds: twice the work of the one-vendor tests.
@pytest.mark.timeout(600)
@pytest.mark.usefixtures("settings_from_env_only")
def test_two_vendors_share_a_warehouse_and_each_equals_its_own_ground_truth(
    make_simulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One host, two vendors with their own data and accounts, as an agency sees the API.
    sim = make_simulator(
        size="tiny", more_vendors=[MoreVendor(seed=7, credentials=("b@example.com", "tok-b"))]
    )
    first, second = sim.states
    ids = (str(first.vendor.vendor_id), str(second.vendor.vendor_id))
    for key, value in sim.named_env({"acme": first, "beta": second}).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SOURCES__MARKETPLACE__EXPORT_POLL_SECONDS", "0.01")
    warehouse = tmp_path / "marketplace.duckdb"

    # One vendor alone (by name), then every vendor in turn and one dbt build.
    mpac("run", "--vendor", "beta", "--no-transform", "--warehouse", str(warehouse))
    assert vendors_in(warehouse, "raw_marketplace.licenses").keys() == {ids[1]}
    mpac("run", "--warehouse", str(warehouse))
    for table in RAW_TABLES:
        assert vendors_in(warehouse, f"raw_marketplace.{table}").keys() == set(ids), table
    assert {
        row["vendor_id"]
        for row in mart_rows(warehouse, "intermediate.int_as_of_date", ["vendor_id"])
    } == set(ids)
    for state, vendor_id in zip((first, second), ids, strict=True):
        assert differences(warehouse, state.expected(), vendor_id) == {}, vendor_id
    assert reconciliation_gaps(warehouse) == []

    # Both move on; an incremental run of each lands on its own rows only.
    sim.advance(30)
    mpac("run", "--warehouse", str(warehouse))
    for state, vendor_id in zip((first, second), ids, strict=True):
        assert differences(warehouse, state.expected(), vendor_id) == {}, vendor_id
    # Each vendor has its own dlt pipeline, so its own cursors and export ledger.
    folders = {path.name for path in (tmp_path / ".marketplace.dlt").iterdir()}
    assert {"marketplace__acme", "marketplace__beta"} <= folders

    # Readers see one vendor: the only one, or the one asked for (by name or id).
    both = cli(["report", "--warehouse", str(warehouse)])
    assert both.exit_code == 2
    assert f"the warehouse holds 2 vendors ({', '.join(sorted(ids))})" in both.output
    shown = cli(["report", "--vendor", "beta", "--format", "json", "--warehouse", str(warehouse)])
    assert shown.exit_code == 0, shown.output
    saas = json.loads(shown.output)["metrics"]["saas"]
    beta_apps = {
        row["addon_key"] for row in mart_rows(warehouse, "marts.fct_mrr", ["addon_key"], ids[1])
    }
    assert saas
    assert {row["addon_key"] for row in saas} <= beta_apps
    for command in (["dashboard"], ["digest", "--peek"]):
        result = cli([*command, "--vendor", ids[0], "--warehouse", str(warehouse)])
        assert result.exit_code == 0, result.output
    status = cli(["status", "--warehouse", str(warehouse)])
    assert status.exit_code == 0, status.output
    assert "acme: licenses" in status.output
    assert "beta: licenses" in status.output

    unknown = cli(["run", "--vendor", "gamma", "--warehouse", str(warehouse)])
    assert unknown.exit_code == 2
    assert "no vendor 'gamma' is configured: choose from acme" in unknown.output


def test_a_warehouse_from_before_vendors_keeps_working_after_the_upgrade(
    simulator: Any, loaded_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = simulator
    configure(monkeypatch, sim)
    warehouse = loaded_copy  # a first run's warehouse, of what `sim` serves (conftest)
    # The warehouse as a version before vendors left it: no vendor_id column anywhere.
    with duckdb.connect(str(warehouse)) as connection:
        for table in RAW_TABLES:
            connection.execute(f"alter table raw_marketplace.{table} drop column vendor_id")
    before = {
        table: query(warehouse, f"select count(*) from raw_marketplace.{table}")[0][0]
        for table in RAW_TABLES
    }

    sim.advance(30)
    mpac("run", "--warehouse", str(warehouse))
    vendor_id = str(sim.vendor.vendor_id)
    for table in RAW_TABLES:
        # Every old row was given the one vendor, once; none was lost.
        assert vendors_in(warehouse, f"raw_marketplace.{table}").keys() == {vendor_id}, table
        after = query(warehouse, f"select count(*) from raw_marketplace.{table}")[0][0]
        assert after >= before[table] or table in ("metric_aggregates", "metric_events"), table
    # Nothing doubled: one current version per license and per line.
    assert query(
        warehouse,
        "select count(*) - count(distinct license_key) from raw_marketplace.licenses"
        " where _dlt_valid_to is null",
    ) == [(0,)]
    assert differences(warehouse, sim.expected()) == {}
    assert reconciliation_gaps(warehouse) == []


def test_dbt_unit_tests_pass(
    built_warehouse: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mpac transform` leaves the dbt unit tests out (they check the SQL, not the data): the
    suite runs them, once, on a copy of a built warehouse (they read its models' columns)."""
    from dbt.cli.main import dbtRunner

    from pipelines.transform import _release_warehouse, dbt_arguments, summarise

    warehouse = tmp_path / "unit.duckdb"
    shutil.copy(built_warehouse.warehouse, warehouse)
    monkeypatch.setenv("MPAC_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    try:
        outcome = dbtRunner().invoke(
            dbt_arguments(["test", "--select", "test_type:unit"], warehouse)
        )
    finally:
        _release_warehouse()
    assert outcome.exception is None, outcome.exception
    results = list(outcome.result.results)
    summary = summarise(results, 0)
    assert summary.failed == []
    assert summary.warned == []
    assert {str(result.node.resource_type) for result in results} == {"unit_test"}
    # every unit test of dbt/models/*/_*__unit_tests.yml ran and passed
    assert summary.tests_passed == len(results) == declared_unit_tests() > 0

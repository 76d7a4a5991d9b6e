"""`mpac report`: recent months per app, read from the marts; clear errors before they exist."""

from pathlib import Path

import duckdb
import pytest
from rich.console import Console

from pipelines.errors import UserError
from pipelines.report import metric_tables, print_report


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        con.execute(
            "create table marts.fct_churn as select * from (values"
            " (date '2026-09-01', 'app.a', 'Monthly', 4, 1, 0, 0.25),"
            " (date '2026-10-01', 'app.a', 'Monthly', 5, 0, 1, 0.0),"
            " (date '2026-11-01', 'app.b', 'Annual', 0, 0, 2, null))"
            " t(month, addon_key, billing_period, opportunities, cancellations, pending,"
            " churn_rate)"
        )
        con.execute(
            "create table marts.fct_renewal as select month, addon_key, billing_period,"
            " opportunities, opportunities - cancellations as renewals, pending,"
            " 1 - churn_rate as renewal_rate from marts.fct_churn"
        )
        con.execute(
            "create table marts.fct_conversion as select date '2026-11-01' as month,"
            " 'app.a' as addon_key, 'Net New' as conversion_type, 3 as evaluations,"
            " 1 as conversions, 2 as open_evaluations, 1 / 3 as conversion_rate,"
            " 12.5 as median_days_to_convert"
        )
        con.execute(
            "create table marts.fct_mrr as select date '2026-11-01' as month,"
            " 'app.a' as addon_key, 1234.5 as mrr, 10.0 as new_mrr, 0.0 as expansion_mrr,"
            " -2.0 as contraction_mrr, -5.0 as churned_mrr, 0.0 as reactivation_mrr,"
            " 7 as paying_licenses"
        )
    return path


def test_only_the_most_recent_months_are_shown_newest_first(warehouse):
    churn, renewal, conversion, mrr = metric_tables(warehouse, months=2)
    assert [cell for cell in churn.columns[0].cells] == ["2026-11-01", "2026-10-01"]
    assert list(churn.columns[1].cells) == ["app.b", "app.a"]
    assert churn.row_count == renewal.row_count == 2
    assert conversion.row_count == mrr.row_count == 1


def test_rates_print_as_percentages_and_a_missing_rate_stays_blank(warehouse):
    churn = metric_tables(warehouse, months=3)[0]
    rates = list(churn.columns[-1].cells)
    assert rates == ["", "0.0%", "25.0%"]


def test_report_prints_every_metric(warehouse):
    console = Console(record=True, width=200)
    print_report(warehouse, months=1, console=console)
    text = console.export_text()
    for title in ("Churn", "Renewal", "Conversion", "MRR"):
        assert title in text
    assert "1,234.50" in text


def test_a_missing_warehouse_is_one_sentence(tmp_path):
    with pytest.raises(UserError, match="run `mpac run` first"):
        metric_tables(tmp_path / "nothing.duckdb")


def test_a_warehouse_without_marts_is_one_sentence(tmp_path):
    path = tmp_path / "raw_only.duckdb"
    duckdb.connect(str(path)).close()
    with pytest.raises(UserError, match="marts are not built yet"):
        metric_tables(path)

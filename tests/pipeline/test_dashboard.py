"""The dashboard: every declared chart drawn in a real browser, offline, with the app filter,
incomplete months marked, and charts of marts that do not exist yet skipped with a note."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipelines.completeness import incomplete_months
from pipelines.dashboard import CHARTS, write_dashboard
from pipelines.errors import UserError
from tests.pipeline.chromium import find_chromium, render

CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on this machine: `apt-get install -y chromium` (.ci/run does it)",
)
APPS = ("com.example.alpha", "com.example.beta")
V2_MARTS = ("fct_retention_cohorts", "fct_renewal_book")


def make_marts(path: Path, v2: bool = True) -> Path:
    """A small warehouse shaped like the marts (v1, plus the v2 marts and columns if asked)."""
    rate_columns = ", 1.5 + (m % 3) * 0.5 as quick_ratio, m < 11 as is_complete" if v2 else ""
    complete = ", m < 11 as is_complete" if v2 else ""
    with duckdb.connect(str(path)) as db:
        db.execute("create schema marts; create schema intermediate")
        db.execute(
            "create table intermediate.int_as_of_date as select date '2026-11-20' as as_of_date"
        )
        db.execute(
            "create table marts.dim_apps as select * from (values "
            "('com.example.alpha', 'Alpha'), ('com.example.beta', 'Beta')) t(addon_key, addon_name)"
        )
        months = (
            "from range(12) r(m), (values ('com.example.alpha', 1), ('com.example.beta', 2))"
            " a(addon_key, k)"
        )
        db.execute(
            "create table marts.fct_mrr as select cast(date '2026-01-01' + to_months(m) as date)"
            " as month, addon_key, 1000.0 * k + 50 * m as mrr, 12 * (1000.0 * k + 50 * m) as arr,"
            " 60.0 as new_mrr, 10.0 as expansion_mrr, 5.0 as reactivation_mrr,"
            " -10.0 as contraction_mrr, -15.0 as churned_mrr, 50.0 as net_new_mrr"
            f" {rate_columns} {months}"
        )
        for name, outcome, rate in (
            ("fct_churn", "cancellations", "churn_rate"),
            ("fct_renewal", "renewals", "renewal_rate"),
        ):
            db.execute(
                f"create table marts.{name} as select"
                " cast(date '2026-01-01' + to_months(m) as date) as month, addon_key,"
                f" billing_period, 10 as opportunities, k + 1 as {outcome},"
                f" (k + 1) / 10 as {rate} {complete} {months},"
                " (values ('Monthly'), ('Annual')) b(billing_period)"
            )
        db.execute(
            "create table marts.fct_conversion as select cast(date '2026-01-01' + to_months(m)"
            " as date) as month, addon_key, conversion_type, 20 as evaluations, k + 3 as"
            f" conversions, (k + 3) / 20 as conversion_rate {complete} {months},"
            " (values ('Net New'), ('Upgrade')) c(conversion_type)"
        )
        db.execute(
            "create table marts.rpt_metric_reconciliation as select metric, month, addon_key,"
            " (metric = 'churn' and month = date '2026-10-01') as has_gap,"
            " not has_gap as is_matched, case when has_gap then 2 else 0 end as"
            " denominator_difference, 0 as numerator_difference"
            " from (select distinct month, addon_key from marts.fct_churn),"
            " (values ('churn'), ('renewal'), ('conversion')) x(metric)"
        )
        if v2:
            db.execute(
                "create table marts.fct_retention_cohorts as select cast(date '2026-01-01' +"
                " to_months(c) as date) as cohort_month, k as months_since, 10 as customers,"
                " 1.0 + 0.02 * k - 0.01 * c as nrr, 1.0 - 0.03 * k as grr"
                " from range(11) a(c), range(11) b(k) where c + k <= 10"
            )
            db.execute(
                "create table marts.fct_renewal_book as select 'L' || i as license_key,"
                " date '2026-11-20' + cast(i * 5 - 10 as integer) as due_date, i * 5 - 10 as"
                " days_until_due, case when i % 2 = 0 then 'com.example.alpha' else"
                " 'com.example.beta' end as addon_key, 100.0 * i as arr_at_stake,"
                " case when i < 2 then 'pending' else 'due' end as status from range(18) r(i)"
            )
    return path


def test_incomplete_months_follow_is_complete_and_else_the_month_of_as_of() -> None:
    rows = [
        {"month": "2026-10-01", "is_complete": True},
        {"month": "2026-11-01", "is_complete": False},
    ]
    assert incomplete_months(rows, date(2026, 12, 5)) == ["2026-11-01"]
    legacy = [{"month": "2026-10-01"}, {"month": "2026-11-01"}, {"month": "2026-12-01"}]
    assert incomplete_months(legacy, date(2026, 11, 20)) == ["2026-11-01", "2026-12-01"]


def test_a_v1_warehouse_skips_the_v2_charts_with_a_visible_note(tmp_path: Path) -> None:
    output, panels = write_dashboard(make_marts(tmp_path / "v1.duckdb", v2=False))
    skipped = {panel.chart.key for panel in panels if panel.skipped}
    assert skipped == {"quick_ratio", "nrr_cohorts", "grr_cohorts", "renewals_due"}
    page = output.read_text()
    for key in skipped:
        assert f'data-skipped="{key}"' in page
    assert 'data-chart="reconciliation"' in page


def test_the_page_is_one_file_with_nothing_to_fetch(tmp_path: Path) -> None:
    output, _ = write_dashboard(make_marts(tmp_path / "w.duckdb"), tmp_path / "out" / "d.html")
    page = output.read_text()
    assert output == (tmp_path / "out" / "d.html").resolve()
    assert not re.search(r"<(script|img|iframe)[^>]+src=", page)
    assert not re.search(r"<link[^>]+href=", page)
    assert "plotly.js v" in page  # the library itself is inline
    assert "2 of" in page or "differ" in page  # the reconciliation gap is reported


def test_without_marts_the_dashboard_refuses_in_one_sentence(tmp_path: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    with pytest.raises(UserError, match="marts are not built yet"):
        write_dashboard(empty)
    with pytest.raises(UserError, match="no warehouse"):
        write_dashboard(tmp_path / "missing.duckdb")


@needs_chromium
def test_every_chart_draws_offline_in_headless_chromium(tmp_path: Path) -> None:
    output, panels = write_dashboard(make_marts(tmp_path / "w.duckdb"))
    assert not [panel.skipped for panel in panels if panel.skipped]
    screenshot = tmp_path / "dashboard.png"
    assert CHROMIUM is not None
    shown = render(
        CHROMIUM,
        output,
        screenshot,
        ready="document.body.dataset.chartsDrawn",
        then="var s = document.getElementById('app-filter'); s.value = 'com.example.beta';"
        " s.dispatchEvent(new Event('change'));",
        then_ready="document.body.dataset.shownApp === 'com.example.beta'",
    )
    assert shown.requests == []
    assert f'data-charts-drawn="{len(CHARTS)}"' in shown.dom
    for chart in CHARTS:
        block = shown.dom.split(f'data-chart="{chart.key}"', 1)[1].split("</section>", 1)[0]
        assert 'data-drawn="yes"' in block, f"{chart.key} did not draw"
        assert "main-svg" in block, f"{chart.key} has no plotly svg"
    # Incomplete months are shaded and labelled; the reconciliation gap is flagged.
    assert "incomplete" in shown.dom
    assert 'class="badge differs"' in shown.dom
    assert 'data-shown-app="com.example.beta"' in shown.dom
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000
    print(f"dashboard screenshot: {screenshot}")


@needs_chromium
def test_the_network_check_sees_a_page_that_fetches(tmp_path: Path) -> None:
    page = tmp_path / "fetches.html"
    page.write_text('<html><body><img src="http://example.invalid/logo.png"></body></html>')
    assert CHROMIUM is not None
    shown = render(CHROMIUM, page, ready="document.readyState === 'complete'", timeout=10)
    assert shown.requests == ["http://example.invalid/logo.png"]


def test_the_dashboard_exposure_lists_the_marts_its_charts_read() -> None:
    import yaml

    dbt = Path(__file__).resolve().parents[2] / "dbt"
    exposures = yaml.safe_load((dbt / "models" / "_exposures.yml").read_text())["exposures"]
    dashboard = next(e for e in exposures if e["name"] == "dashboard")
    listed = {re.sub(r"ref\('(\w+)'\)", r"\1", ref) for ref in dashboard["depends_on"]}
    models = {path.stem for path in (dbt / "models").rglob("*.sql")}
    # Each chart's preferred relation, once the dbt project has it as a model.
    wanted = {chart.sources[0].split(".")[1] for chart in CHARTS} & models
    assert wanted <= listed, f"add to the dashboard exposure: {sorted(wanted - listed)}"

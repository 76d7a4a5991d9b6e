"""The first hour of a new user, on a warehouse the real pipeline built from the simulator:
dbt's habits (source freshness, exposures, static docs), dlt's (`dlt pipeline ... info` as the
README shows it), and the dashboard of a real warehouse."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipelines.dashboard import write_dashboard
from pipelines.docs import build_docs
from pipelines.transform import DBT_PROJECT_DIR
from pipelines.warehouse import pipelines_dir
from tests.helpers import copy_warehouse
from tests.pipeline.chromium import find_chromium, render

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory, built_warehouse: Any) -> Path:
    """A tiny vendor loaded and transformed by `mpac run`: a copy of the shared build, since
    the docs, the dashboard and dbt's own commands write beside it."""
    assert built_warehouse.exit_code == 0, built_warehouse.output
    return copy_warehouse(built_warehouse.warehouse, tmp_path_factory.mktemp("first-hour") / "data")


def dbt(warehouse: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """dbt as a user types it, from the project folder, on this warehouse."""
    env = {**os.environ, "MPAC_WAREHOUSE": str(warehouse), "DBT_SEND_ANONYMOUS_USAGE_STATS": "0"}
    target = warehouse.parent / "dbt-cli"
    return subprocess.run(
        [
            str(BIN / "dbt"),
            *args,
            "--target-path",
            str(target / "target"),
            "--log-path",
            str(target / "logs"),
        ],
        cwd=DBT_PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_dbt_source_freshness_checks_every_loaded_table(warehouse: Path) -> None:
    done = dbt(warehouse, "source", "freshness")
    assert done.returncode == 0, done.stdout[-2000:]
    checked = dict(
        (table, outcome)
        for outcome, table in re.findall(
            r"(PASS|WARN|ERROR STALE) freshness of raw_marketplace\.(\w+)", done.stdout
        )
    )
    # Load time: the load just happened.
    assert checked["metric_aggregates"] == checked["feedback"] == "PASS", done.stdout[-2000:]
    # lastUpdated: the simulated vendor's own dates, which may be days behind the clock.
    assert checked["licenses"] in ("PASS", "WARN")
    assert checked["transactions"] in ("PASS", "WARN")


def test_the_dashboard_and_the_digest_are_dbt_exposures(warehouse: Path) -> None:
    done = dbt(warehouse, "ls", "--resource-type", "exposure", "--output", "name")
    assert done.returncode == 0, done.stdout[-2000:]
    assert {"dashboard", "digest"} <= set(done.stdout.split())


def test_static_docs_document_the_warehouse_and_open_from_a_file(warehouse: Path) -> None:
    page, nodes = build_docs(warehouse)
    assert page == warehouse.with_name("marketplace.docs.html")
    assert nodes >= 20  # staging, intermediate and marts relations in dbt's catalog
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no chromium on this machine: `apt-get install -y chromium` (.ci/run does it)")
    shown = render(
        chromium,
        page,
        ready="document.body.innerText.indexOf('mpac_warehouse') >= 0",
        timeout=30,
    )
    assert "Exposures" in shown.dom
    assert [url for url in shown.requests if not url.startswith("file:")] == []


def test_the_dashboard_of_a_real_warehouse_draws_the_v1_charts(warehouse: Path) -> None:
    output, panels = write_dashboard(warehouse)
    shown = {panel.chart.key for panel in panels if panel.skipped is None}
    assert {"mrr", "mrr_movements", "churn", "renewal", "conversion", "reconciliation"} <= shown
    assert "all " in output.read_text().split('id="reconciliation-status"', 1)[1][:200]


def test_dlt_pipeline_info_works_as_the_readme_shows_it(warehouse: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"dlt pipeline --pipelines-dir (\S+) marketplace info", readme)
    assert shown, "README shows no `dlt pipeline ... info` line"
    assert shown.group(1) == "data/.marketplace.dlt"
    # The README's folder, for the README's default warehouse; here the test's warehouse.
    assert pipelines_dir(ROOT / "data" / "marketplace.duckdb") == ROOT / shown.group(1)
    done = subprocess.run(
        [
            str(BIN / "dlt"),
            "pipeline",
            "--pipelines-dir",
            str(pipelines_dir(warehouse)),
            "marketplace",
            "info",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "dataset_name: raw_marketplace" in done.stdout

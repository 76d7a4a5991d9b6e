"""The scheduling recipes in deploy/ and the README, tried as far as a test can: the systemd
units verify, the CI recipe's premise holds (a fresh runner given only the stored warehouse
continues incrementally), and the cron line's log is one line per record."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines import runner

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_the_systemd_units_verify(tmp_path: Path) -> None:
    # The units name /srv/mpac-warehouse; verify them pointed at this checkout instead.
    for name in ("mpac-run.service", "mpac-run.timer"):
        text = (DEPLOY / "systemd" / name).read_text().replace("/srv/mpac-warehouse", str(ROOT))
        (tmp_path / name).write_text(text.replace("User=mpac", "User=root"))
    done = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            str(tmp_path / "mpac-run.service"),
            str(tmp_path / "mpac-run.timer"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Only complaints about our units count (the container's own units may be incomplete).
    ours = [line for line in done.stderr.splitlines() if "mpac-run" in line]
    assert ours == [], done.stderr
    timer = (DEPLOY / "systemd" / "mpac-run.timer").read_text()
    calendar = re.search(r"OnCalendar=(.+)", timer)
    assert calendar
    shown = subprocess.run(
        ["systemd-analyze", "calendar", calendar.group(1)], capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    assert "06:15:00 UTC" in shown.stdout


def test_the_ci_schedule_is_valid_yaml_that_stores_the_warehouse() -> None:
    workflow = yaml.safe_load((DEPLOY / "ci" / "scheduled-run.github-actions.yml").read_text())
    # PyYAML reads the key `on` as True.
    assert workflow[True]["schedule"] == [{"cron": "15 6 * * *"}]
    steps = " ".join(str(step.get("run", "")) for step in workflow["jobs"]["run"]["steps"])
    assert 'aws s3 cp "$WAREHOUSE_URI" data/marketplace.duckdb' in steps
    assert 'data/marketplace.duckdb "$WAREHOUSE_URI"' in steps
    assert workflow["concurrency"]["cancel-in-progress"] is False


@pytest.mark.integration
def test_a_fresh_runner_given_the_stored_warehouse_runs_incrementally(
    make_simulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = make_simulator(size="tiny")
    for name, value in sim.env().items():
        monkeypatch.setenv(name, value)
    first = tmp_path / "runner-1" / "marketplace.duckdb"
    initial = runner.run(first, transform=False)
    assert initial.backfill
    # The next runner: an empty disk, then the warehouse fetched from the bucket. No dlt folder.
    second = tmp_path / "runner-2" / "marketplace.duckdb"
    second.parent.mkdir()
    shutil.copyfile(first, second)
    sim.advance(10)
    again = runner.run(second, transform=False)
    assert not again.backfill
    # dlt restored its cursors from the warehouse: only what changed in 10 days was read.
    for table in ("licenses", "transactions"):
        assert again.rows.get(table, 0) * 5 < initial.rows[table], (table, again.rows)

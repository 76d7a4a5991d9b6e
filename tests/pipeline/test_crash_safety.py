"""kill -9 of a whole `mpac run` at named points (tests/killpoints.py), then a normal run: the
warehouse equals the simulator's ground truth, nothing lost, nothing doubled (issue 10)."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from pipelines.warehouse import RAW_DATASET
from tests.helpers import cli, query, reading, run_at_killpoint, simulator_env
from tests.pipeline.test_runner import assert_matches_ground_truth, assert_metrics_match

pytestmark = pytest.mark.integration
DISCOUNTS = "transactions__purchase_details__discounts"


def killed_run(point: str, warehouse: Path, env: dict[str, str], *args: str) -> str:
    """`mpac run` in a child process that kills itself at `point`; returns its stderr."""
    child = run_at_killpoint(point, warehouse, env, *args)
    assert child.returncode == -signal.SIGKILL, (
        f"{point} was never reached:\n{child.stderr[-3000:]}"
    )
    return child.stderr


def normal_run(warehouse: Path, env: dict[str, str], *args: str) -> Any:
    result = cli(["run", "--warehouse", str(warehouse), *args], env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # its traceback, not only its repr
    assert result.exit_code == 0, result.output[-3000:]
    return result


def assert_no_doubles(warehouse: Path) -> None:
    """Child rows once per parent position (the parents are checked by the ground truth)."""
    with reading(warehouse) as run:  # one connection for both reads
        ((rows, distinct),) = run(
            f"select count(*), count(distinct (_dlt_parent_id, _dlt_list_idx)) "
            f"from {RAW_DATASET}.{DISCOUNTS}"
        )
        assert rows == distinct, f"{rows} discount rows for {distinct}"
        ((rows, distinct),) = run(
            f"select count(*), count(distinct _dlt_id) from {RAW_DATASET}.licenses"
        )
        assert rows == distinct, f"{rows} license versions for {distinct}"


@pytest.mark.parametrize("table", ["licenses", DISCOUNTS])
def test_a_load_killed_right_after_a_staging_copy_does_not_double_rows_on_the_rerun(
    simulator: Any, tmp_path: Path, table: str
) -> None:
    # Finding 0: dlt empties staging once per package and re-runs, on resume, a copy job that
    # had committed; the merge then inserted every row of it twice.
    env = simulator_env(simulator)
    warehouse = tmp_path / "marketplace.duckdb"
    killed_run(f"load-copy:{table}", warehouse, env, "--no-transform")
    normal_run(warehouse, env)  # with the dbt build: its unique tests fail on doubles
    assert_matches_ground_truth(warehouse, simulator)
    assert_no_doubles(warehouse)


# ---- the crash matrix: `make test-chaos` ---------------------------------------------------------


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny vendor (seed 42) backfilled by a normal run: the start of the incremental cases,
    copied per case (the simulator is deterministic, so a fresh one serves the same records)."""
    from pipelines.simulator.harness import run_simulator

    folder = tmp_path_factory.mktemp("backfilled")
    with run_simulator(size="tiny") as sim:
        normal_run(folder / "w.duckdb", simulator_env(sim), "--no-transform")
    return folder


# (point, backfill or incremental). Each case: kill -9 there, then a normal run. The dbt cases
# run dbt in both runs; the others skip it (dbt runs after the load, it cannot affect them).
MATRIX = [
    ("export-poll@1", "backfill"),
    ("download@30", "backfill"),
    ("paging@3", "backfill"),
    ("normalize@1", "backfill"),
    ("load-copy:transactions", "backfill"),
    ("merge:licenses", "backfill"),
    ("loaded", "backfill"),
    ("dbt:fct_churn", "backfill"),
    ("export-poll@1", "incremental"),
    ("paging@1", "incremental"),
    ("load-copy:licenses", "incremental"),
    ("load-copy:metric_aggregates", "incremental"),
    ("merge:transactions", "incremental"),
    ("dbt:fct_mrr", "incremental"),
]


@pytest.mark.chaos
@pytest.mark.timeout(900)  # two whole runs, dbt in both for the dbt cases, on 2 shared cores
@pytest.mark.parametrize(("point", "kind"), MATRIX)
def test_kill_9_then_a_normal_run_equals_the_ground_truth(
    simulator: Any, backfilled: Path, tmp_path: Path, point: str, kind: str
) -> None:
    folder = tmp_path / "data"
    if kind == "incremental":
        shutil.copytree(backfilled, folder)
        simulator.advance(30)  # time travel: new records, rewritten ones
    warehouse = folder / "w.duckdb"
    env = simulator_env(simulator)
    dbt = [] if point.startswith("dbt:") else ["--no-transform"]
    landed = set(loads(warehouse))
    killed_run(point, warehouse, env, *dbt)
    if not point.startswith("dbt:"):
        # A killed load never shows: the warehouse holds exactly what it held before.
        assert set(loads(warehouse)) == landed
    normal_run(warehouse, env, *dbt)
    assert_matches_ground_truth(warehouse, simulator)
    assert_metrics_match(warehouse, simulator)
    assert_no_doubles(warehouse)
    if dbt == []:
        assert query(warehouse, "select count(*) from marts.fct_churn")[0][0] > 0


def loads(warehouse: Path) -> list[str]:
    if not warehouse.exists():
        return []
    return [r[0] for r in query(warehouse, f"select load_id from {RAW_DATASET}._dlt_loads")]


def test_a_successful_run_prunes_older_load_packages_and_its_snapshots(
    simulator: Any, loaded_copy: Path
) -> None:
    # Finding 7: dlt kept every run's package (about 0.33 MB a run), forever.
    from pipelines.warehouse import PIPELINE_NAME, pipelines_dir

    env = simulator_env(simulator)
    warehouse = loaded_copy  # a first run's warehouse, of what `simulator` serves (conftest)
    working = pipelines_dir(warehouse) / PIPELINE_NAME
    assert list((working / "load" / "loaded").iterdir())  # the first run's package
    simulator.advance(10)
    normal_run(warehouse, env, "--no-transform")
    kept = sorted(p.name for p in (working / "load" / "loaded").iterdir())
    assert kept == [max(loads(warehouse))]
    assert not any((working / "package_snapshots").iterdir())

"""Shared fixtures: a live simulated Marketplace API on 127.0.0.1, fresh for each test.

Usage::

    def test_pages(simulator):                       # seed 42, size "tiny", no faults
        with simulator.client() as client:           # httpx.Client, base_url + Basic auth
            page = client.get(f"{simulator.v3_base}/licenses", params={"limit": 50}).json()

    @pytest.mark.parametrize("simulator", [{"size": "small", "faults": "flaky"}], indirect=True)
    def test_retries(simulator): ...

    def test_two_vendors(make_simulator):
        a = make_simulator(seed=1)
        b = make_simulator(seed=2, faults={"rate_429": 0.5, "retry_after_seconds": 0})

The object is a `pipelines.simulator.harness.RunningSimulator`: `base_url`, `v2_base`,
`v3_base`, `admin_url`, `email`, `api_token`, `auth`, `vendor`, `faults`, `state`, `today`,
`client()`, `advance(days)`, `set_faults(spec, **overrides)`, `expected()`. Keyword arguments of
`make_simulator` (and the indirect param dict): `seed`, `size` (tiny|small|large|int),
`faults` (profile name, dict, JSON or FaultConfig), `credentials` ((email, token)), `today`,
`vendor` (any object with the SyntheticVendor interface).

Adding a test without a new backfill or dbt build (they are most of the suite's time)::

    def test_reads_marts(built_warehouse):           # read only: assert on .warehouse, .truth
        ...

    def test_changes_a_built_one(built_copy, simulator):
        # built_copy: a fresh copy of built_warehouse's folder (tmp_path/data/marketplace.duckdb).
        # simulator (seed 42, tiny) serves the records it was built from: advance it, run again.
        simulator.advance(30)
        cli(["run", "--warehouse", str(built_copy)], simulator_env(simulator))

    def test_loads_more(loaded_copy, simulator): ...  # the same, loaded but never transformed

`built_warehouse` and `loaded_warehouse` are built once per session, on first use, by whichever
xdist worker needs them first (a worker that comes later copies them), so such tests need no
xdist_group mark. dbt unit tests are left out of every build, as `mpac transform`
leaves them out for users; test_marts runs them once (test_dbt_unit_tests_pass).
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipelines.simulator.harness import RunningSimulator, run_simulator
from pipelines.warehouse import DEFAULT_WAREHOUSE

# The name `mpac run` gives a warehouse by default: the shared ones look like a user's.
WAREHOUSE_NAME = DEFAULT_WAREHOUSE.name
LEAK_CHECK_EMAIL = "leak-check@example.com"


# ---- the slowest tests start first ------------------------------------------------------------

# Test functions (every parameter of each), slowest first: `make test` at -n 3 (session 6, this
# machine, --durations; seconds in the comments). xdist hands out the groups first (pg,
# logged_run), then single tests in collection order, ~3 queued per worker; the 53 s ground-truth
# test used to start wherever test_marts.py came and end last. Longest first leaves the short
# tests for the end, where they fill the workers evenly. Only the order changes: a renamed test
# just loses its place here.
SLOW_FIRST = (
    "test_marts_equal_ground_truth_after_backfill_and_after_time_travel",  # 53 (duckdb)
    "test_mpac_report_shows_the_v2_figures_of_the_marts",  # 26 (builds built_warehouse)
    "test_two_vendors_share_a_warehouse_and_each_equals_its_own_ground_truth",  # 37
    "test_a_failed_dbt_build_after_a_load_exits_3_and_readers_keep_the_last_good_marts",  # 29
    "test_the_demo_says_where_its_warehouse_dashboard_and_docs_are",  # 25
    "test_a_load_killed_right_after_a_staging_copy_does_not_double_rows_on_the_rerun",  # 17 x 2
    "test_a_terminal_shows_progress_of_load_and_dbt",  # 16
    "test_the_pii_policy_holds_in_raw_tables_marts_and_the_published_copy",  # 14-16 x 3
    "test_a_full_disk_is_one_sentence_and_the_next_run_catches_up",  # 12-14 x 3
    "test_backfill_then_incremental_equals_ground_truth_with_history",  # 14 (duckdb)
    "test_a_future_last_updated_leaves_as_of_and_the_cursor_at_the_load_day",  # 13
    "test_a_warehouse_from_before_vendors_keeps_working_after_the_upgrade",  # 18 with setup
    "test_bulk_and_per_record_backfills_write_the_same_raw_tables",  # 10-11 x 2
    "test_a_second_run_says_who_holds_the_warehouse_and_exits_2_or_waits_for_it",  # 10
    "test_faults_and_v3_still_give_the_ground_truth",  # 9-10 x 2
    "test_dbt_unit_tests_pass",  # 10
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the tests of SLOW_FIRST first, in its order; the rest keep theirs (a stable sort,
    the same on every xdist worker, as xdist requires)."""
    rank = {name: place for place, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(getattr(item, "originalname", item.name), len(rank)))


@pytest.fixture
def make_simulator() -> Iterator[Callable[..., RunningSimulator]]:
    """Factory: each call starts one more simulator; all stop when the test ends."""
    with ExitStack() as stack:

        def make(**kwargs: Any) -> RunningSimulator:
            return stack.enter_context(run_simulator(**kwargs))

        yield make


@pytest.fixture
def simulator(
    request: pytest.FixtureRequest, make_simulator: Callable[..., RunningSimulator]
) -> RunningSimulator:
    """A running simulator (tiny vendor, seed 42, no faults); indirect params override that."""
    return make_simulator(**(getattr(request, "param", None) or {}))


# ---- built once per worker, shared by the tests that read them or copy them -------------------


@dataclass
class BuiltWarehouse:
    """A tiny vendor (seed 42) loaded and transformed once by `mpac run` (dbt build included).

    `sim` has a fresh random API token, so the leak test can search for it; `truth` is the
    ground truth at build time (tests may move `sim` on afterwards); `output` and `log_text` are
    what the run printed and logged (root logger at DEBUG, as caplog would record it);
    `results` maps each dbt node the build ran (unique_id) to its status.
    """

    sim: RunningSimulator
    warehouse: Path
    env: dict[str, str]
    token: str
    output: str
    exit_code: int
    log_text: str
    truth: Any
    results: dict[str, str]


def _once_per_session(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], dict[str, Any]]
) -> tuple[Path, dict[str, Any]]:
    """`build(warehouse)` once per test session, not once per xdist worker: the first worker
    that needs it builds it and leaves a pristine copy of its folder (and what `build`
    returned, JSON) in the session's shared temp folder; a worker that comes later copies that
    folder instead of building its own. A worker that comes while another is still building
    waits for it (the lock): with three workers on two cores, a duplicate build cost ~10 CPU s
    that the builder was short of (DECISIONLOG, "Test suite time, part 4"). Returns this
    worker's warehouse (a folder of its own, which its tests may read) and what `build`
    returned."""
    from tests.helpers import copy_warehouse

    def own() -> tuple[Path, dict[str, Any]]:
        warehouse = tmp_path_factory.mktemp(name) / "data" / WAREHOUSE_NAME
        return warehouse, build(warehouse)

    shared = _shared_folder(tmp_path_factory, name)
    if shared is None:
        return own()
    notes = shared / "notes.json"
    with (shared / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if notes.exists():
            warehouse = copy_warehouse(
                shared / "data" / WAREHOUSE_NAME, tmp_path_factory.mktemp(name) / "data"
            )
            return warehouse, json.loads(notes.read_text())
        warehouse, built = own()
        # A copy the tests never touch: some run `mpac transform` on the warehouse itself.
        shutil.rmtree(shared / "data", ignore_errors=True)  # a copy cut short, if any
        copy_warehouse(warehouse, shared / "data")
        notes.write_text(json.dumps(built))
        return warehouse, built  # the lock goes with the file


def _shared_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path | None:
    """A folder every xdist worker of this session sees (None without xdist)."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return None
    # Every worker's basetemp (popen-gwN) sits in the session's one folder.
    shared = tmp_path_factory.getbasetemp().parent / f"shared-{name}"
    shared.mkdir(exist_ok=True)
    return shared


@pytest.fixture(autouse=True)
def _parse_seed_for_integration_tests(request: pytest.FixtureRequest) -> None:
    """Integration tests build warehouses: they get dbt_parse_seed (unit tests skip its ~4 s)."""
    if request.node.get_closest_marker("integration"):
        request.getfixturevalue("dbt_parse_seed")


@pytest.fixture(scope="session")
def dbt_parse_seed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One `dbt parse` per session, which every new warehouse's first dbt command starts from.

    A full parse is ~3 CPU s of every tiny build, and most of the suite's ~30 builds start in a
    new folder (a fresh warehouse, a copy), where dbt finds no saved parse of its own.
    $MPAC_DBT_PARSE_SEED (pipelines.transform.dbt_arguments) points such a first command at this
    one; later commands read their own, as users' do. dbt's checks still decide: its version,
    the target, the vars, the profile but for the file's path (reuse_parse_across_paths; the
    database name stays, so `w.duckdb` parses in full) and every project file's checksum. Child
    `mpac` processes inherit the variable. What the builds build and test is the same; only how
    dbt reads the project.
    """
    from dbt.cli.main import dbtRunner

    from pipelines.transform import (
        PARSE_FILE,
        PARSE_SEED_ENV,
        dbt_arguments,
        dbt_artifacts_dir,
        dbt_invocation,
    )
    from pipelines.warehouse import WAREHOUSE_ENV

    def parse(seed: Path) -> None:
        warehouse = seed / "data" / WAREHOUSE_NAME  # parsing opens no connection
        with dbt_invocation({WAREHOUSE_ENV: str(warehouse)}):
            outcome = dbtRunner().invoke(dbt_arguments(["parse"], warehouse))
        assert outcome.success, outcome.exception
        os.replace(dbt_artifacts_dir(warehouse) / "target" / PARSE_FILE, seed / PARSE_FILE)

    seed = _shared_folder(tmp_path_factory, "parse") or tmp_path_factory.mktemp("parse")
    with (seed / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (seed / PARSE_FILE).exists():
            parse(seed)
    saved = os.environ.get(PARSE_SEED_ENV)
    os.environ[PARSE_SEED_ENV] = str(seed / PARSE_FILE)
    yield seed / PARSE_FILE
    if saved is None:
        os.environ.pop(PARSE_SEED_ENV, None)
    else:
        os.environ[PARSE_SEED_ENV] = saved


@pytest.fixture(scope="session")
def built_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltWarehouse]:
    """dbt build is most of the suite's time: the tests that only read its result share one
    build per session (_once_per_session); the tests that change it work on `built_copy`."""
    from pipelines.simulator.ground_truth.builder import compute_metrics
    from pipelines.transform import dbt_artifacts_dir
    from tests.helpers import cli, simulator_env

    def build(warehouse: Path) -> dict[str, Any]:
        token = f"tok-{secrets.token_hex(16)}"
        records = io.StringIO()
        handler = logging.StreamHandler(records)
        handler.setLevel(logging.DEBUG)
        root = logging.getLogger()
        level = root.level
        with run_simulator(size="tiny", credentials=(LEAK_CHECK_EMAIL, token)) as sim:
            root.addHandler(handler)
            root.setLevel(logging.DEBUG)
            try:
                # The first run backfills by itself, then runs the dbt step.
                result = cli(["run", "--warehouse", str(warehouse)], simulator_env(sim))
            finally:
                root.removeHandler(handler)
                root.setLevel(level)
        run_results = dbt_artifacts_dir(warehouse) / "target" / "run_results.json"
        ran = json.loads(run_results.read_text())["results"] if run_results.exists() else []
        return {
            "token": token,
            "output": result.output,
            "exit_code": result.exit_code,
            "log_text": records.getvalue(),
            "results": {node["unique_id"]: node["status"] for node in ran},
        }

    warehouse, built = _once_per_session(tmp_path_factory, "built", build)
    # This worker's own simulator, with the token the build used (the leak test searches for
    # it): seed 42 and the fixed today, so it serves the records the build loaded.
    with run_simulator(size="tiny", credentials=(LEAK_CHECK_EMAIL, built["token"])) as sim:
        truth = compute_metrics(
            list(sim.state.records("licenses", with_data_insights=True)),
            list(sim.state.records("transactions")),
            feedback=list(sim.state.records("feedback")),
        )
        yield BuiltWarehouse(
            sim,
            warehouse,
            simulator_env(sim),
            built["token"],
            built["output"],
            built["exit_code"],
            built["log_text"],
            truth,
            built["results"],
        )


@pytest.fixture(scope="session")
def loaded_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny vendor (seed 42) loaded by `mpac run --no-transform`, once per session
    (_once_per_session): its folder is what `loaded_copy` copies. Nothing may write to it."""
    from tests.helpers import cli, simulator_env

    def build(warehouse: Path) -> dict[str, Any]:
        with run_simulator(size="tiny") as sim:
            result = cli(
                ["run", "--warehouse", str(warehouse), "--no-transform"], simulator_env(sim)
            )
        assert result.exit_code == 0, result.output
        return {}

    return _once_per_session(tmp_path_factory, "loaded", build)[0]


@pytest.fixture
def built_copy(built_warehouse: BuiltWarehouse, tmp_path: Path) -> Path:
    """A copy of `built_warehouse` (its folder: dlt's state, dbt's target) this test may change;
    the `simulator` fixture serves the records it holds. Returns the copy's warehouse path."""
    from tests.helpers import copy_warehouse

    return copy_warehouse(built_warehouse.warehouse, tmp_path / "data")


@pytest.fixture
def loaded_copy(loaded_warehouse: Path, tmp_path: Path) -> Path:
    """A copy of `loaded_warehouse` this test may change (no marts yet); see `built_copy`."""
    from tests.helpers import copy_warehouse

    return copy_warehouse(loaded_warehouse, tmp_path / "data")


@pytest.fixture
def models_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every `dbt build` of this test (in process or in a child) builds the models and leaves
    out the data tests. Only for a test that asserts nothing the data tests check (an exit code,
    what readers see after a failure, progress, a digest), on data whose full build another test
    asserts: the tiny vendor's backfill (built_warehouse: test_marts) or that backfill + 30 days
    (the demo, test_cli_surface). Never where a test relies on a data test's outcome (a warning,
    a failure, doubles caught by unique tests) or on data of its own (drift, PII modes, vendors,
    Postgres, the ground-truth sizes): DECISIONLOG, "Test suite time, part 2"."""
    # dbt's own variable for `--resource-type`, inherited by child processes: the data tests
    # are ~300 of a build's ~345 nodes and two thirds of its time (tiny vendor: ~3.5 CPU s with
    # models only, ~10 with them).
    monkeypatch.setenv("DBT_RESOURCE_TYPES", "model")


# ---- Postgres: one server per test session, one fresh database per test ----------------------

POSTGRES_URL_ENV = "MPAC_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a Postgres server whose user may create databases: $MPAC_TEST_POSTGRES_URL,
    else a throwaway server started from the machine's binaries (pytest-postgresql), else the
    test skips and says why (CI installs Debian's postgresql, so there it always runs)."""
    import os

    from pipelines.tools.postgres_server import find_pg_ctl, throwaway_postgres

    given = os.environ.get(POSTGRES_URL_ENV)
    if given:
        yield given
        return
    pg_ctl = find_pg_ctl()
    if pg_ctl is None:
        pytest.skip(
            f"no Postgres: set {POSTGRES_URL_ENV} or install the server binaries (pg_ctl; "
            "Debian: apt-get install postgresql)"
        )
    with throwaway_postgres(pg_ctl) as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    from pipelines.tools.postgres_server import fresh_database

    with fresh_database(postgres_server, "mpac_test") as url:
        yield url


# dbt on Postgres pays a round trip per node (339 with tests): on a busy 2-core machine the
# ground-truth test's three builds took over the default 300 s, so Postgres gets longer.
@pytest.fixture(
    params=[
        "duckdb",
        pytest.param("postgres", marks=[pytest.mark.xdist_group("pg"), pytest.mark.timeout(1200)]),
    ]
)
def destination(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once per destination, chosen the way a user does (environment variables):
    DuckDB as is; Postgres on a fresh database of the session's server."""
    monkeypatch.delenv("DESTINATION_TYPE", raising=False)
    monkeypatch.delenv("PIPELINES__MARKETPLACE__DESTINATION_TYPE", raising=False)
    if request.param == "postgres":
        monkeypatch.setenv("DESTINATION_TYPE", "postgres")
        monkeypatch.setenv(
            "DESTINATION__POSTGRES__CREDENTIALS", request.getfixturevalue("postgres_url")
        )
    return str(request.param)

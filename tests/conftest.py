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
"""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipelines.simulator.harness import RunningSimulator, run_simulator


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


# ---- one built warehouse shared by the tests that only read it ---------------------------------


@dataclass
class BuiltWarehouse:
    """A tiny vendor loaded and transformed once by `mpac run` (dbt build included).

    `sim` has a fresh random API token, so the leak test can search for it; `truth` is the
    ground truth at build time (tests may move `sim` on afterwards); `output` and `log_text` are
    what the run printed and logged (root logger at DEBUG, as caplog would record it).
    """

    sim: RunningSimulator
    warehouse: Path
    env: dict[str, str]
    token: str
    output: str
    exit_code: int
    log_text: str
    truth: Any


@pytest.fixture(scope="session")
def built_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltWarehouse]:
    """dbt build is most of the suite's time: the tests that only read its result share one
    build per worker (mark them `xdist_group("built_warehouse")` so they meet on one worker)."""
    from pipelines.simulator.ground_truth.builder import compute_metrics
    from tests.helpers import cli, simulator_env

    token = f"tok-{secrets.token_hex(16)}"
    warehouse = tmp_path_factory.mktemp("built") / "data" / "w.duckdb"
    records = io.StringIO()
    handler = logging.StreamHandler(records)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    level = root.level
    with run_simulator(size="tiny", credentials=("leak-check@example.com", token)) as sim:
        env = simulator_env(sim)
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        try:
            # The first run backfills by itself, then runs the dbt step.
            result = cli(["run", "--warehouse", str(warehouse)], env)
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
        licenses = list(sim.state.records("licenses", with_data_insights=True))
        truth = compute_metrics(
            licenses,
            list(sim.state.records("transactions")),
            feedback=list(sim.state.records("feedback")),
        )
        yield BuiltWarehouse(
            sim, warehouse, env, token, result.output, result.exit_code, records.getvalue(), truth
        )

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

from collections.abc import Callable, Iterator
from contextlib import ExitStack
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

"""One writer at a time: two real `mpac run` processes on one warehouse (issue 10, finding 1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, harness, simulator_env
from tests.pipeline.test_crash_safety import assert_no_doubles, normal_run
from tests.pipeline.test_runner import assert_matches_ground_truth

pytestmark = pytest.mark.integration


def paused_run(warehouse: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """A real `mpac run`, stopped as it begins its load (lock held, data extracted)."""
    child = subprocess.Popen(
        harness("pause/load", "run", "--warehouse", str(warehouse), "--no-transform"),
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "paused"
    return child


def mpac(*args: str, env: dict[str, str], **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", *args], env=env, cwd=ROOT, text=True, **popen
    )


def test_a_second_run_says_who_holds_the_warehouse_and_exits_2_or_waits_for_it(
    simulator: Any, tmp_path: Path
) -> None:
    env = {**os.environ, **simulator_env(simulator)}
    warehouse = tmp_path / "w.duckdb"
    first = paused_run(warehouse, env)
    try:
        second = mpac(
            "run",
            "--warehouse",
            str(warehouse),
            "--no-transform",
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _, said = second.communicate(timeout=120)
        assert second.returncode == 2, said
        assert "Traceback" not in said
        message = " ".join(said.split())
        assert f"another run is in progress on {warehouse} (pid {first.pid}, started " in message

        third = mpac(
            "run",
            "--warehouse",
            str(warehouse),
            "--no-transform",
            "--wait",
            "300",
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert third.stderr is not None
        # Let the first run go on only once the third is waiting for it.
        # Its first line may be the run's start record; the wait is announced before it blocks.
        said_first = [third.stderr.readline()]
        while "waiting" not in said_first[-1] and said_first[-1] and len(said_first) < 5:
            said_first.append(third.stderr.readline())
        assert "waiting up to 300 s" in said_first[-1], said_first
        assert first.stdin is not None
        first.stdin.close()
        assert first.wait(timeout=120) == 0
        assert third.wait(timeout=240) == 0
    finally:
        first.kill()
    assert_matches_ground_truth(warehouse, simulator)
    assert_no_doubles(warehouse)


def test_the_lock_of_a_killed_run_is_taken_over_at_once(simulator: Any, tmp_path: Path) -> None:
    env = {**os.environ, **simulator_env(simulator)}
    warehouse = tmp_path / "w.duckdb"
    first = paused_run(warehouse, env)
    first.send_signal(signal.SIGKILL)
    first.wait()
    normal_run(warehouse, simulator_env(simulator), "--no-transform")
    assert_matches_ground_truth(warehouse, simulator)
    assert_no_doubles(warehouse)

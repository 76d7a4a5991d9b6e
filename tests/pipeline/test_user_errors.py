"""Issue 10, findings 3-5: every user mistake or hostile condition ends in one sentence and the
documented exit code (2 nothing landed, 3 landed then a later step failed, 130 interrupted),
never a traceback, and bad input is refused before anything runs."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from pipelines import runner
from pipelines.errors import LandedButFailed, UserError
from pipelines.marketplace.client import RetryPolicy
from pipelines.marketplace.exports import LEDGER_FILE
from pipelines.status import read_status
from pipelines.warehouse import PIPELINE_NAME, pipelines_dir
from tests.helpers import cli, configure, mpac_process, read_only_folder, simulator_env
from tests.pipeline.test_runner import FAST_RETRY, assert_matches_ground_truth

pytestmark = pytest.mark.integration


def one_line(text: str) -> str:
    return " ".join(text.split())


def assert_one_sentence(output: str, exit_code: int, expected_code: int, message: str) -> None:
    assert exit_code == expected_code, output
    assert message in one_line(output), output
    assert "Traceback" not in output


# ---- finding 3: Ctrl-C, read-only folders, malformed settings -----------------------------------


def test_ctrl_c_says_interrupted_exits_130_and_the_next_run_resumes(
    make_simulator: Any, tmp_path: Path
) -> None:
    # Exports stay QUEUED for a few polls, so the run is inside dlt's extract step
    # (where dlt wraps the KeyboardInterrupt) when the signal arrives; they complete later.
    sim = make_simulator(size="tiny", faults={"export_queued_polls": 3})
    warehouse = tmp_path / "data" / "w.duckdb"
    process = mpac_process(["run", "--warehouse", str(warehouse)], simulator_env(sim))
    ledger = pipelines_dir(warehouse) / PIPELINE_NAME / LEDGER_FILE
    deadline = time.monotonic() + 120
    while not ledger.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if not ledger.exists():
        process.kill()
        _, stderr = process.communicate(timeout=60)
        pytest.fail(f"the run never started an export: {stderr[-2000:]}")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert_one_sentence(stderr, process.returncode, 130, "interrupted; the next run resumes")

    result = cli(["run", "--warehouse", str(warehouse), "--no-transform"], simulator_env(sim))
    assert result.exit_code == 0, result.output
    assert_matches_ground_truth(warehouse, sim)


def test_an_interrupted_dbt_build_is_interrupted_not_a_traceback(
    built_warehouse: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbt.cli.main import dbtRunner, dbtRunnerResult

    # What dbtRunner.invoke returns when Ctrl-C lands inside dbt (measured: an exception whose
    # text is empty, which the old code indexed into).
    monkeypatch.setattr(
        dbtRunner,
        "invoke",
        lambda self, args: dbtRunnerResult(success=False, exception=KeyboardInterrupt()),
    )
    result = cli(["transform", "--warehouse", str(built_warehouse.warehouse)])
    assert_one_sentence(result.output, result.exit_code, 130, "interrupted; the next run resumes")


def test_a_read_only_warehouse_folder_is_one_sentence_exit_2(
    simulator: Any, tmp_path: Path, loaded_copy: Path
) -> None:
    env = simulator_env(simulator)
    empty = tmp_path / "empty"
    with read_only_folder(empty):
        result = cli(["run", "--warehouse", str(empty / "w.duckdb")], env)
    assert_one_sentence(result.output, result.exit_code, 2, f"cannot write to {empty}")

    # A warehouse that was loaded (of what `simulator` serves, conftest), then its folder made
    # read-only: dlt's first write is its trace file (a PermissionError or EROFS raised while
    # handling the failed step).
    loaded = loaded_copy.parent
    with read_only_folder(loaded):
        result = cli(["run", "--warehouse", str(loaded_copy), "--no-transform"], env)
    assert_one_sentence(result.output, result.exit_code, 2, f"cannot write to {loaded}")


@pytest.mark.parametrize(
    ("file", "text", "message"),
    [
        ("secrets.toml", '[sources.marketplace]\napi_token = "abc\n', "at line 2, column"),
        ("config.toml", "[sources.marketplace\nvendor_id = 1\n", "at line 1"),
    ],
)
def test_a_malformed_settings_file_names_the_file_and_line(
    simulator: Any, tmp_path: Path, file: str, text: str, message: str
) -> None:
    settings = tmp_path / ".dlt"
    settings.mkdir()
    (settings / file).write_text(text)
    process = mpac_process(
        ["run", "--warehouse", str(tmp_path / "w.duckdb")], simulator_env(simulator), tmp_path
    )
    _, stderr = process.communicate(timeout=120)
    assert_one_sentence(stderr, process.returncode, 2, f"{settings / file} is not valid TOML")
    assert message in one_line(stderr)
    assert "abc" not in stderr  # the text around the error may be a secret


def test_a_run_from_another_folder_says_there_is_no_config_there(tmp_path: Path) -> None:
    process = mpac_process(["run"], {"SOURCES__MARKETPLACE__VENDOR_ID": ""}, tmp_path)
    _, stderr = process.communicate(timeout=120)
    assert_one_sentence(
        stderr, process.returncode, 2, f"there is no {tmp_path / '.dlt' / 'config.toml'}"
    )
    assert not (tmp_path / "data").exists()


# ---- finding 4: garbled and wrong messages ------------------------------------------------------


def test_a_missing_secret_names_the_section_in_brackets(simulator: Any, tmp_path: Path) -> None:
    env = simulator_env(simulator, email="")
    result = cli(["run", "--warehouse", str(tmp_path / "w.duckdb")], env)
    assert_one_sentence(result.output, result.exit_code, 2, "under [sources.marketplace]")


def test_publishing_into_a_read_only_folder_after_the_load_exits_3(
    simulator: Any, tmp_path: Path
) -> None:
    warehouse = tmp_path / "data" / "w.duckdb"
    readers = tmp_path / "readers"
    with read_only_folder(readers):
        result = cli(
            [
                "run",
                "--warehouse",
                str(warehouse),
                "--no-transform",
                "--publish",
                str(readers / "copy.duckdb"),
            ],
            simulator_env(simulator),
        )
    assert_one_sentence(result.output, result.exit_code, 3, f"cannot write to {readers}")
    assert "the load landed" in one_line(result.output)
    assert "another process" not in result.output
    assert read_status(warehouse).cursors["licenses"]  # it did land


def test_an_unreachable_host_is_named_at_once_without_retries(
    monkeypatch: pytest.MonkeyPatch, simulator: Any, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    configure(monkeypatch, simulator, base_url=f"http://127.0.0.1:{port}")
    waits: list[float] = []
    with pytest.raises(UserError, match=rf"cannot reach the Marketplace API at 127.0.0.1:{port}"):
        runner.run(tmp_path / "w.duckdb", retry=RetryPolicy(sleep=waits.append))
    assert waits == []
    # 5xx are still retried under the same policy.
    configure(monkeypatch, simulator)
    simulator.set_faults({"rate_5xx": 1.0})
    with pytest.raises(UserError, match="kept failing"):
        runner.run(tmp_path / "w.duckdb", retry=RetryPolicy(sleep=waits.append))
    assert len(waits) >= 3


# ---- finding 5: bad input accepted silently -----------------------------------------------------


def test_since_in_the_future_is_refused_and_moves_no_cursor(
    simulator: Any, loaded_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = loaded_copy  # loaded from what `simulator` serves (conftest)
    configure(monkeypatch, simulator)
    before = read_status(warehouse)
    result = cli(["run", "--warehouse", str(warehouse), "--since", "2030-01-01"])
    assert_one_sentence(result.output, result.exit_code, 2, "--since 2030-01-01 is in the future")
    after = read_status(warehouse)
    assert after.cursors == before.cursors
    assert after.tables == before.tables


def test_a_selection_that_matches_nothing_is_an_error(built_warehouse: Any) -> None:
    result = cli(
        ["transform", "--warehouse", str(built_warehouse.warehouse), "--select", "fct_nonexistent"]
    )
    assert_one_sentence(
        result.output, result.exit_code, 2, "--select fct_nonexistent matches no dbt model"
    )


@pytest.mark.parametrize(
    ("dbt_vars", "message"),
    [
        ('{"grace_dayz": 7}', "unknown dbt var 'grace_dayz': the vars are"),
        ('{"grace_days": -5}', "var grace_days must be a whole number of days, 0 or more"),
        ('{"conversion_window_days": "30"}', "var conversion_window_days must be a whole number"),
        ('{"amount_basis": "net"}', "var amount_basis must be vendor_amount or purchase_price"),
        ('{"reconciliation_severity": "fatal"}', "var reconciliation_severity must be warn or"),
        ('{"as_of_date": "yesterday"}', "var as_of_date must be a date"),
    ],
)
def test_bad_dbt_vars_are_refused_before_anything_runs(
    tmp_path: Path, dbt_vars: str, message: str
) -> None:
    # No warehouse at all: the var is checked first, so its sentence is the one shown.
    result = cli(["transform", "--warehouse", str(tmp_path / "none.duckdb"), "--vars", dbt_vars])
    assert_one_sentence(result.output, result.exit_code, 2, message)


def test_a_failed_transform_after_the_load_exits_3(
    make_simulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pipelines import transform

    sim = make_simulator(size="tiny")
    configure(monkeypatch, sim)

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise UserError("dbt build failed: fct_churn.")

    monkeypatch.setattr(transform, "run_transform", failing)
    with pytest.raises(LandedButFailed, match="dbt build failed: fct_churn; the load landed"):
        runner.run(tmp_path / "w.duckdb", retry=FAST_RETRY)
    assert read_status(tmp_path / "w.duckdb").cursors["licenses"]

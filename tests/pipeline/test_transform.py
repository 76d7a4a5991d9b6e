"""pipelines.transform and `mpac transform`: dbt's arguments, the summary, and user errors
(dbt itself is replaced by a fake runner: no database, no dbt project run)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import duckdb
import pytest
from typer.testing import CliRunner

from pipelines import transform
from pipelines.cli import app
from pipelines.errors import UserError
from pipelines.transform import TransformResult, run_transform, summarise
from pipelines.writing import shadow_path


def node_result(name: str, resource_type: str, status: str) -> SimpleNamespace:
    return SimpleNamespace(
        node=SimpleNamespace(name=name, resource_type=resource_type),
        status=SimpleNamespace(value=status),
    )


class FakeRunner:
    """Stands in for dbt.cli.main.dbtRunner; records what it was asked and how."""

    calls: ClassVar[list[dict[str, Any]]] = []
    results: ClassVar[list[SimpleNamespace]] = []
    exception: ClassVar[BaseException | None] = None

    def invoke(self, args: list[str]) -> SimpleNamespace:
        FakeRunner.calls.append({"args": args, "warehouse": os.environ.get("MPAC_WAREHOUSE")})
        return SimpleNamespace(
            exception=FakeRunner.exception,
            result=SimpleNamespace(results=FakeRunner.results),
            success=FakeRunner.exception is None,
        )


@pytest.fixture
def fake_dbt(monkeypatch: pytest.MonkeyPatch) -> type[FakeRunner]:
    import dbt.cli.main

    FakeRunner.calls = []
    FakeRunner.results = [
        node_result("stg_marketplace__licenses", "model", "success"),
        node_result("fct_churn", "model", "success"),
        node_result("unique_fct_churn_month", "test", "pass"),
        node_result("renewal_opportunities_skip_moves", "unit_test", "pass"),
    ]
    FakeRunner.exception = None
    monkeypatch.setattr(dbt.cli.main, "dbtRunner", FakeRunner)
    monkeypatch.setattr(transform, "_check_raw_tables", lambda warehouse, destination: None)
    monkeypatch.delenv("MPAC_WAREHOUSE", raising=False)
    return FakeRunner


def test_summary_counts_models_and_tests_and_names_failures_and_warnings() -> None:
    summary = summarise(
        [
            node_result("fct_mrr", "model", "success"),
            node_result("not_null_fct_mrr_month", "test", "pass"),
            node_result("mrr_movements_unit", "unit_test", "pass"),
            node_result("rpt_metric_reconciliation_differences_are_zero", "test", "warn"),
            node_result("unique_fct_churn_grain", "test", "fail"),
            node_result("fct_renewal", "model", "error"),
            node_result("fct_conversion", "model", "skipped"),
        ],
        seconds=1.5,
    )
    assert summary.models_built == 1
    assert summary.tests_passed == 2
    assert summary.failed == ["unique_fct_churn_grain", "fct_renewal"]
    assert summary.warned == ["rpt_metric_reconciliation_differences_are_zero"]
    assert summary.skipped == 1
    assert not summary.ok
    assert str(summary).startswith("1 models built, 2 tests passed, 2 failed, 1 warned")


def test_build_runs_in_process_with_the_absolute_warehouse_path_and_the_vars(
    fake_dbt: type[FakeRunner], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    duckdb.connect("wh.duckdb").close()
    result = run_transform(
        Path("wh.duckdb"), select="marts", vars={"as_of_date": "2026-06-30", "grace_days": 14}
    )
    (call,) = fake_dbt.calls
    args = call["args"]
    assert args[0] == "build"
    # unit tests check the SQL: the suite runs them (tests/marts), a production build does not
    assert args[1:3] == ["--exclude-resource-type", "unit_test"]
    assert args[args.index("--select") + 1] == "marts"
    assert args[args.index("--vars") + 1] == '{"as_of_date": "2026-06-30", "grace_days": 14}'
    assert args[args.index("--project-dir") + 1] == str(transform.DBT_PROJECT_DIR)
    # dbt resolves a relative path from its own working directory: it must get the absolute one,
    # of the shadow copy that is swapped in only after a successful build
    assert call["warehouse"] == str(shadow_path(tmp_path / "wh.duckdb"))
    assert "MPAC_WAREHOUSE" not in os.environ
    assert result == TransformResult(models_built=2, tests_passed=2, seconds=result.seconds)


def test_artifacts_go_beside_the_warehouse_so_parallel_builds_do_not_share_them(
    fake_dbt: type[FakeRunner], tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    duckdb.connect(str(tmp_path / "a" / "one.duckdb")).close()
    run_transform(tmp_path / "a" / "one.duckdb")
    args = fake_dbt.calls[0]["args"]
    assert args[args.index("--target-path") + 1] == str(tmp_path / "a" / ".one.dbt" / "target")


def test_a_failing_test_is_a_user_error_that_names_it(fake_dbt: type[FakeRunner]) -> None:
    fake_dbt.results = [
        node_result("fct_churn", "model", "success"),
        node_result("rpt_metric_reconciliation_differences_are_zero", "test", "fail"),
    ]
    with pytest.raises(UserError, match="rpt_metric_reconciliation_differences_are_zero"):
        run_transform(Path("/tmp/wh.duckdb"))


def test_dbt_that_cannot_start_is_one_sentence(fake_dbt: type[FakeRunner]) -> None:
    fake_dbt.exception = RuntimeError("Could not find profile named 'mpac_warehouse'\nmore")
    with pytest.raises(UserError, match=r"^dbt could not run: Could not find profile"):
        run_transform(Path("/tmp/wh.duckdb"))


def test_a_missing_warehouse_says_to_load_first(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="run `mpac run` first"):
        run_transform(tmp_path / "nothing.duckdb")


def test_cli_passes_as_of_and_vars(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # the command takes the writer lock beside the warehouse
    seen: dict[str, Any] = {}

    def fake_run(
        warehouse: Path, select: str | None = None, vars: Any = None, destination: Any = None
    ) -> None:
        seen.update(warehouse=warehouse, select=select, vars=vars, destination=destination)

    monkeypatch.setattr(transform, "run_transform", fake_run)
    result = CliRunner().invoke(
        app,
        ["transform", "--warehouse", "w.duckdb", "--as-of", "2026-06-30", "--vars", '{"a": 1}'],
    )
    assert result.exit_code == 0, result.output
    assert seen["vars"] == {"a": 1, "as_of_date": "2026-06-30"}
    assert seen["warehouse"].name == "w.duckdb"
    assert seen["destination"].name == "duckdb"  # the default: one setting chooses it


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--as-of", "2026-13-01", "--as-of must be a date"), ("--vars", "[1]", "JSON object")],
)
def test_cli_rejects_bad_input_in_one_line(option: str, value: str, message: str) -> None:
    result = CliRunner().invoke(app, ["transform", option, value])
    assert result.exit_code == 2
    assert message in result.output


def test_a_warehouse_without_a_saved_parse_starts_from_the_seed_then_from_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse, seed = tmp_path / "data" / "marketplace.duckdb", tmp_path / "seed.msgpack"
    flag = "--partial-parse-file-path"
    monkeypatch.delenv(transform.PARSE_SEED_ENV, raising=False)
    assert flag not in transform.dbt_arguments(["build"], warehouse)  # users: dbt as it is
    monkeypatch.setenv(transform.PARSE_SEED_ENV, str(seed))
    assert flag not in transform.dbt_arguments(["build"], warehouse)  # no such file: ignored
    seed.write_bytes(b"saved parse")
    args = transform.dbt_arguments(["build"], warehouse)
    assert args[args.index(flag) + 1] == str(seed)
    own = transform.dbt_artifacts_dir(warehouse) / "target" / transform.PARSE_FILE
    own.parent.mkdir(parents=True)
    own.write_bytes(b"its own")
    assert flag not in transform.dbt_arguments(["build"], warehouse)


def test_dbt_reuses_a_parse_across_folders_but_not_across_database_names() -> None:
    from dbt.adapters.duckdb.credentials import DuckDBCredentials
    from dbt.parser.manifest import ManifestLoader

    transform.reuse_parse_across_paths()
    transform.reuse_parse_across_paths()  # idempotent: wraps dbt's check once

    def profile_hash(path: str, **settings: Any) -> Any:
        credentials = DuckDBCredentials.from_dict({"path": path, "schema": "main", **settings})
        config = SimpleNamespace(
            cli_vars={},
            args=SimpleNamespace(profile=None, target="local"),
            project_env_vars={},
            credentials=credentials,
        )
        project = SimpleNamespace(project_root=str(transform.DBT_PROJECT_DIR))
        loader = SimpleNamespace(root_project=config, all_projects={"mpac_warehouse": project})
        return ManifestLoader.build_manifest_state_check(loader).profile_hash

    here = profile_hash("/a/data/.marketplace.next/marketplace.duckdb")
    assert profile_hash("/b/data/marketplace.duckdb") == here
    # The manifest's relations carry the database name (the file's stem) and the settings.
    assert profile_hash("/a/data/w.duckdb") != here
    assert profile_hash("/b/data/marketplace.duckdb", settings={"threads": 1}) != here

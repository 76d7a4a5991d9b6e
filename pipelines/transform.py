"""Run the dbt project in-process (dbt build) against the warehouse and summarise the outcome."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from pipelines.destinations import (
    Destination,
    advisory_lock,
    dbt_environment,
    drop_shadow_schemas,
    open_reader,
    resolve,
    swap_shadow_schemas,
)
from pipelines.errors import Interrupted, UserError
from pipelines.progress import dbt_progress
from pipelines.warehouse import RAW_DATASET
from pipelines.writing import discard_shadow, is_disk_full, open_shadow, swap_in, writer_lock

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt"
# dbt's saved parse, in its target folder; reused when nothing it depends on changed.
PARSE_FILE = "partial_parse.msgpack"
# A saved parse a warehouse without one of its own starts from (the test suite sets it: one
# `dbt parse` per session instead of one per new warehouse); unset, nothing changes.
PARSE_SEED_ENV = "MPAC_DBT_PARSE_SEED"
# dbt statuses, as strings so that this module does not depend on dbt's enums' import paths.
_FAILED = {"fail", "error", "runtime error"}
_PASSED = {"pass", "success"}


@dataclass
class TransformResult:
    """What one `dbt build` did.

    Attributes:
        models_built: Models materialised (views and tables).
        tests_passed: Data and unit tests that passed.
        failed: Names of the nodes (tests or models) that failed or errored.
        warned: Names of the tests that only warned (e.g. reconciliation against the live API).
        skipped: Nodes dbt skipped because something upstream failed.
        seconds: Wall-clock time of the build.
    """

    models_built: int = 0
    tests_passed: int = 0
    failed: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)
    skipped: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def __str__(self) -> str:
        text = (
            f"{self.models_built} models built, {self.tests_passed} tests passed, "
            f"{len(self.failed)} failed, {len(self.warned)} warned in {self.seconds:.1f} s"
        )
        return text + (f", {self.skipped} skipped" if self.skipped else "")


# The allowed values of the vars that name a choice; the names and defaults of every var are
# read from dbt_project.yml (one list), and a var with a whole-number default must be a whole
# number of days, not negative.
VAR_CHOICES: dict[str, tuple[str, ...]] = {
    "amount_basis": ("vendor_amount", "purchase_price"),
    "reconciliation_severity": ("warn", "error"),
}
_DATE_VARS = ("as_of_date",)


def project_vars() -> dict[str, Any]:
    """The vars dbt_project.yml declares, with their defaults."""
    import yaml

    with open(DBT_PROJECT_DIR / "dbt_project.yml", encoding="utf-8") as file:
        project = yaml.safe_load(file) or {}
    return dict(project.get("vars") or {})


def validate_vars(chosen: Mapping[str, Any]) -> dict[str, Any]:
    """`chosen` checked against dbt_project.yml before dbt runs: unknown names, wrong types
    and out-of-range values end in one sentence (dbt would accept a negative grace_days and
    rebuild half the marts with it)."""
    known = project_vars()
    checked: dict[str, Any] = {}
    for name, value in chosen.items():
        if name not in known:
            raise UserError(f"unknown dbt var {name!r}: the vars are {', '.join(sorted(known))}.")
        default = known[name]
        if name in _DATE_VARS:
            if value in (None, ""):
                checked[name] = value
                continue
            try:
                checked[name] = dt.date.fromisoformat(str(value)).isoformat()
            except ValueError:
                raise UserError(f"var {name} must be a date (YYYY-MM-DD), not {value!r}.") from None
        elif name in VAR_CHOICES:
            if value not in VAR_CHOICES[name]:
                choices = " or ".join(VAR_CHOICES[name])
                raise UserError(f"var {name} must be {choices}, not {value!r}.")
            checked[name] = value
        elif isinstance(default, int) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UserError(
                    f"var {name} must be a whole number of days, 0 or more, not {value!r}."
                )
            checked[name] = value
        else:
            checked[name] = value
    return checked


def dbt_artifacts_dir(warehouse: Path) -> Path:
    """dbt's target and log folders sit beside the warehouse, like dlt's working folder: two
    warehouses built at once (tests run in parallel) must not share one target folder."""
    return warehouse.parent / f".{warehouse.stem}.dbt"


@contextmanager
def dbt_invocation(values: Mapping[str, str]) -> Iterator[None]:
    """Around every in-process dbt command: `values` set in the environment for the block (dbt
    reads env_var() from it), no usage stats sent, and dbt's saved parse reusable across
    warehouse paths (`reuse_parse_across_paths`)."""
    reuse_parse_across_paths()
    values = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **values}
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _check_raw_tables(warehouse: Path, destination: Destination) -> None:
    """Fail with one sentence when there is nothing to transform yet."""
    with open_reader(warehouse, destination) as connection:
        found = connection.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name in ('licenses', 'transactions')",
            [RAW_DATASET],
        ).fetchone()
    if not found or found[0] < 2:
        raise UserError(
            f"the warehouse {warehouse} has no {RAW_DATASET} licenses and transactions yet: "
            "run `mpac run` first."
        )


def _release_warehouse() -> None:
    """Close the DuckDB connection dbt-duckdb keeps open for the life of the process.

    dbt-duckdb holds its database in a class attribute after `dbt build` returns; until it is
    closed, this process cannot open the warehouse read-only (to print the marts, say), and no
    other process can open it at all.
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # pragma: no cover - dbt-duckdb is a dependency
        return
    with DuckDBConnectionManager._LOCK:
        environment = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
        if environment is not None:
            environment.close()


def _node_name(result: Any) -> str:
    node = result.node
    return str(getattr(node, "name", None) or getattr(node, "unique_id", "?"))


def summarise(results: list[Any], seconds: float) -> TransformResult:
    """Count dbt's node results into a TransformResult.

    Args:
        results: `RunResult`s from `dbtRunnerResult.result.results`.
        seconds: Wall-clock time of the build.

    Returns:
        The counts, with the names of the failing and warning nodes.
    """
    summary = TransformResult(seconds=seconds)
    for result in results:
        status = str(getattr(result.status, "value", result.status)).lower()
        resource_type = str(getattr(result.node.resource_type, "value", result.node.resource_type))
        if status in _FAILED:
            summary.failed.append(_node_name(result))
        elif status == "warn":
            summary.warned.append(_node_name(result))
        elif status == "skipped":
            summary.skipped += 1
        elif status in _PASSED:
            if resource_type == "model":
                summary.models_built += 1
            elif resource_type in ("test", "unit_test"):
                summary.tests_passed += 1
    return summary


def _print_summary(summary: TransformResult, console: Console) -> None:
    if not console.is_terminal:
        # A log file: one record for the build, one per warning or failure, never wrapped.
        log = logging.getLogger("pipelines.transform")
        log.log(logging.INFO if summary.ok else logging.ERROR, "dbt build: %s", summary)
        for name in summary.warned:
            log.warning("dbt warn: %s", name)
        for name in summary.failed:
            log.error("dbt fail: %s", name)
        return
    colour = "green" if summary.ok else "red"
    console.print(f"[bold {colour}]dbt build[/]: {summary}", highlight=False)
    for name in summary.warned:
        console.print(f"  [yellow]warn[/] {name}", highlight=False)
    for name in summary.failed:
        console.print(f"  [red]fail[/] {name}", highlight=False)


def run_transform(
    warehouse: Path,
    select: str | None = None,
    vars: dict[str, Any] | None = None,
    console: Console | None = None,
    wait: float = 0,
    destination: Destination | None = None,
) -> TransformResult:
    """Run `dbt build` (models and data tests) on the warehouse, in this process.

    Args:
        warehouse: The DuckDB file dlt loaded `raw_marketplace` into.
        select: A dbt selection (`--select`), e.g. `marts` or `+fct_churn`; default everything.
        vars: dbt vars, e.g. `{"as_of_date": "2026-06-30", "grace_days": 14}`.
        console: Where to print the summary (default: stderr).
        wait: Seconds to wait for a run in progress on the warehouse (default: fail at once).
        destination: DuckDB or Postgres (default: the configured one, destinations.resolve).

    Returns:
        The counts of models built and tests passed, and the names of the warnings.

    Raises:
        UserError: When there is no raw data, or when a model or test fails (naming them).
    """
    console = console or Console(stderr=True)
    vars = validate_vars(vars or {})
    destination = destination or resolve()
    warehouse = destination.local_path(Path(warehouse).expanduser().resolve())
    if not destination.is_duckdb:
        if select:
            # The marts are swapped in as one set of schemas: a part cannot be built alone.
            raise UserError(
                "--select is DuckDB-only: on Postgres `mpac transform` builds every model into "
                "shadow schemas and swaps them in together; leave --select out."
            )
        with writer_lock(warehouse, wait), advisory_lock(destination, wait):
            _check_raw_tables(warehouse, destination)
            drop_shadow_schemas(destination)
            try:
                summary = _build(destination, warehouse, warehouse, select, vars, console)
            except BaseException:
                drop_shadow_schemas(destination)
                raise
            swap_shadow_schemas(destination)
        return summary
    with writer_lock(warehouse, wait):
        _check_raw_tables(warehouse, destination)
        # dbt builds a shadow copy, swapped in only when every model and test passed: a failed
        # build changes nothing a reader sees (DECISIONLOG, "A failed transform...").
        try:
            shadow = open_shadow(warehouse)
            summary = _build(destination, shadow, warehouse, select, vars, console)
            swap_in(warehouse)
        except OSError as error:
            discard_shadow(warehouse)
            if is_disk_full(error):
                raise UserError(
                    f"the disk is full (or a file-size limit was hit) near {warehouse.parent}: "
                    "free some space and run `mpac transform` again (the marts did not change)."
                ) from None
            raise
        except BaseException:
            discard_shadow(warehouse)
            raise
    return summary


def reuse_parse_across_paths() -> None:
    """Let dbt's partial parse survive a change of the DuckDB file's path (idempotent).

    dbt reuses its saved parse (target/partial_parse.msgpack) only when a hash of the profile's
    connection values is unchanged, and for DuckDB those include `path`: every build goes into
    the shadow (`.marketplace.next/marketplace.duckdb`), `mpac docs` reads the warehouse itself,
    a copied or moved warehouse has another folder, so each of them parsed the whole project
    again (~3 CPU s, a fifth of a tiny build). No model reads `target.path`; what parsing does
    depend on stays in the hash: the database name (the file's stem), the schema, the settings,
    the target name and vars (dbt's own checks), and every project file (dbt compares their
    checksums, so a changed project is still parsed again).
    """
    import pprint

    from dbt.contracts.files import FileHash
    from dbt.parser.manifest import ManifestLoader

    original = ManifestLoader.build_manifest_state_check
    if getattr(original, "mpac_path_free", False):
        return

    def state_check(self: Any) -> Any:
        check = original(self)
        keys = sorted(
            (key, value)
            for key, value in self.root_project.credentials.connection_info()
            if key != "path"
        )
        check.profile_hash = FileHash.from_contents(pprint.pformat(keys))
        return check

    state_check.mpac_path_free = True  # type: ignore[attr-defined]
    ManifestLoader.build_manifest_state_check = state_check  # type: ignore[method-assign]


def dbt_arguments(command: list[str], warehouse: Path, target: str = "local") -> list[str]:
    """A dbt command over this project and a profile `target`, its artefacts and logs kept
    beside `warehouse` (never in dbt/, which a read-only install or a second warehouse would
    share)."""
    artifacts = dbt_artifacts_dir(warehouse)
    seed = os.environ.get(PARSE_SEED_ENV)
    if seed and Path(seed).is_file() and not (artifacts / "target" / PARSE_FILE).exists():
        # A warehouse dbt never ran on starts from a saved parse of the same project (dbt then
        # writes its own into target/): dbt's checks still decide whether it can be used.
        command = [*command, "--partial-parse-file-path", seed]
    return [
        *command,
        "--target",
        target,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(artifacts / "target"),
        "--log-path",
        str(artifacts / "logs"),
        "--quiet",
    ]


def _build(
    destination: Destination,
    shadow: Path,
    warehouse: Path,
    select: str | None,
    vars: dict[str, Any] | None,
    console: Console,
) -> TransformResult:
    """`dbt build` into `shadow` (DuckDB) or the `__next` schemas (Postgres); raises a
    UserError naming what failed."""
    from dbt.cli.main import dbtRunner

    artifacts = dbt_artifacts_dir(warehouse)
    # Unit tests check the SQL, not the data: they run in the test suite (tests/marts), and in
    # every production build they only cost time (46 s of node time on the 100k vendor).
    args = dbt_arguments(
        ["build", "--exclude-resource-type", "unit_test"], warehouse, destination.dbt_target
    )
    if select:
        args += ["--select", select]
    if vars:
        args += ["--vars", json.dumps(vars, default=str)]
    started = time.perf_counter()
    # profiles.yml reads the warehouse from $MPAC_WAREHOUSE: pass the absolute path, since a
    # relative one would be read from dbt's working directory.
    env = {
        **dbt_environment(destination, shadow, shadow=True),
        # dbt's file log defaults to debug: every statement of every node, 1.7 MB for one tiny
        # build and 13% of its CPU. At info it still holds each node's status and, for a
        # failure, the error and the path of the compiled SQL (what "details in dbt.log"
        # points at); DBT_LOG_LEVEL_FILE=debug brings the statements back.
        "DBT_LOG_LEVEL_FILE": os.environ.get("DBT_LOG_LEVEL_FILE") or "info",
    }
    with dbt_invocation(env), dbt_progress(console) as callbacks:
        try:
            runner = dbtRunner(callbacks=callbacks) if callbacks else dbtRunner()
            outcome = runner.invoke(args)
        finally:
            _release_warehouse()
    seconds = time.perf_counter() - started
    if isinstance(outcome.exception, KeyboardInterrupt):
        raise Interrupted()
    if outcome.exception is not None:
        first_line = (str(outcome.exception).strip().splitlines() or [""])[0]
        raise UserError(f"dbt could not run: {first_line or type(outcome.exception).__name__}.")
    results = list(getattr(outcome.result, "results", None) or [])
    if select and not results:
        # dbt only warns when a selection matches nothing; a typo must not pass as a build.
        raise UserError(f"--select {select} matches no dbt model or test: check the name.")
    summary = summarise(results, seconds)
    _print_summary(summary, console)
    if summary.failed:
        shown = ", ".join(summary.failed[:5])
        more = f" and {len(summary.failed) - 5} more" if len(summary.failed) > 5 else ""
        raise UserError(
            f"dbt build failed: {shown}{more} (details in {artifacts / 'logs' / 'dbt.log'})."
        )
    return summary

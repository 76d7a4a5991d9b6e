"""The real pipeline against the simulator into a temporary DuckDB: backfill, time travel,
incremental runs, faults, v3, a killed export wait, bad input and secrets."""

from __future__ import annotations

import base64
import json
import shutil
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from pipelines import runner
from pipelines.errors import UserError
from pipelines.marketplace.client import RetryPolicy
from pipelines.marketplace.exports import LEDGER_FILE
from pipelines.marketplace.helpers import (
    flatten_metric_aggregates,
    license_key,
    row_hash,
    transaction_key,
)
from pipelines.simulator.ground_truth.payloads import details_events
from pipelines.status import read_status
from pipelines.warehouse import PIPELINE_NAME, RAW_DATASET, pipelines_dir
from tests.helpers import cli, configure, query, reading, simulator_env

pytestmark = pytest.mark.integration

# Fast but real: the same policy, with waits that keep a faulty run within seconds.
FAST_RETRY = RetryPolicy(attempts=10, budget_seconds=30, initial_wait=0.01, max_wait=0.05)


def counts(warehouse: Path) -> dict[str, int]:
    return {row["table"]: row["rows"] for row in read_status(warehouse).tables}


def cursors(warehouse: Path) -> dict[str, Any]:
    return read_status(warehouse).cursors


def truth(sim: Any, kind: str) -> list[dict[str, Any]]:
    return list(sim.state.records(kind, with_data_insights=True))


def current(run: Callable[[str], Any], table: str, columns: str) -> list[tuple[Any, ...]]:
    """The current versions of a raw table, read with `run` (a `reading` connection)."""
    return run(f"select {columns} from {RAW_DATASET}.{table} where _dlt_valid_to is null")


def assert_matches_ground_truth(warehouse: Path, sim: Any, version: str = "v2") -> None:
    """Every key once among current rows, with the simulator's values, amounts to the cent."""
    with reading(warehouse) as run:  # one connection for its four reads
        _assert_matches_ground_truth(run, sim, version)


def _assert_matches_ground_truth(run: Callable[[str], Any], sim: Any, version: str) -> None:
    licenses = {license_key(r): r for r in truth(sim, "licenses")}
    rows = current(run, "licenses", "license_key, last_updated, status, tier")
    keys = [r[0] for r in rows]
    assert len(keys) == len(set(keys)), "a license has two current versions"
    assert set(keys) == set(licenses)
    for key, last_updated, status, tier in rows:
        expected = licenses[key]
        assert (str(last_updated), status, tier) == (
            expected["lastUpdated"],
            expected["status"],
            expected["tier"],
        ), key

    lines = {transaction_key(r): r for r in truth(sim, "transactions")}
    rows = current(
        run,
        "transactions",
        "transaction_id, transaction_line_item_id, purchase_details__vendor_amount, "
        "purchase_details__purchase_price, payment_status, last_updated, license_key",
    )
    keys = [f"{r[0]}|{r[1]}" for r in rows]
    assert len(keys) == len(set(keys)), "a transaction line has two current versions"
    assert set(keys) == set(lines)
    for tid, line, vendor_amount, price, payment_status, last_updated, key in rows:
        expected = lines[f"{tid}|{line}"]
        details = expected["purchaseDetails"]
        assert round(vendor_amount * 100) == round(details["vendorAmount"] * 100)
        assert round(price * 100) == round(details["purchasePrice"] * 100)
        assert payment_status == expected.get("paymentStatus")
        assert str(last_updated) == expected["lastUpdated"]
        assert key is not None

    for table, kind in (
        ("feedback", "feedback"),
        ("marketing_attribution", "marketing_attribution"),
    ):
        hashes = [r[0] for r in run(f"select row_hash from {RAW_DATASET}.{table}")]
        assert len(hashes) == len(set(hashes))
        records = truth(sim, kind)
        if version == "v3":  # v3 adds productId to every record, so to the hash too
            records = [{**r, "productId": sim.state.product_of[r["addonKey"]]} for r in records]
        assert set(hashes) == {row_hash(r) for r in records}


def assert_metrics_match(warehouse: Path, sim: Any) -> None:
    """Atlassian's figures and events as the simulator serves them today, nothing stale."""
    expected_rows: Counter[tuple[Any, ...]] = Counter()
    with sim.client() as client:
        for metric, extra in (
            ("churn", {}),
            ("renewal", {}),
            ("conversion", {"groupBy": "conversionType"}),
        ):
            body = client.get(
                f"{sim.v2_base}/sales/metrics/{metric}",
                params={"aggregation": "month", "startDate": "2016-01-01", **extra},
            ).json()
            for row in flatten_metric_aggregates(metric, body):
                expected_rows[tuple(str(v) for v in row.values())] += 1
    loaded = query(
        warehouse,
        "select metric, aggregation, period_start, addon_key, billing_period, conversion_type, "
        f"series, count from {RAW_DATASET}.metric_aggregates",
    )
    assert Counter(tuple(str(v) for v in row) for row in loaded) == expected_rows

    hashes = {r[0] for r in query(warehouse, f"select row_hash from {RAW_DATASET}.metric_events")}
    expected_hashes = {
        row_hash({"metric": metric, **event})
        for metric in ("churn", "renewal", "conversion")
        for event in details_events(sim.expected(), metric)
    }
    assert hashes == expected_hashes


def versions(warehouse: Path, table: str, key: str) -> Counter[str]:
    rows = query(warehouse, f"select {key} from {RAW_DATASET}.{table}")
    return Counter(str(r[0]) for r in rows)


# The raw types the staging models rely on, as each destination's information_schema names them.
RAW_TYPES = {
    "duckdb": {"vendor_amount": "DOUBLE", "date": "DATE"},
    "postgres": {"vendor_amount": "double precision", "date": "date"},
}


def test_backfill_then_incremental_equals_ground_truth_with_history(
    make_simulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, destination: str
) -> None:
    sim = make_simulator(size="small")
    configure(monkeypatch, sim)
    warehouse = tmp_path / "w.duckdb"

    first = runner.run(warehouse, transform=False, retry=FAST_RETRY)
    assert first.backfill is True  # the first run backfills by itself: no cursor yet
    assert_matches_ground_truth(warehouse, sim)
    before = {license_key(r): r for r in truth(sim, "licenses")}
    lines_before = {transaction_key(r): r for r in truth(sim, "transactions")}

    sim.advance(30)
    runner.run(warehouse, transform=False, retry=FAST_RETRY)
    assert_matches_ground_truth(warehouse, sim)

    # Rewritten records keep their old version as history, closed, next to the new one.
    after = {license_key(r): r for r in truth(sim, "licenses")}
    rewritten = [k for k in before if k in after and before[k] != after[k]]
    assert rewritten, "the simulator rewrote no license in 30 days"
    license_versions = versions(warehouse, "licenses", "license_key")
    assert all(license_versions[k] >= 2 for k in rewritten)
    lines_after = {transaction_key(r): r for r in truth(sim, "transactions")}
    changed = [k for k in lines_before if lines_before[k] != lines_after.get(k)]
    line_versions = versions(warehouse, "transactions", "transaction_key")
    assert all(line_versions[k] >= 2 for k in changed)
    # Records outside the incremental window were not retired.
    assert len(current(partial(query, warehouse), "licenses", "license_key")) == len(after)

    # Types the staging models rely on.
    types = dict(
        query(
            warehouse,
            "select column_name, data_type from information_schema.columns "
            f"where table_schema = '{RAW_DATASET}' and table_name = 'transactions'",
        )
    )
    expected_types = RAW_TYPES[destination]
    assert types["purchase_details__vendor_amount"] == expected_types["vendor_amount"]
    assert types["purchase_details__sale_date"] == expected_types["date"]
    assert types["last_updated"] == expected_types["date"]

    assert_metrics_match(warehouse, sim)

    # Nothing new: a second incremental run changes nothing.
    loaded = counts(warehouse)
    saved = cursors(warehouse)
    runner.run(warehouse, transform=False, retry=FAST_RETRY)
    assert counts(warehouse) == loaded
    assert cursors(warehouse) == saved

    # The same windows again, unchanged: nothing is loaded, and nothing is lost by that.
    loads = query(warehouse, f"select load_id from {RAW_DATASET}._dlt_loads order by load_id")
    file_before = warehouse.stat() if destination == "duckdb" else None
    again = runner.run(warehouse, transform=False, retry=FAST_RETRY)
    assert again.rows == {}
    assert again.load_ids == []  # nothing landed: no load recorded, no shadow swapped in
    assert (
        query(warehouse, f"select load_id from {RAW_DATASET}._dlt_loads order by load_id") == loads
    )
    if file_before is not None:
        file_after = warehouse.stat()
        assert (file_after.st_ino, file_after.st_mtime_ns) == (
            file_before.st_ino,
            file_before.st_mtime_ns,
        )
    assert counts(warehouse) == loaded
    assert cursors(warehouse) == saved
    assert_matches_ground_truth(warehouse, sim)
    assert_metrics_match(warehouse, sim)
    # A day later the windows hold changes again, and they are loaded.
    sim.advance(1)
    later = runner.run(warehouse, transform=False, retry=FAST_RETRY)
    assert later.rows
    # The API's new day is recorded once (dbt's as_of cap reads it).
    days = query(warehouse, f"select load_day from {RAW_DATASET}.load_days order by load_day")
    assert len(days) == len({d for (d,) in days})
    assert str(days[-1][0]) == str(sim.today)
    assert_matches_ground_truth(warehouse, sim)
    assert_metrics_match(warehouse, sim)


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_faults_and_v3_still_give_the_ground_truth(
    make_simulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: str
) -> None:
    sim = make_simulator(
        size="tiny",
        faults={
            "rate_429": 0.08,
            "rate_5xx": 0.08,
            "rate_drop": 0.03,
            "rate_truncate": 0.03,
            "retry_after_seconds": 0,
            "export_fail_first_n": 1,
        },
    )
    configure(monkeypatch, sim, version)
    warehouse = tmp_path / "w.duckdb"
    runner.run(warehouse, transform=False, retry=FAST_RETRY)
    assert_matches_ground_truth(warehouse, sim, version)
    assert sim.faults.counters["export_fail"] >= 1
    assert sim.faults.counters["fault_429"] + sim.faults.counters["fault_5xx"] >= 1
    sim.advance(30)
    runner.run(warehouse, transform=False, retry=FAST_RETRY)
    assert_matches_ground_truth(warehouse, sim, version)
    loaded = counts(warehouse)
    runner.run(warehouse, transform=False, retry=FAST_RETRY)
    assert counts(warehouse) == loaded
    if version == "v3":
        product_ids = query(warehouse, f"select count(product_id) from {RAW_DATASET}.licenses")
        assert product_ids[0][0] > 0


def test_a_run_killed_in_an_export_wait_resumes_without_exporting_again(
    make_simulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sim = make_simulator(size="tiny", faults={"export_queued_polls": 3})
    initiated: list[tuple[str, tuple[Any, ...]]] = []
    initiate = sim.state.exports.initiate

    def counting(kind: str, generation: int, params: dict, today: Any) -> Any:
        initiated.append((kind, tuple(sorted((k, tuple(v)) for k, v in params.items()))))
        return initiate(kind, generation, params, today)

    monkeypatch.setattr(sim.state.exports, "initiate", counting)
    warehouse = tmp_path / "w.duckdb"
    # A deadline that expires at the first poll: the run dies waiting, like a killed job.
    configure(monkeypatch, sim, export_deadline_seconds="0")
    with pytest.raises(UserError, match="run again later to resume"):
        runner.run(warehouse, transform=False, retry=FAST_RETRY)
    ledger = pipelines_dir(warehouse) / PIPELINE_NAME / LEDGER_FILE
    pending = json.loads(ledger.read_text())
    assert pending, "the export id was not saved before waiting"
    if warehouse.exists():
        assert cursors(warehouse) == {}, "a failed run moved a cursor"
    first_round = list(initiated)
    initiated.clear()

    configure(monkeypatch, sim, export_deadline_seconds="60")
    runner.run(warehouse, transform=False, retry=FAST_RETRY)
    assert not set(initiated) & set(first_round), "an export was initiated again"
    assert not ledger.exists(), "the ledger outlived a successful load"
    assert_matches_ground_truth(warehouse, sim)


def test_a_failed_run_leaves_the_cursor_and_the_tables(
    simulator: Any, loaded_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, warehouse = simulator, loaded_copy  # loaded from what `sim` serves (conftest)
    configure(monkeypatch, sim)
    saved, loaded = cursors(warehouse), counts(warehouse)
    sim.advance(30)
    sim.set_faults({"rate_5xx": 1.0})
    with pytest.raises(UserError, match="kept failing"):
        runner.run(warehouse, transform=False, retry=FAST_RETRY)
    assert cursors(warehouse) == saved
    assert counts(warehouse) == loaded
    sim.set_faults("none")
    runner.run(warehouse, transform=False, retry=FAST_RETRY)
    assert_matches_ground_truth(warehouse, sim)


def test_a_backfill_since_a_date_overlaps_without_duplicates_or_rewinding(
    simulator: Any, loaded_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, warehouse = simulator, loaded_copy  # loaded from what `sim` serves (conftest)
    configure(monkeypatch, sim)
    sim.advance(20)
    saved = cursors(warehouse)
    result = runner.run(warehouse, since="2025-01-01", transform=False, retry=FAST_RETRY)
    assert result.backfill
    assert_matches_ground_truth(warehouse, sim)
    assert all(cursors(warehouse)[name] >= saved[name] for name in saved if saved[name])


@pytest.mark.parametrize(
    ("args", "overrides", "message"),
    [
        ([], {"api_token": "wrong-token"}, "credentials rejected: check email and api_token"),
        ([], {"vendor_id": "999"}, "vendor 999 was not found or is not yours"),
        ([], {"vendor_id": "999", "api_version": "v3"}, "vendor 999 was not found"),
        (["--since", "2024-13-45"], {}, "--since must be a date like 2024-01-31"),
        ([], {"start_date": "last year"}, "start_date must be a date"),
        (["--resources", "licences"], {}, "unknown resource licences"),
    ],
)
def test_bad_input_is_one_sentence_exit_2_and_touches_nothing(
    simulator: Any, tmp_path: Path, args: list[str], overrides: dict[str, str], message: str
) -> None:
    warehouse = tmp_path / "data" / "w.duckdb"
    result = cli(
        ["run", "--warehouse", str(warehouse), "--no-transform", *args],
        simulator_env(simulator, **overrides),
    )
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "data").exists()


def test_status_of_a_missing_warehouse_is_one_sentence(tmp_path: Path) -> None:
    result = cli(["status", "--warehouse", str(tmp_path / "none.duckdb")], {})
    assert result.exit_code == 2
    assert "there is no warehouse at" in result.output


def test_the_api_token_is_never_printed_logged_or_written(
    built_warehouse: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The shared build's run had the dbt step: its logs and artefacts sit under data/ too.
    built = built_warehouse
    token, sim, env = built.token, built.sim, built.env
    basic = base64.b64encode(f"leak-check@example.com:{token}".encode())
    caplog.set_level("DEBUG")
    # Later runs go on in a copy: the shared warehouse stays as built for the other readers.
    shutil.copytree(built.warehouse.parent, tmp_path / "data")
    warehouse = tmp_path / "data" / built.warehouse.name
    sim.advance(10)
    # A failing run too (an export that outlives its deadline): errors must not leak either.
    sim.set_faults({"export_queued_polls": 5})
    failing = {**env, "SOURCES__MARKETPLACE__EXPORT_DEADLINE_SECONDS": "0"}
    outputs = [cli(["run", "--warehouse", str(warehouse), "--no-transform"], failing)]
    sim.set_faults("none")
    outputs.append(cli(["status", "--warehouse", str(warehouse)], env))
    assert built.exit_code == 0, built.output
    assert outputs[0].exit_code != 0
    assert outputs[1].exit_code == 0
    for output in (built.output, *(result.output for result in outputs)):
        assert token not in output
    assert token not in built.log_text
    assert token not in caplog.text
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert files
    for path in files:
        content = path.read_bytes()
        assert token.encode() not in content, path
        assert basic not in content, path

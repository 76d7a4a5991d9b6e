"""Issue 8: the bulk backfill (export files -> Arrow tables) and the per-record path write the
same raw tables: same columns and types, same rows, same scd2 row hashes, so an incremental run
after either backfill retires and keeps exactly the same versions (licenses, transactions), or
replaces exactly the same rows (marketing attribution, metric events)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dlt.common.schema.utils import bump_version_if_modified

from pipelines.warehouse import RAW_DATASET, pipelines_dir
from tests.helpers import cli, simulator_env

pytestmark = pytest.mark.integration

TABLES = ("licenses", "transactions", "transactions__purchase_details__discounts")
# Keyed by a hash of the row, whose `_dlt_id` dlt makes random on either path.
OTHER_TABLES = ("marketing_attribution", "metric_events")
# Different per run by nature: the load id and the moment a version became valid.
PER_RUN = ("_dlt_load_id", "_dlt_valid_from", "_dlt_valid_to")
SALT = "bulk-test-salt-0123456789abcdef"


def columns(warehouse: Path, table: str) -> dict[str, str]:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        rows = connection.execute(
            "select column_name, data_type || is_nullable from information_schema.columns "
            "where table_schema = ? and table_name = ?",
            [RAW_DATASET, table],
        ).fetchall()
    return dict(rows)


def differences(bulk: Path, per_record: Path, table: str) -> tuple[int, int, int]:
    """(rows, rows only in the bulk warehouse, rows only in the per-record one); the validity
    columns are compared as "still current or not"."""
    per_run = {*PER_RUN, "_dlt_id"} if table in OTHER_TABLES else set(PER_RUN)
    names = sorted(set(columns(bulk, table)) - per_run)
    selected = ", ".join(f'"{name}"' for name in names)
    if table in ("licenses", "transactions"):
        selected += ", _dlt_valid_to is null as current"
    with duckdb.connect() as connection:
        connection.execute(f"attach '{bulk}' as bulk (read_only)")
        connection.execute(f"attach '{per_record}' as rec (read_only)")

        def count(sql: str) -> int:
            return int(connection.execute(sql).fetchall()[0][0])

        a = f"select {selected} from bulk.{RAW_DATASET}.{table}"
        b = f"select {selected} from rec.{RAW_DATASET}.{table}"
        return (
            count(f"select count(*) from ({a})"),
            count(f"select count(*) from ({a} except all {b})"),
            count(f"select count(*) from ({b} except all {a})"),
        )


def run(env: dict[str, str], warehouse: Path, resources: str = "licenses,transactions") -> None:
    result = cli(
        ["run", "--no-transform", "--resources", resources, "--warehouse", str(warehouse)],
        env=env,
    )
    assert result.exit_code == 0, result.output


def backfilled_both_ways(
    env: dict[str, str], tmp_path: Path, resources: str, tables: Sequence[str]
) -> tuple[Path, Path]:
    """Two warehouses backfilled from the same simulator, in bulk and record by record, whose
    `tables` have the same columns and the same rows (none empty)."""
    bulk, per_record = tmp_path / "bulk" / "w.duckdb", tmp_path / "rec" / "w.duckdb"
    run(env, bulk, resources)
    run({**env, "SOURCES__MARKETPLACE__BULK": "false"}, per_record, resources)
    for table in tables:
        assert columns(bulk, table) == columns(per_record, table), table
        rows, only_bulk, only_per_record = differences(bulk, per_record, table)
        assert rows > 0, table
        assert (only_bulk, only_per_record) == (0, 0), table
    return bulk, per_record


@pytest.mark.parametrize("pii", ["keep", "hash"])
def test_bulk_and_per_record_backfills_write_the_same_raw_tables(
    make_simulator: Any, tmp_path: Path, pii: str
) -> None:
    sim = make_simulator(size="small")
    env = simulator_env(sim, pii=pii, pii_salt=SALT)
    bulk, per_record = backfilled_both_ways(env, tmp_path, "licenses,transactions", TABLES)

    # Records rewritten meanwhile: one incremental run (always record by record) on each
    # must retire and add the same versions, which it can only do if the row hashes agree.
    sim.advance(30)
    run(env, bulk)
    run(env, per_record)
    for table in TABLES:
        _, only_bulk, only_per_record = differences(bulk, per_record, table)
        assert (only_bulk, only_per_record) == (0, 0), table
    with duckdb.connect(str(bulk), read_only=True) as connection:
        [(retired,)] = connection.execute(
            f"select count(*) from {RAW_DATASET}.licenses where _dlt_valid_to is not null"
        ).fetchall()
    # The comparison above is only worth something if the incremental run changed history.
    assert retired > 0


@pytest.mark.parametrize("pii", ["keep", "hash"])
def test_bulk_and_per_record_backfills_of_attribution_and_metric_events_agree(
    make_simulator: Any, tmp_path: Path, pii: str
) -> None:
    sim = make_simulator(size="small")
    env = simulator_env(sim, pii=pii, pii_salt=SALT)
    resources = ",".join(OTHER_TABLES)
    bulk, per_record = backfilled_both_ways(env, tmp_path, resources, OTHER_TABLES)
    for table in OTHER_TABLES:
        for warehouse in (bulk, per_record):
            # Random as dlt makes it for these tables, but there and unique: nothing joins on it.
            rows, present, distinct = row_ids(warehouse, table)
            assert rows == present == distinct, (warehouse, table)

    # An incremental run (always record by record) replaces the re-read rows the same way.
    backfilled = {table: newest_load(bulk, table) for table in OTHER_TABLES}
    sim.advance(30)
    run(env, bulk, resources)
    run(env, per_record, resources)
    for table in OTHER_TABLES:
        _, only_bulk, only_per_record = differences(bulk, per_record, table)
        assert (only_bulk, only_per_record) == (0, 0), table
        # Worth something only if the incremental run loaded rows into the table.
        assert newest_load(bulk, table) > backfilled[table], table


def row_ids(warehouse: Path, table: str) -> tuple[int, int, int]:
    """(rows, rows with a `_dlt_id`, distinct `_dlt_id`s) of a table."""
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        [(rows, present, distinct)] = connection.execute(
            f"select count(*), count(_dlt_id), count(distinct _dlt_id) from {RAW_DATASET}.{table}"
        ).fetchall()
    return rows, present, distinct


def newest_load(warehouse: Path, table: str) -> str:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        [(load_id,)] = connection.execute(
            f"select max(_dlt_load_id) from {RAW_DATASET}.{table}"
        ).fetchall()
    return str(load_id)


def test_a_line_without_a_license_loads_where_an_older_bulk_backfill_made_its_key_required(
    make_simulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bulk backfills before the fix declared `transactions.license_key` not null, in dlt's
    schema and in the tables; a line whose license ids are both missing then failed every
    later load. The next run relaxes both, and such a line loads."""
    from pipelines.marketplace import extraction

    sim = make_simulator(size="small")
    env = simulator_env(sim)
    warehouse = tmp_path / "w.duckdb"
    run(env, warehouse)
    # As such a backfill left the warehouse: the column required in the tables and the schema.
    with duckdb.connect(str(warehouse)) as connection:
        for dataset in (RAW_DATASET, f"{RAW_DATASET}_staging"):
            connection.execute(
                f"alter table {dataset}.transactions alter column license_key set not null"
            )
    [schema_file] = pipelines_dir(warehouse).glob("*/schemas/marketplace.schema.json")
    stored = json.loads(schema_file.read_text())
    stored["tables"]["transactions"]["columns"]["license_key"]["nullable"] = False
    bump_version_if_modified(stored)  # as dlt saves a changed schema, or it refuses the file
    schema_file.write_text(json.dumps(stored))

    # Every other line of the next run comes without a license id.
    keyed = extraction.transaction_license_key
    calls = itertools.count()
    monkeypatch.setattr(
        extraction,
        "transaction_license_key",
        lambda line: None if next(calls) % 2 == 0 else keyed(line),
    )
    sim.advance(30)
    run(env, warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        [(without_license,)] = connection.execute(
            f"select count(*) from {RAW_DATASET}.transactions where license_key is null"
        ).fetchall()
        nullable = connection.execute(
            "select table_schema, is_nullable from information_schema.columns "
            "where table_name = 'transactions' and column_name = 'license_key' order by 1"
        ).fetchall()
    assert without_license > 0
    assert nullable == [(RAW_DATASET, "YES"), (f"{RAW_DATASET}_staging", "YES")]

"""`mpac status`: last loads, rows per table, saved cursors and pending exports, read-only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.destinations import Destination, open_reader, resolve
from pipelines.marketplace.exports import LEDGER_FILE, ExportLedger
from pipelines.warehouse import (
    PIPELINE_NAME,
    RAW_DATASET,
    pipelines_dir,
    unavailable,
)

# The tables loaded as scd2: their current versions are the rows with no _dlt_valid_to.
SCD2_TABLES = ("licenses", "transactions")


@dataclass
class Status:
    """What `mpac status` shows."""

    warehouse: Path
    loads: list[dict[str, Any]]
    tables: list[dict[str, Any]]
    cursors: dict[str, Any]
    pending_exports: list[dict[str, Any]]


def read_status(warehouse: Path, destination: Destination | None = None) -> Status:
    """Last loads, rows per table, cursors and unfinished exports, read without writing
    (`destination`: default the configured one)."""
    destination = destination or resolve()
    warehouse = destination.local_path(warehouse)
    if destination.is_duckdb and not warehouse.exists():
        raise unavailable(warehouse)
    working = pipelines_dir(warehouse) / PIPELINE_NAME
    ledger = ExportLedger(working / LEDGER_FILE)
    pending = [
        {"what": entry.get("what"), "id": entry.get("id"), "status": entry.get("status")}
        for entry in ledger.entries.values()
    ]
    connection = open_reader(warehouse, destination)
    try:
        names = [
            row[0]
            for row in connection.execute(
                "select table_name from information_schema.tables where table_schema = ? "
                "order by table_name",
                [RAW_DATASET],
            ).fetchall()
        ]
        loads: list[dict[str, Any]] = []
        if "_dlt_loads" in names:
            loads = [
                {"load_id": row[0], "status": row[1], "inserted_at": row[2]}
                for row in connection.execute(
                    f"select load_id, status, inserted_at from {RAW_DATASET}._dlt_loads "
                    "order by inserted_at desc limit 5"
                ).fetchall()
            ]
        cursors = _landed_cursors(connection) if "_dlt_pipeline_state" in names else {}
        tables = []
        for name in names:
            if name.startswith("_dlt"):
                continue
            total = connection.execute(f'select count(*) from {RAW_DATASET}."{name}"').fetchone()
            current = None
            if name in SCD2_TABLES:
                current = connection.execute(
                    f'select count(*) from {RAW_DATASET}."{name}" where _dlt_valid_to is null'
                ).fetchone()
            tables.append(
                {
                    "table": name,
                    "rows": total[0] if total else 0,
                    "current": current[0] if current else None,
                }
            )
    finally:
        connection.close()
    return Status(warehouse, loads, tables, cursors, pending)


def _landed_cursors(connection: Any) -> dict[str, Any]:
    """The cursors of the state the last landed load wrote into the warehouse.

    Not dlt's local state.json: dlt moves that at extract, before anything landed, and the
    package of a failed load (which carries the rows up to that cursor) is loaded again first.
    """
    from dlt.common.versioned_state import decompress_state

    row = connection.execute(
        f"select state from {RAW_DATASET}._dlt_pipeline_state where pipeline_name = ? "
        "order by version desc limit 1",
        [PIPELINE_NAME],
    ).fetchone()
    if row is None:
        return {}
    state = decompress_state(row[0])
    resources = state.get("sources", {}).get("marketplace", {}).get("resources", {})
    return {name: value.get("cursor") for name, value in resources.items()}

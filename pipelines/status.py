"""`mpac status`: last loads, rows per table, saved cursors and pending exports, read-only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.config import DEFAULT_VENDOR
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
    # One dlt pipeline per vendor (config.SourceConfig.pipeline_name), each its own ledger.
    folders = sorted(pipelines_dir(warehouse).glob(f"{PIPELINE_NAME}*"))
    pending = [
        {"what": entry.get("what"), "id": entry.get("id"), "status": entry.get("status")}
        for working in folders
        for entry in ExportLedger(working / LEDGER_FILE).entries.values()
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
    """The cursors of the state the last landed load of each vendor wrote into the warehouse
    (named `<vendor>: <resource>` when there are several vendors).

    Not dlt's local state.json: dlt moves that at extract, before anything landed, and the
    package of a failed load (which carries the rows up to that cursor) is loaded again first.
    """
    from dlt.common.versioned_state import decompress_state

    # Portable SQL (DuckDB and Postgres): the newest version per pipeline, no qualify.
    table = f"{RAW_DATASET}._dlt_pipeline_state"
    rows = connection.execute(
        f"select pipeline_name, state from {table} as saved "
        "where (pipeline_name = ? or starts_with(pipeline_name, ?)) and version = ("
        f"select max(version) from {table} as other "
        "where other.pipeline_name = saved.pipeline_name) "
        "order by pipeline_name",
        [PIPELINE_NAME, f"{PIPELINE_NAME}__"],
    ).fetchall()
    cursors: dict[str, Any] = {}
    for pipeline_name, compressed in rows:
        state = decompress_state(compressed)
        resources = state.get("sources", {}).get("marketplace", {}).get("resources", {})
        vendor = (
            DEFAULT_VENDOR
            if pipeline_name == PIPELINE_NAME
            else str(pipeline_name).removeprefix(f"{PIPELINE_NAME}__")
        )
        for name, value in resources.items():
            key = name if len(rows) == 1 else f"{vendor}: {name}"
            cursors[key] = value.get("cursor")
    return cursors

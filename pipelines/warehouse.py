"""One source of truth for where the warehouse and the pipeline state live."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_WAREHOUSE = Path("data") / "marketplace.duckdb"
WAREHOUSE_ENV = "MPAC_WAREHOUSE"
RAW_DATASET = "raw_marketplace"
PIPELINE_NAME = "marketplace"


def warehouse_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The DuckDB file shared by dlt and dbt: --warehouse, else $MPAC_WAREHOUSE, else data/."""
    chosen = explicit or os.environ.get(WAREHOUSE_ENV) or DEFAULT_WAREHOUSE
    return Path(chosen).expanduser().resolve()


def pipelines_dir(warehouse: Path) -> Path:
    """dlt's working folder sits beside the warehouse, so state travels with the data."""
    return warehouse.parent / f".{warehouse.stem}.dlt"

"""`mpac docs`: dbt's documentation site of a built warehouse, as one static HTML file."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipelines.errors import UserError
from pipelines.transform import (
    _release_warehouse,
    dbt_arguments,
    dbt_artifacts_dir,
    dbt_invocation,
)
from pipelines.warehouse import WAREHOUSE_ENV, open_read_only


def docs_path(warehouse: Path) -> Path:
    """The docs sit beside the warehouse: data/demo.duckdb -> data/demo.docs.html."""
    return warehouse.with_name(f"{warehouse.stem}.docs.html")


def build_docs(warehouse: Path) -> tuple[Path, int]:
    """`dbt docs generate --static` over `warehouse`; returns the page and its catalog size.

    The static page embeds the manifest and the catalog, so it opens from the file system in a
    browser (dbt's index.html fetches them and shows nothing outside a web server).
    """
    from dbt.cli.main import dbtRunner

    warehouse = Path(warehouse).expanduser().resolve()
    # The one sentence for a missing or busy warehouse (and no empty file left behind).
    with open_read_only(warehouse) as connection:
        (marts,) = connection.execute(
            "select count(*) from information_schema.tables where table_schema = 'marts'"
        ).fetchone() or (0,)
    if not marts:
        raise UserError(
            f"{warehouse} has no marts yet: run `mpac transform` (or `mpac run`) first."
        )
    artifacts = dbt_artifacts_dir(warehouse)
    args = dbt_arguments(["docs", "generate", "--static"], warehouse)
    with dbt_invocation({WAREHOUSE_ENV: str(warehouse)}):
        try:
            outcome = dbtRunner().invoke(args)
        finally:
            _release_warehouse()
    if outcome.exception is not None or not outcome.success:
        reason = str(outcome.exception or "see the dbt log").strip().splitlines()[0]
        raise UserError(f"dbt docs generate failed: {reason}")
    nodes = len(getattr(outcome.result, "nodes", None) or {})
    if nodes == 0:
        raise UserError(f"dbt found no tables in {warehouse}: nothing to document.")
    target = docs_path(warehouse)
    shutil.copyfile(artifacts / "target" / "static_index.html", target)
    return target, nodes

"""The warehouse connection dlt loads through takes the project's DuckDB settings."""

import pytest

from pipelines.runner import _pipeline

pytestmark = pytest.mark.integration


def test_the_warehouse_connection_is_memory_capped_by_the_project_config(tmp_path):
    # .dlt/config.toml caps DuckDB during loads; env vars (dlt's usual override) can raise it.
    pipeline = _pipeline(tmp_path / "w.duckdb")
    pipeline.run([{"id": 1}], table_name="probe")
    with pipeline.sql_client() as client:
        ((limit,),) = client.execute_sql("select current_setting('memory_limit')")
    assert limit == "953.6 MiB"  # DuckDB's rendering of 1GB (10^9 bytes)

"""Where the warehouse is and how it is opened: the memory cap for loads, one sentence when it
cannot be read."""

import re

import duckdb
import pytest

from pipelines.destinations import resolve
from pipelines.errors import UserError
from pipelines.runner import _pipeline
from pipelines.warehouse import _FETCHED_ONLY, READER_RELATIONS, open_read_only
from tests.helpers import ROOT, dlt_settings_from, write_lock_held


@pytest.mark.integration
def test_the_warehouse_connection_is_memory_capped_by_the_project_config(tmp_path):
    # .dlt/config.toml caps DuckDB during loads; env vars (dlt's usual override) can raise it.
    # dlt reads .dlt/ of the folder its run context was made in: make it the project's, whatever
    # folder an earlier test in this worker left it in.
    with dlt_settings_from(ROOT):
        pipeline = _pipeline(tmp_path / "w.duckdb", "marketplace", resolve("duckdb"))
        pipeline.run([{"id": 1}], table_name="probe")
        with pipeline.sql_client() as client:
            ((limit,),) = client.execute_sql("select current_setting('memory_limit')")
    assert limit == "244.1 MiB"  # DuckDB's rendering of 256MB (256 x 10^6 bytes)


def test_a_missing_and_a_locked_warehouse_get_the_same_one_sentence(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    with pytest.raises(UserError) as missing:
        open_read_only(warehouse)
    duckdb.connect(str(warehouse)).close()
    with write_lock_held(warehouse), pytest.raises(UserError) as locked:
        open_read_only(warehouse)
    assert str(missing.value) == str(locked.value)
    assert str(missing.value).count(". ") == 0
    assert str(missing.value).endswith(".")
    with open_read_only(warehouse) as connection:
        assert connection.execute("select 1").fetchone() == (1,)


def test_each_reader_reads_only_the_relations_open_marts_fetches_for_it_on_postgres():
    # A relation a reader names but READER_RELATIONS does not list would be missing on Postgres.
    def named(module: str) -> set[str]:
        source = (ROOT / "pipelines" / f"{module}.py").read_text()
        return set(re.findall(r"\b(?:raw_marketplace|staging|intermediate|marts)\.[a-z_]+", source))

    for reader, listed in READER_RELATIONS.items():
        # The report and the dashboard find as_of and incomplete months with completeness.py.
        assert named(reader) | named("completeness") == set(listed), reader


def test_a_relation_fetched_in_part_is_read_only_in_that_part():
    # The server keeps only the rows the reader's SQL keeps: every place the reader reads the
    # relation must filter it the same way, or the reader would lose rows on Postgres.
    for (reader, relation), only in _FETCHED_ONLY.items():
        source = (ROOT / "pipelines" / f"{reader}.py").read_text()
        reads = re.findall(
            rf"\b(?:from|join)\s+{re.escape(relation)}\b(?: as \w+)?(?: where ([^\n]*))?", source
        )
        assert reads, (reader, relation)
        assert all(condition.strip() == only for condition in reads), (reader, relation, reads)

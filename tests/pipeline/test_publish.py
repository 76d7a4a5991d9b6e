"""The readers' copy: a whole, atomically swapped copy of the warehouse for BI tools."""

from pathlib import Path

import duckdb
import pytest

from pipelines.errors import UserError
from pipelines.warehouse import PUBLISH_ENV, publish_path, publish_reader_copy
from tests.helpers import query, write_lock_held


def make_warehouse(path: Path, mrr: float) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists marts")
        con.execute("create or replace table marts.fct_mrr as select ? as mrr", [mrr])
        con.execute(
            "create or replace view marts.mrr_view as select mrr * 12 as arr from marts.fct_mrr"
        )


def test_the_copy_has_every_schema_table_and_view(tmp_path):
    warehouse, target = tmp_path / "w.duckdb", tmp_path / "bi" / "w.duckdb"
    make_warehouse(warehouse, 10.0)
    publish_reader_copy(warehouse, target)
    assert query(target, "select mrr from marts.fct_mrr") == [(10.0,)]
    assert query(target, "select arr from marts.mrr_view") == [(120.0,)]
    assert not list(target.parent.glob(".*partial*")), "no partial file left behind"


def test_a_reader_holding_the_old_copy_does_not_block_the_next_publish(tmp_path):
    warehouse, target = tmp_path / "w.duckdb", tmp_path / "bi.duckdb"
    make_warehouse(warehouse, 10.0)
    publish_reader_copy(warehouse, target)
    with duckdb.connect(str(target), read_only=True) as reader:
        make_warehouse(warehouse, 20.0)
        publish_reader_copy(warehouse, target)
        # The open reader keeps its consistent old snapshot ...
        assert reader.execute("select mrr from marts.fct_mrr").fetchall() == [(10.0,)]
    # ... and the next reader sees the new run whole.
    assert query(target, "select mrr from marts.fct_mrr") == [(20.0,)]


def test_a_warehouse_being_written_is_a_clear_error_and_keeps_the_old_copy(tmp_path):
    warehouse, target = tmp_path / "w.duckdb", tmp_path / "bi.duckdb"
    make_warehouse(warehouse, 10.0)
    publish_reader_copy(warehouse, target)
    with write_lock_held(warehouse), pytest.raises(UserError, match="another process is writing"):
        publish_reader_copy(warehouse, target)
    assert query(target, "select mrr from marts.fct_mrr") == [(10.0,)]
    assert not list(tmp_path.glob(".*partial*"))


def test_publishing_onto_the_warehouse_itself_is_refused(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    make_warehouse(warehouse, 1.0)
    with pytest.raises(UserError, match="another file"):
        publish_reader_copy(warehouse, warehouse)


def test_publish_path_comes_from_the_option_else_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(PUBLISH_ENV, raising=False)
    assert publish_path(None) is None
    monkeypatch.setenv(PUBLISH_ENV, str(tmp_path / "env.duckdb"))
    assert publish_path(None) == tmp_path / "env.duckdb"
    assert publish_path(str(tmp_path / "opt.duckdb")) == tmp_path / "opt.duckdb"

"""bulk.py: records to Arrow tables typed and named as dlt's normalizer would, or left as
records where dlt must decide (variant types, nested tables)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
from dlt.common.normalizers.json.helpers import get_row_hash

from pipelines.marketplace import bulk

TYPES = bulk.hinted_types(["last_updated"], ["purchase_details__purchase_price"])


def items(records: list[dict]) -> list[pa.Table | list[dict]]:
    return list(bulk.batches(records, "load-1", TYPES))


def test_records_become_one_table_with_dlt_names_types_and_row_hash() -> None:
    records = [
        {"lastUpdated": "2024-01-31", "purchaseDetails": {"purchasePrice": 100}, "gone": None},
        {"lastUpdated": "2024-02-01", "purchaseDetails": {"discounts": []}, "status": "x"},
    ]
    [table] = items(records)
    assert isinstance(table, pa.Table)
    # No column for a field only ever null, nor for an empty list (dlt makes none either).
    assert set(table.column_names) == {
        "last_updated",
        "purchase_details__purchase_price",
        "status",
        "_dlt_load_id",
        "_dlt_id",
    }
    assert table.schema.field("last_updated").type == pa.date32()
    assert table.column("purchase_details__purchase_price").to_pylist() == [100.0, None]
    assert table.column("_dlt_id").to_pylist() == [get_row_hash(r) for r in records]
    assert table.column("_dlt_load_id").to_pylist() == ["load-1", "load-1"]


def test_a_record_with_a_nested_list_stays_a_record_for_dlt() -> None:
    plain = {"lastUpdated": "2024-01-31"}
    nested = {"lastUpdated": "2024-01-31", "purchaseDetails": {"discounts": [{"amount": 1.0}]}}
    table, records = items([plain, nested])
    assert isinstance(table, pa.Table)
    assert table.num_rows == 1
    assert records == [nested]


def test_values_dlt_would_split_into_variants_go_to_dlt_as_records() -> None:
    for records in (
        [{"tier": "10 Users"}, {"tier": 10}],  # text and a number in one field
        [{"lastUpdated": "soon"}],  # a date hint on text that is not a date
        [{"count": 1}, {"count": 1.5}],  # ints and floats: Arrow would make one double
    ):
        assert items(records) == [records]


def test_file_records_reads_an_export_array_in_order(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    rows = [{"id": str(n), "name": 'Müller "&" Søn'} for n in range(2500)]
    path.write_text(json.dumps(rows))
    assert list(bulk.file_records([path])) == rows

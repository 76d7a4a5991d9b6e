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


def test_a_backfill_read_whose_sync_export_fails_is_paged_with_the_same_records() -> None:
    """The bulk path's metric events (bodies on disk) equal the per-record path's (streamed),
    and a metric whose export keeps failing is paged on both."""
    import datetime as dt

    import httpx

    from pipelines.marketplace.extraction import (
        Extraction,
        _files,
        _metric_events,
        metric_event_reads,
        metric_event_records,
    )
    from tests.marketplace.test_client import make_client, page

    event = {"addonKey": "app", "eventDate": "2024-03-05", "licenseDetails": {"licenseId": "L1"}}
    paged: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        metric = request.url.path.split("/metrics/")[1].split("/")[0]
        if request.url.path.endswith("/export"):
            if metric == "churn":
                return httpx.Response(500)
            # The same event twice (a repeat within a body is dropped), then a second one.
            return httpx.Response(200, json=[event, event, {**event, "eventDate": "2024-04-01"}])
        paged.append(metric)
        return page("events", [event])

    with make_client(handler, attempts=1) as client:
        run = Extraction(client, None, dt.date(2024, 1, 1), 3, True, dt.date(2024, 5, 1))  # type: ignore[arg-type]
        per_record = list(metric_event_records(run, None))
        reads = metric_event_reads(run, None)
        in_bulk = list(_metric_events(run, reads, _files(run, reads)))
    assert in_bulk == per_record
    assert paged == ["churn", "churn"]
    assert [(e["metric"], e["period_start"]) for e in in_bulk] == [
        ("churn", "2024-03-01"),
        ("renewal", "2024-03-01"),
        ("renewal", "2024-04-01"),
        ("conversion", "2024-03-01"),
        ("conversion", "2024-04-01"),
    ]


def test_a_body_in_the_spec_s_object_form_gives_the_records_of_the_array_form(
    tmp_path: Path,
) -> None:
    from pipelines.marketplace.extraction import _body_records

    rows = [{"eventTimestamp": "2024-01-01T00:00:00Z", "n": n, "x": 1.5} for n in range(3)]
    array, wrapped = tmp_path / "array.json", tmp_path / "wrapped.json"
    array.write_text(json.dumps(rows))
    wrapped.write_text(json.dumps({"marketingAttribution": rows}))
    assert list(_body_records(array)) == list(_body_records(wrapped)) == rows

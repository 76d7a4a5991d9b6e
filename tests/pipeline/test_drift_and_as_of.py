"""Issue 10: schema drift stays handled (a new field, a number as a string, a null nested object,
an empty page with a next link: nothing lost), and a lastUpdated in the future moves neither
as_of_date nor a cursor past the load day by the API's own clock."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from pipelines import runner
from pipelines.marketplace.helpers import license_key, transaction_key
from pipelines.simulator.vendor.synthetic import SyntheticVendor
from pipelines.transform import run_transform
from pipelines.warehouse import RAW_DATASET
from tests.helpers import configure, query
from tests.pipeline.test_runner import (
    FAST_RETRY,
    assert_matches_ground_truth,
    cursors,
    truth,
)

pytestmark = pytest.mark.integration

Change = Callable[[dict[str, Any]], dict[str, Any]]


class Quirky:
    """The synthetic vendor with a change applied to each record of some kinds, the way the
    live API drifts; everything else is the wrapped vendor's."""

    def __init__(self, changes: Mapping[str, Change], inner: Any = None) -> None:
        self._inner = inner or SyntheticVendor(seed=42, size="tiny")
        self._changes = changes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _changed(self, kind: str, records: Iterable[Mapping[str, Any]]) -> Iterator[dict]:
        change = self._changes.get(kind)
        for number, record in enumerate(records):
            copied = copy.deepcopy(dict(record))
            yield change({**copied, "_n": number}) if change else copied

    def licenses(self, as_of: Any = None, with_data_insights: bool = True) -> Iterator[dict]:
        return self._changed("licenses", self._inner.licenses(as_of, with_data_insights))

    def transactions(self, as_of: Any = None) -> Iterator[dict]:
        return self._changed("transactions", self._inner.transactions(as_of))

    def feedback(self, as_of: Any = None) -> Iterator[dict]:
        return self._changed("feedback", self._inner.feedback(as_of))

    def marketing_attribution(self, as_of: Any = None) -> Iterator[dict]:
        return self._changed("marketing_attribution", self._inner.marketing_attribution(as_of))


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    record.pop("_n", None)
    return record


def new_fields(record: dict[str, Any]) -> dict[str, Any]:
    record = _plain(record)
    record["brandNewField"] = "added by the API"
    if isinstance(record.get("contactDetails"), dict):
        record["contactDetails"]["newNestedField"] = 7
    return record


def amount_as_string(record: dict[str, Any]) -> dict[str, Any]:
    number = record["_n"]
    record = _plain(record)
    details = record["purchaseDetails"]
    if number % 2 == 0:
        details["vendorAmount"] = str(details["vendorAmount"])
        details["purchasePrice"] = str(details["purchasePrice"])
    return record


def null_nested(record: dict[str, Any]) -> dict[str, Any]:
    record = _plain(record)
    record["partnerDetails"] = None
    for holder in ("contactDetails", "customerDetails"):
        if isinstance(record.get(holder), dict):
            record[holder]["billingContact"] = None
    return record


def run_twice(sim: Any, warehouse: Path) -> None:
    """A backfill, 20 simulated days, then an incremental run (pages, not exports)."""
    runner.run(warehouse, transform=False, retry=FAST_RETRY)
    assert_matches_ground_truth(warehouse, sim)
    sim.advance(20)
    runner.run(warehouse, transform=False, retry=FAST_RETRY)
    assert_matches_ground_truth(warehouse, sim)


def test_a_new_unknown_field_is_loaded_and_nothing_is_lost(
    make_simulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sim = make_simulator(vendor=Quirky({"licenses": new_fields, "transactions": new_fields}))
    configure(monkeypatch, sim)
    warehouse = tmp_path / "w.duckdb"
    run_twice(sim, warehouse)
    [(added, nested)] = query(
        warehouse,
        "select count(brand_new_field), count(contact_details__new_nested_field) "
        f"from {RAW_DATASET}.licenses where _dlt_valid_to is null",
    )
    assert added == len(truth(sim, "licenses"))
    assert nested > 0


def test_numbers_sent_as_strings_load_as_numbers(
    make_simulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sim = make_simulator(vendor=Quirky({"transactions": amount_as_string}))
    configure(monkeypatch, sim)
    warehouse = tmp_path / "w.duckdb"
    runner.run(warehouse, transform=False, retry=FAST_RETRY)
    expected = {
        transaction_key(r): round(float(r["purchaseDetails"]["vendorAmount"]) * 100)
        for r in truth(sim, "transactions")
    }
    rows = query(
        warehouse,
        "select transaction_id || '|' || transaction_line_item_id, "
        "purchase_details__vendor_amount, typeof(purchase_details__vendor_amount) "
        f"from {RAW_DATASET}.transactions where _dlt_valid_to is null",
    )
    assert {key: round(amount * 100) for key, amount, _ in rows} == expected
    assert {kind for _, _, kind in rows} == {"DOUBLE"}
    columns = query(
        warehouse,
        "select column_name from information_schema.columns "
        f"where table_schema = '{RAW_DATASET}' and table_name = 'transactions'",
    )
    assert not [c for (c,) in columns if "__v_" in c], "a variant column split the amounts"


def test_null_for_an_optional_nested_object_loses_nothing(
    make_simulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sim = make_simulator(vendor=Quirky({"licenses": null_nested, "transactions": null_nested}))
    configure(monkeypatch, sim)
    run_twice(sim, tmp_path / "w.duckdb")


def test_an_empty_page_with_a_next_link_loses_nothing(
    make_simulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sim = make_simulator(size="tiny")
    paged = sim.state.page
    empty_pages: list[int] = []

    def with_empty_pages(kind: str, *args: Any) -> tuple[list[Any], int]:
        # The API claims two pages more than it has: after the last real page comes an empty
        # one that still links to a next (empty) page.
        page, total = paged(kind, *args)
        limit = args[-1]
        if not page:
            empty_pages.append(1)
        return page, total + 2 * limit

    monkeypatch.setattr(sim.state, "page", with_empty_pages)
    configure(monkeypatch, sim)
    run_twice(sim, tmp_path / "w.duckdb")
    assert empty_pages, "no empty page was served"


# ---- the as_of guard ----------------------------------------------------------------------------

FUTURE = "2031-01-01"


def one_future_license(record: dict[str, Any]) -> dict[str, Any]:
    number = record["_n"]
    record = _plain(record)
    if number == 0:
        record["lastUpdated"] = FUTURE
    return record


def test_a_future_last_updated_leaves_as_of_and_the_cursor_at_the_load_day(
    make_simulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sim = make_simulator(vendor=Quirky({"licenses": one_future_license}))
    configure(monkeypatch, sim)
    warehouse = tmp_path / "marketplace.duckdb"
    runner.run(warehouse, transform=False, retry=FAST_RETRY)
    load_day = sim.today
    assert query(warehouse, f"select load_day from {RAW_DATASET}.load_days") == [(load_day,)]
    assert cursors(warehouse)["licenses"] <= load_day.isoformat()

    summary = run_transform(warehouse)
    [(as_of,)] = query(warehouse, "select as_of_date from intermediate.int_as_of_date")
    dates = [
        dt.date.fromisoformat(r["lastUpdated"])
        for kind in ("licenses", "transactions")
        for r in truth(sim, kind)
        if r["lastUpdated"] != FUTURE
    ]
    assert as_of == min(max(dates), load_day)
    assert "assert_no_last_updated_after_the_load_day" in summary.warned
    future = [r for r in truth(sim, "licenses") if r["lastUpdated"] == FUTURE]
    [(listed,)] = query(
        warehouse,
        f"select count(*) from {RAW_DATASET}.licenses where cast(last_updated as date) > "
        f"'{load_day}' and license_key = '{license_key(future[0])}'",
    )
    assert listed == 1  # loaded as sent: the guard moves no data, only the as_of default

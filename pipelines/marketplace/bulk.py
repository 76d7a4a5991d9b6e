"""The bulk backfill path: export files on disk to Arrow tables shaped as dlt's normalizer
would shape the same records, so dlt skips its normalizer (and its gzip, JSON-lines and
per-row typing) for them.

What the per-record path does in dlt, done here per batch and column:
- records come from DuckDB's JSON reader over the downloaded file (a chunked scan, never
  the whole array in memory), one `orjson.loads` each; the rules on records (identity,
  dedup, PII policy, nested-list order) are the very functions the per-record path calls;
- columns are the record flattened with dlt's naming (`purchaseDetails.saleDate` ->
  `purchase_details__sale_date`); a column whose values are all null in a batch is left
  out, as dlt leaves out a field it has only seen as null;
- `_dlt_id` is dlt's own scd2 row hash (`get_row_hash` of the record), so a row written by
  either path lands on the same version; a record with a nested list goes to dlt as a
  record (see Tables), so its child rows are dlt's own;
- `_dlt_load_id` is the load id of the package being extracted.

A batch whose values do not fit one Arrow type per column (a field that is text in one record
and a number in another, a date that is not a date) goes to dlt as records instead, which
then makes the variant columns it always makes: the bulk path never decides a type dlt would
not have decided.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from dlt.common.normalizers.json.helpers import get_row_hash
from dlt.common.normalizers.naming.snake_case import NamingConvention

Record = dict[str, Any]

# Records per Arrow batch: large enough that per-batch costs vanish, small enough that a batch
# of a large vendor's licenses (about 2 kB each as Python objects) stays well under 100 MB.
BATCH_RECORDS = 20_000
# DuckDB only splits the file into records here: a small cap keeps that scan lean.
READER_MEMORY = "256MB"

_NAMING = NamingConvention()
# (parent path..., key) -> column name, as dlt's normalizer names them.
_names: dict[tuple[str, ...], str] = {}


def _column(path: tuple[str, ...]) -> str:
    name = _names.get(path)
    if name is None:
        name = _NAMING.shorten_fragments(*(_NAMING.normalize_identifier(p) for p in path))
        _names[path] = name
    return name


def file_records(files: Sequence[Path]) -> Iterator[Record]:
    """Every record of JSON-array export files, in file order, parsed one at a time."""
    import duckdb

    with duckdb.connect() as connection:
        connection.execute(f"set memory_limit = '{READER_MEMORY}'")
        connection.execute("set preserve_insertion_order = true")
        for path in files:
            reader = connection.sql(
                "select json from read_json_objects($file, format = 'array')",
                params={"file": str(path)},
            ).to_arrow_reader(BATCH_RECORDS)
            for batch in reader:
                for text in batch.column(0).to_pylist():
                    yield orjson.loads(text)


class Tables:
    """Batches of one table's rows, flattened as dlt flattens them, as Arrow tables.

    A record that holds a non-empty list (a transaction's discounts) is kept as a record:
    dlt writes nested tables only from its own normalizer (it refuses nested tables from a
    resource), so those records take the per-record path, a minority of transactions.
    """

    def __init__(self, load_id: str, types: Mapping[str, pa.DataType]) -> None:
        self.load_id = load_id
        self.types = types
        self.rows: list[Record] = []
        self.records: list[Record] = []

    def __len__(self) -> int:
        return len(self.rows) + len(self.records)

    def add(self, record: Record) -> None:
        """One record, as dlt would receive it from the per-record path."""
        row = _flatten(record)
        if row is None:
            self.records.append(record)
            return
        row["_dlt_load_id"] = self.load_id
        row["_dlt_id"] = get_row_hash(record)
        self.rows.append(row)

    def items(self) -> Iterator[pa.Table | list[Record]]:
        """The batch as an Arrow table (or as rows, when dlt must type them itself), then the
        records kept as records; empties the batch."""
        if self.rows:
            yield _to_arrow(self.rows, self.types) or self.rows
        if self.records:
            yield self.records
        self.rows = []
        self.records = []


def _flatten(record: Mapping[str, Any]) -> Record | None:
    """The record's columns, or None when it holds a non-empty list (a nested table)."""
    row: Record = {}
    stack: list[tuple[Mapping[str, Any], tuple[str, ...]]] = [(record, ())]
    while stack:
        current, path = stack.pop()
        for key, value in current.items():
            kind = type(value)
            if kind is dict:
                stack.append((value, (*path, key)))
            elif kind is list:
                if value:
                    return None
            elif not key.startswith("_dlt"):
                row[_column((*path, key))] = value
    return row


def _to_arrow(rows: list[Record], types: Mapping[str, pa.DataType]) -> pa.Table | None:
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    arrays: list[pa.Array] = []
    fields: list[str] = []
    for name in names:
        values = [row.get(name) for row in rows]
        array = _array(values, types.get(name))
        if array is None:
            return None
        if array.null_count == len(values):
            # dlt makes no column of a field it has only seen as null.
            continue
        arrays.append(array)
        fields.append(name)
    # Non-null columns as dlt declares them (its row hash and load id, the merge key): the
    # same nullability keeps dlt from warning that the Arrow schema differs from its own.
    schema = pa.schema(
        pa.field(name, array.type, nullable=array.null_count > 0 or name not in _REQUIRED)
        for name, array in zip(fields, arrays, strict=True)
    )
    return pa.Table.from_arrays(arrays, schema=schema)


_REQUIRED = {"_dlt_id", "_dlt_load_id", "license_key", "transaction_key"}


def _array(values: list[Any], hint: pa.DataType | None) -> pa.Array | None:
    """The values as one Arrow array of the type dlt would give them, or None when dlt would
    split them into variant columns (mixed types, or text under a date hint that is not one)."""
    kinds = {type(v) for v in values if v is not None}
    try:
        if hint == pa.date32():
            if not kinds <= {str}:
                return None
            return pa.array(values, pa.string()).cast(pa.date32())
        if hint == pa.float64():
            if not kinds <= {float, int}:
                return None
            return pa.array(values, pa.float64())
        if len(kinds) > 1:
            return None
        kind = next(iter(kinds), str)
        arrow_type = _TYPES.get(kind)
        if arrow_type is None:
            return None
        return pa.array(values, arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None


_TYPES: dict[type, pa.DataType] = {
    str: pa.string(),
    float: pa.float64(),
    int: pa.int64(),
    bool: pa.bool_(),
}


def hinted_types(dates: Iterable[str], doubles: Iterable[str] = ()) -> dict[str, pa.DataType]:
    """Arrow types of the columns a resource declares (settings.*_DATE_COLUMNS and such)."""
    return {**{n: pa.date32() for n in dates}, **{n: pa.float64() for n in doubles}}


def batches(
    records: Iterable[Record], load_id: str, types: Mapping[str, pa.DataType]
) -> Iterator[pa.Table | list[Record]]:
    """Arrow tables (and lists of records) for every BATCH_RECORDS records."""
    tables = Tables(load_id, types)
    for record in records:
        tables.add(record)
        if len(tables) >= BATCH_RECORDS:
            yield from tables.items()
    yield from tables.items()

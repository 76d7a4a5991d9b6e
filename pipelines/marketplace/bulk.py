"""The bulk backfill path: export files on disk to Arrow tables shaped as dlt's normalizer
would shape the same records, so dlt skips its normalizer (and its gzip, JSON-lines and
per-row typing) for them.

What the per-record path does in dlt, done here per batch and column:
- records come from DuckDB's JSON reader over the downloaded file (a chunked scan, never
  the whole array in memory), one `orjson.loads` each; the rules on records (identity,
  dedup, PII policy, nested-list order) are the very functions the per-record path calls;
- a batch of records becomes one nested Arrow array (Arrow's C++ converter, the union of
  the keys), flattened into columns with dlt's naming (`purchaseDetails.saleDate` ->
  `purchase_details__sale_date`) and the resource's type hints; a column whose values are
  all null in a batch is left out, as dlt leaves out a field it has only seen as null;
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

import gc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from dlt.common.normalizers.json.helpers import get_row_hash
from dlt.common.normalizers.naming.snake_case import NamingConvention

Record = dict[str, Any]

# Records per Arrow batch: large enough that per-batch costs vanish, small enough that a batch
# (a few kB per record as Python objects) stays in the tens of MB.
BATCH_RECORDS = 5_000
# DuckDB only splits the file into records here: a small cap keeps that scan lean.
READER_MEMORY = "128MB"

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
        # One thread: it only splits the array, and Python is the slower side anyway.
        connection.execute("set threads = 1")
        connection.execute("set preserve_insertion_order = true")
        for path in files:
            reader = connection.sql(
                "select json from read_json_objects($file, format = 'array')",
                params={"file": str(path)},
            ).to_arrow_reader(BATCH_RECORDS)
            for batch in reader:
                # As bytes (a zero-copy cast): orjson reads them as they are, where each str
                # would be decoded first and encoded back to UTF-8 (1.5 us a record, measured).
                for text in batch.column(0).cast(pa.binary()).to_pylist():
                    yield orjson.loads(text)


class Tables:
    """Batches of one table's records as Arrow tables, flattened and typed as dlt would.

    A record that holds a non-empty list (a transaction's discounts) is kept as a record:
    dlt writes nested tables only from its own normalizer (it refuses nested tables from a
    resource), so those records take the per-record path, a minority of transactions.
    """

    def __init__(self, load_id: str, types: Mapping[str, pa.DataType]) -> None:
        self.load_id = load_id
        self.types = types
        self.rows: list[Record] = []
        self.row_ids: list[str] = []
        self.records: list[Record] = []

    def __len__(self) -> int:
        return len(self.rows) + len(self.records)

    def add(self, record: Record) -> None:
        """One record, as dlt would receive it from the per-record path."""
        if _has_nested_rows(record):
            self.records.append(record)
            return
        self.rows.append(record)
        self.row_ids.append(get_row_hash(record))

    def items(self) -> Iterator[pa.Table | list[Record]]:
        """The batch as an Arrow table (or as records, when dlt must type them itself), then
        the records kept as records; empties the batch."""
        if self.rows:
            yield _to_arrow(self.rows, self.row_ids, self.load_id, self.types) or self.rows
        if self.records:
            yield self.records
        self.rows, self.row_ids, self.records = [], [], []


def _has_nested_rows(record: Mapping[str, Any]) -> bool:
    for value in record.values():
        kind = type(value)
        if (kind is list and value) or (kind is dict and _has_nested_rows(value)):
            return True
    return False


def _to_arrow(
    rows: list[Record], row_ids: list[str], load_id: str, types: Mapping[str, pa.DataType]
) -> pa.Table | None:
    """The rows as one table with dlt's column names and types, or None when a field does not
    have one type dlt would give it (it would make a variant column)."""
    try:
        # Arrow's own converter (C++) infers the nested struct of the union of the keys.
        nested = pa.array(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None
    names: list[str] = []
    arrays: list[pa.Array] = []
    for path, array in _leaves(nested, ()):
        name = _column(path)
        typed = _typed(array, types.get(name), rows, path)
        if typed is False:
            return None
        if typed is not None:
            names.append(name)
            arrays.append(typed)
    names += ["_dlt_load_id", "_dlt_id"]
    arrays += [pa.array([load_id] * len(rows), pa.string()), pa.array(row_ids, pa.string())]
    # Non-null columns as dlt declares them (its row hash and load id, the merge key): the
    # same nullability keeps dlt from warning that the Arrow schema differs from its own.
    schema = pa.schema(
        pa.field(name, array.type, nullable=array.null_count > 0 or name not in _REQUIRED)
        for name, array in zip(names, arrays, strict=True)
    )
    return pa.Table.from_arrays(arrays, schema=schema)


_REQUIRED = {"_dlt_id", "_dlt_load_id", "license_key", "transaction_key"}


def _leaves(array: pa.Array, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], pa.Array]]:
    """(key path, values) of every scalar field; `flatten` carries a missing parent's null."""
    for field, child in zip(array.type, array.flatten(), strict=True):
        if pa.types.is_struct(field.type):
            yield from _leaves(child, (*path, field.name))
        else:
            yield (*path, field.name), child


def _typed(
    array: pa.Array, hint: pa.DataType | None, rows: list[Record], path: tuple[str, ...]
) -> pa.Array | bool | None:
    """The column as dlt would type it; None: no column (dlt makes none of a field seen only
    as null or as empty lists); False: dlt would split it into variant columns."""
    kind = array.type
    if pa.types.is_null(kind) or pa.types.is_list(kind) or array.null_count == len(array):
        return None
    if hint is not None:
        allowed = _HINT_SOURCES[hint]
        if not any(check(kind) for check in allowed):
            return False
        try:
            return array.cast(hint)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return False  # text under a date hint that is not a date
    if pa.types.is_floating(kind) and _holds_int(rows, path):
        return False  # Arrow made one double column of ints and floats; dlt would not
    if not any(check(kind) for check in _PLAIN):
        return False
    return array


_HINT_SOURCES = {
    pa.date32(): (pa.types.is_string,),
    pa.float64(): (pa.types.is_floating, pa.types.is_integer),
}
_PLAIN = (pa.types.is_string, pa.types.is_floating, pa.types.is_integer, pa.types.is_boolean)


def _holds_int(rows: list[Record], path: tuple[str, ...]) -> bool:
    for row in rows:
        value: Any = row
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if type(value) is int:
            return True
    return False


def hinted_types(dates: Iterable[str], doubles: Iterable[str] = ()) -> dict[str, pa.DataType]:
    """Arrow types of the columns a resource declares (settings.*_DATE_COLUMNS and such)."""
    return {**{n: pa.date32() for n in dates}, **{n: pa.float64() for n in doubles}}


def batches(
    records: Iterable[Record], load_id: str, types: Mapping[str, pa.DataType]
) -> Iterator[pa.Table | list[Record]]:
    """Arrow tables (and lists of records) for every BATCH_RECORDS records.

    Python's cyclic garbage collector is off meanwhile: parsed JSON makes no cycles (reference
    counting frees every record), and its passes over the millions of live objects of a
    backfill cost 10-15 us per record, about a quarter of the bulk path (measured)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        tables = Tables(load_id, types)
        for record in records:
            tables.add(record)
            if len(tables) >= BATCH_RECORDS:
                yield from tables.items()
        yield from tables.items()
    finally:
        if collecting:
            gc.enable()

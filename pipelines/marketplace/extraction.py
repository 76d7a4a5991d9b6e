"""What the resources read: the backfill and incremental plans, paging and exports, the cursor."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
import orjson

from pipelines.errors import UserError
from pipelines.marketplace import bulk, settings
from pipelines.marketplace.client import MarketplaceClient, log
from pipelines.marketplace.exports import ExportRunner
from pipelines.marketplace.helpers import (
    ContentDigest,
    Window,
    add_months,
    apply_pii_policy,
    batched,
    earlier,
    first_of_month,
    flatten_metric_aggregates,
    iso,
    later,
    license_key,
    license_windows,
    lookback_start,
    metric_event_key,
    parse_date,
    row_hash,
    sort_nested_lists,
    transaction_key,
    transaction_license_key,
    window_params,
    windows,
)

Record = dict[str, Any]
# Wraps a resource's records so that its cursor follows them (with_cursor).
Tracker = Callable[[Iterable[Record]], Iterator[Record]]


@dataclass
class Extraction:
    """What every resource of one run shares: the client, the export routine and the plan."""

    client: MarketplaceClient
    exporter: ExportRunner
    first_day: dt.date
    lookback_days: int
    backfill: bool
    today: dt.date
    # First day of the metric events' re-read window (set once by the source).
    events_from: dt.date | None = None
    # The PII policy (settings.PII_MODES) and the key of its hash.
    pii: str = settings.DEFAULT_PII
    pii_salt: str | None = None
    # Backfills of licenses and transactions through bulk.py (False: record by record, as
    # incremental runs always read).
    bulk: bool = True
    # The vendor every row belongs to (settings.VENDOR_COLUMN).
    vendor_id: str = ""

    def protect(self, record: Record) -> Record:
        """The record under the PII policy, before it is keyed, hashed or written."""
        return apply_pii_policy(record, self.pii, self.pii_salt)

    def incremental_start(self, cursor: str | None, arrives_late_days: int = 0) -> dt.date | None:
        """None means backfill: asked for, or nothing saved yet for this resource.

        `arrives_late_days` widens the look-back for rows that appear after the date they
        carry (attribution is dated before the evaluation that reveals it)."""
        if self.backfill or not cursor:
            return None
        return lookback_start(cursor, self.lookback_days + arrives_late_days)


# ---- the one cursor rule -----------------------------------------------------------------------


def with_cursor(
    run: Extraction,
    records: Callable[[dt.date | None], Iterable[Record]],
    cursor_of: Callable[[Record], str | None],
    arrives_late_days: int = 0,
    tables: Callable[[Tracker], Iterator[Any]] | None = None,
) -> Iterator[Any]:
    """A resource's records in batches, with its cursor kept in dlt's resource state.

    `tables`, given, reads a backfill in bulk (Arrow tables, bulk.py) instead of `records`.
    `records` gets the day to read from (the saved cursor minus the look-back, widened by
    `arrives_late_days`), or None for a backfill. The cursor is the latest `cursor_of` value
    seen and is written only after the last record: dlt commits resource state together with
    the load, so a run that fails anywhere leaves the cursor where it was.

    An incremental run whose re-read window holds exactly what the last load of that window
    held (same start, same records: `content_digest`) yields nothing: loading it again could
    change nothing (scd2 and the row-hash merges would land each row on itself, delete-insert
    would put back what it deleted), and skipping it is what makes a no-op run cheap. A
    rewrite, a late attribution row or a withdrawn event changes the digest, and the whole
    window is then loaded as before.
    """
    state = dlt.current.resource_state()
    saved = state.get("cursor")
    newest = saved

    def tracked(items: Iterable[Record]) -> Iterator[Record]:
        nonlocal newest
        for record in items:
            newest = later(newest, cursor_of(record))
            yield record

    def capped_at_api_day(cursor: str | None) -> str | None:
        # Never past the API's own day: one record dated in the future would otherwise make
        # every later run start reading after it and miss what changes meanwhile.
        api_day = getattr(run.client, "api_day", None)
        return earlier(cursor, iso(api_day)) if cursor and api_day else cursor

    start = run.incremental_start(saved, arrives_late_days)
    if start is None:
        if tables is not None and run.bulk:
            yield from tables(tracked)
        else:
            yield from batched(tracked(records(None)))
        state.pop("last_read", None)
        state["cursor"] = capped_at_api_day(newest)
        return
    window = {"start": start.isoformat(), "events_from": iso(run.events_from)}
    digest = ContentDigest()
    count = 0
    # Held back in a scratch file, not in memory (six months of a large vendor's metric events
    # are hundreds of thousands), until the digest says whether to load them.
    with tempfile.TemporaryFile() as spool:
        for record in tracked(records(start)):
            digest.add(record)
            spool.write(orjson.dumps(record) + b"\n")
            count += 1
        read = {**window, "digest": digest.hexdigest()}
        if state.get("last_read") == read:
            log.info(
                "%s: the %d records re-read from %s are unchanged since the last load",
                dlt.current.resource_name(),
                count,
                start,
            )
            return
        spool.seek(0)
        yield from batched(orjson.loads(line) for line in spool)
    state["last_read"] = read
    state["cursor"] = capped_at_api_day(newest)


def load_day(run: Extraction) -> dt.date:
    """The API's day by its own clock (the Date header of its responses), asked for with one
    cheap call when nothing has been requested yet; our clock only when the API sends none."""
    client = run.client
    if getattr(client, "api_day", None) is None:
        client.request_json("GET", client.reporting_root, what="the API's clock")
    return getattr(client, "api_day", None) or run.today


def saved_cursors() -> dict[str, Any]:
    """Every resource's saved cursor in this source's state (empty outside a pipeline)."""
    try:
        resources = dlt.current.source_state().get("resources", {})
    except Exception:  # no active pipeline: nothing saved
        return {}
    return {name: (value or {}).get("cursor") for name, value in resources.items()}


# ---- paging and exports ------------------------------------------------------------------------


def exported_or_paged(
    client: MarketplaceClient, path: str, items_key: str, query: dict[str, str], what: str
) -> Iterator[Record]:
    """A list endpoint's records through its one-request `/export` (a large vendor's metric
    events are tens of thousands of pages of 50), falling back to paging when the export keeps
    failing, as Atlassian warns it may on large data. Either way records can repeat (a retried
    export starts over): the caller deduplicates."""
    try:
        yield from client.stream_sync_export(path, {**query, "accept": "json"}, what)
    except UserError as error:
        log.warning("%s: export failed (%s); reading the pages instead", what, error)
        yield from client.paginate(path, items_key, query, what=what)


def _window_name(kind: str, window: Window) -> str:
    return f"{kind} from {window.start}" + (f" to {window.end}" if window.end else "")


def _exported(
    run: Extraction, path: str, plan: list[tuple[dict[str, str], str]]
) -> list[Iterator[Record]]:
    """Every export of a backfill started at once (Atlassian prepares them in parallel), then
    read one after the other."""
    for params, what in plan:
        run.exporter.start(path, params, what)
    return [run.exporter.records(path, params, what) for params, what in plan]


# ---- the records of each resource --------------------------------------------------------------


def license_records(run: Extraction, start: dt.date | None) -> Iterator[Record]:
    """Backfill: one export per insights window. Incremental: the records updated since
    `start`, in one sync export (a large vendor's look-back is hundreds of pages of 50).
    A license returned twice keeps its first copy (the windows put the insights one first)."""
    if start is None:
        sources = _exported(run, "licenses", _license_plan(run))
    else:
        query = {
            **settings.LICENSE_FLAGS,
            **settings.INSIGHTS_FLAG,
            "lastUpdated": start.isoformat(),
        }
        sources = [exported_or_paged(run.client, "licenses", "licenses", query, "licenses")]
    return _licenses(run, sources)


def license_tables(run: Extraction, tracked: Tracker) -> Iterator[Any]:
    """The backfill's licenses as Arrow tables (bulk.py): the same exports and rules."""
    types = bulk.hinted_types(settings.LICENSE_DATE_COLUMNS)
    records = _licenses(run, _files(run, "licenses", _license_plan(run)))
    return bulk.batches(tracked(records), _load_id(), types)


def _license_plan(run: Extraction) -> list[tuple[dict[str, str], str]]:
    flags = settings.LICENSE_FLAGS
    return [
        (
            {**flags, **window_params(w), **(settings.INSIGHTS_FLAG if w.insights else {})},
            _window_name("licenses", w),
        )
        for w in license_windows(run.first_day)
    ]


def _licenses(run: Extraction, sources: Iterable[Iterable[Record]]) -> Iterator[Record]:
    """The one rule of both paths: the first copy of each license, protected, keyed, with its
    nested lists in a stable order."""
    seen: set[str] = set()
    for records in sources:
        for record in records:
            key = license_key(record)
            if key is None or key in seen:
                continue
            seen.add(key)
            record = run.protect(record)
            record["license_key"] = key
            # Stamped here, not by the source's map: the bulk path hashes the row first.
            record[settings.VENDOR_COLUMN] = run.vendor_id
            yield sort_nested_lists(record)


def transaction_records(run: Extraction, start: dt.date | None) -> Iterator[Record]:
    """Backfill: one export per yearly window. Incremental: the lines updated since `start`
    in one sync export (paged if it keeps failing), each line once (pages can shift while
    records are rewritten, and a retried export starts over)."""
    if start is None:
        return _transactions(run, _exported(run, "sales/transactions", _transaction_plan(run)))
    query = {**settings.TRANSACTION_FLAGS, "lastUpdated": start.isoformat()}
    sources = [
        exported_or_paged(run.client, "sales/transactions", "transactions", query, "transactions")
    ]
    return _transactions(run, sources, seen=set())


def transaction_tables(run: Extraction, tracked: Tracker) -> Iterator[Any]:
    """The backfill's transaction lines as Arrow tables (bulk.py): the same exports and rules."""
    types = bulk.hinted_types(
        settings.TRANSACTION_DATE_COLUMNS, settings.TRANSACTION_AMOUNT_COLUMNS
    )
    records = _transactions(run, _files(run, "sales/transactions", _transaction_plan(run)))
    return bulk.batches(tracked(records), _load_id(), types)


def _transaction_plan(run: Extraction) -> list[tuple[dict[str, str], str]]:
    return [
        ({**settings.TRANSACTION_FLAGS, **window_params(w)}, _window_name("transactions", w))
        for w in windows(run.first_day, run.today, settings.BACKFILL_WINDOW_MONTHS)
    ]


def _transactions(
    run: Extraction, sources: Iterable[Iterable[Record]], seen: set[str] | None = None
) -> Iterator[Record]:
    """The one rule of both paths: each line protected and keyed (and once, given `seen`),
    with its nested lists in a stable order."""
    for records in sources:
        for record in records:
            key = transaction_key(record)
            if seen is not None:
                if key in seen:
                    continue
                seen.add(key)
            record = run.protect(record)
            record["transaction_key"] = key
            record["license_key"] = transaction_license_key(record)
            record[settings.VENDOR_COLUMN] = run.vendor_id
            yield sort_nested_lists(record)


def _files(
    run: Extraction, path: str, plan: list[tuple[dict[str, str], str]]
) -> Iterator[Iterator[Record]]:
    """The records of each export of `plan`, downloaded to a scratch file and read back in
    bulk. Every export is started first (as `_exported` does), and the next file downloads
    in a thread while this one is parsed: the wait on the API overlaps our own work. Each
    file is gone once read."""
    for params, what in plan:
        run.exporter.start(path, params, what)
    with tempfile.TemporaryDirectory(prefix="mpac-export-") as scratch:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mpac-download")

        def fetch(number: int) -> Future[Path]:
            params, what = plan[number]
            target = Path(scratch) / f"{number}.json"
            return pool.submit(run.exporter.download, path, params, what, target)

        try:
            pending = fetch(0) if plan else None
            for number in range(len(plan)):
                assert pending is not None
                target = pending.result()
                pending = fetch(number + 1) if number + 1 < len(plan) else None
                yield bulk.file_records([target])
                target.unlink()
        finally:
            # A run that stops early does not wait for a download nobody will read.
            pool.shutdown(wait=False, cancel_futures=True)


def _load_id() -> str:
    """The id of the load package being extracted (what dlt writes as `_dlt_load_id`)."""
    return str(dlt.current.load_package_state()["load_id"])


def feedback_records(run: Extraction, start: dt.date | None) -> Iterator[Record]:
    """No export serves feedback: the list is paged by yearly window, or from `start`."""
    if start is None:
        plan = windows(run.first_day, run.today, settings.BACKFILL_WINDOW_MONTHS)
    else:
        plan = [Window(start, None)]
    for window in plan:
        what = f"feedback from {window.start}"
        for record in run.client.paginate(
            "feedback/details", "feedback", window_params(window), what=what
        ):
            # The hash is taken after the policy: a key must not be a digest of a contact.
            record = run.protect(record)
            yield {**record, "row_hash": row_hash(record)}


def attribution_records(run: Extraction, start: dt.date | None) -> Iterator[Record]:
    """Only an async export serves attribution: from `start`, or from the first day."""
    start = start or run.first_day
    params = {"startDate": start.isoformat()}
    for record in run.exporter.records(
        "marketing-attribution", params, what=f"marketing attribution from {start}"
    ):
        record = run.protect(record)
        yield {**record, "row_hash": row_hash(record)}


def attribution_day(record: Record) -> str | None:
    """Attribution's cursor: the day of its eventTimestamp."""
    return str(record.get("eventTimestamp") or "")[:10] or None


def metric_aggregate_records(run: Extraction, start: dt.date | None) -> Iterator[Record]:
    """Every figure from the first month: three small calls, read whole every run (`start` is
    not used: Atlassian recomputes past periods)."""
    params = {"startDate": first_of_month(run.first_day).isoformat()}
    for metric in settings.METRICS:
        query = {**params, **settings.METRIC_AGGREGATE_PARAMS[metric]}
        body = run.client.get_json(
            run.client.url(f"sales/metrics/{metric}"), query, what=f"{metric} figures"
        )
        yield from flatten_metric_aggregates(metric, body or {})


def metric_events_start(run: Extraction) -> dt.date:
    """Backfill: from the first day. Else the trailing window before the latest data day (the
    API's today, as the licenses' cursor shows it; our clock may be ahead of or behind it)."""
    cursors = saved_cursors()
    data_day = later(cursors.get("licenses"), cursors.get("transactions"))
    if run.backfill or not cursors.get("metric_events") or not data_day:
        return first_of_month(run.first_day)
    anchor = min(parse_date(data_day, "the saved cursor"), run.today)
    return first_of_month(add_months(anchor, -settings.METRIC_EVENTS_TRAILING_MONTHS))


def metric_event_records(run: Extraction, changed_since: dt.date | None) -> Iterator[Record]:
    """The events of the months from `run.events_from`, plus on an incremental run the events
    updated since `changed_since` whatever their month, each through the sync export (a large
    vendor's renewals updated in the look-back are hundreds of pages of 50)."""
    queries = [{"startDate": (run.events_from or run.first_day).isoformat()}]
    if changed_since is not None and run.events_from is not None:
        queries.append({"lastUpdated": changed_since.isoformat()})
    # 64-bit prefixes of the keys: a million events cost ~50 MB rather than ~150 MB.
    seen: set[int] = set()
    for query in queries:
        for metric in settings.METRICS:
            path = f"sales/metrics/{metric}/details"
            what = f"{metric} events"
            for event in exported_or_paged(run.client, path, "events", query, what):
                key = metric_event_key(metric, event)
                short = int(key[:16], 16)
                if short in seen:
                    continue
                seen.add(short)
                day = event.get("eventDate")
                month = iso(first_of_month(parse_date(day, "eventDate"))) if day else None
                yield {
                    "metric": metric,
                    **event,
                    "period_start": month,
                    "event_key": key,
                    "row_hash": row_hash({"metric": metric, **event}),
                }

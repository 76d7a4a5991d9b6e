"""What the resources read: the backfill and incremental plans, paging and exports, the cursor."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
import ijson
import orjson

from pipelines.errors import UserError
from pipelines.marketplace import bulk, settings
from pipelines.marketplace.client import MarketplaceClient, RetryableError, body_records, log
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


@dataclass(frozen=True)
class Read:
    """One query of an incremental window that a sync `.../export` answers (paged if the
    export keeps failing), or an async export (`exported`)."""

    path: str
    items_key: str
    query: dict[str, str]
    what: str
    # Served by an async export only (marketing attribution): initiated, polled, downloaded.
    exported: bool = False

    @property
    def export_query(self) -> dict[str, str]:
        """The query of its sync `.../export` (JSON, not the CSV the export defaults to)."""
        return {**self.query, "accept": "json"}


# The records of one Read: streamed from the API, or parsed from a body already downloaded.
Source = Callable[[Read], Iterable[Record]]


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
    records: Callable[[dt.date | None, Source], Iterable[Record]],
    cursor_of: Callable[[Record], str | None],
    arrives_late_days: int = 0,
    tables: Callable[[Tracker], Iterator[Any]] | None = None,
    reads: Callable[[dt.date], list[Read]] | None = None,
) -> Iterator[Any]:
    """A resource's records in batches, with its cursor kept in dlt's resource state.

    `tables`, given, reads a backfill in bulk (Arrow tables, bulk.py) instead of `records`.
    `records` gets the day to read from (the saved cursor minus the look-back, widened by
    `arrives_late_days`), or None for a backfill, and where to read each sync export from.
    The cursor is the latest `cursor_of` value seen and is written only after the last
    record: dlt commits resource state together with the load, so a run that fails anywhere
    leaves the cursor where it was.

    An incremental run whose re-read window holds exactly what the last load of that window
    held (same start, same records: `content_digest`) yields nothing: loading it again could
    change nothing (scd2 and the row-hash merges would land each row on itself, delete-insert
    would put back what it deleted), and skipping it is what makes a no-op run cheap. A
    rewrite, a late attribution row or a withdrawn event changes the digest, and the whole
    window is then loaded as before.

    `reads`, given, lists the sync exports of the window: each body is downloaded whole
    first, and when every body's bytes equal those of the last load of the window (same
    queries, same record rules: `Bodies.key`), nothing is parsed at all. Same bytes, same
    rules: same records, so this skips only what the digest above would skip.
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
            yield from batched(tracked(records(None, streamed(run))))
        state.pop("last_read", None)
        state.pop("last_bytes", None)
        state["cursor"] = capped_at_api_day(newest)
        return
    window = {"start": start.isoformat(), "events_from": iso(run.events_from)}
    digest = ContentDigest()
    count = 0
    # Held back in a scratch file, not in memory (six months of a large vendor's metric events
    # are hundreds of thousands), until the digest says whether to load them.
    with tempfile.TemporaryDirectory(prefix="mpac-read-") as scratch:
        source: Source = streamed(run)
        seen_bytes: dict[str, str] | None = None
        if reads is not None:
            bodies = Bodies(run, reads(start), Path(scratch))
            seen_bytes = bodies.key(window, rules_fingerprint(run))
            if seen_bytes is not None and state.get("last_bytes") == seen_bytes:
                log.info(
                    "%s: the %d export bodies re-read from %s (%s) are the bytes of the last "
                    "load: unchanged, not parsed",
                    dlt.current.resource_name(),
                    len(bodies.reads),
                    start,
                    bodies.size(),
                )
                return
            source = bodies.records
        with (Path(scratch) / "records.jsonl").open("w+b") as spool:
            for record in tracked(records(start, source)):
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
                last_bytes = state.get("last_bytes") or {}
                if seen_bytes is not None and last_bytes.get("rules") != seen_bytes["rules"]:
                    # First read under these rules (an upgrade, a new PII policy) and the
                    # records are those loaded: these bytes are known to give them, so the
                    # next run can skip the parse. A state change, landed once. (Bodies
                    # whose bytes alone differ, say reordered, are not recorded: that would
                    # land a state change on every run.)
                    state["last_bytes"] = seen_bytes
                return
            spool.seek(0)
            yield from batched(orjson.loads(line) for line in spool)
    state["last_read"] = read
    if seen_bytes is not None:
        state["last_bytes"] = seen_bytes
    else:
        state.pop("last_bytes", None)
    state["cursor"] = capped_at_api_day(newest)


class Bodies:
    """The sync-export bodies of one incremental window, each downloaded whole to a scratch
    file (its bytes digested on the way) before any is parsed.

    A read whose export keeps failing is paged instead, when its records are asked for; it
    has no bytes to compare, so the window then has no `key` and is parsed as before.
    """

    def __init__(self, run: Extraction, reads: list[Read], folder: Path) -> None:
        self.client = run.client
        self.reads = reads
        # Per read, in order: its body's file and digest (None: paged instead).
        self._files: list[Path | None] = []
        self._digests: list[str | None] = []
        self._bytes = 0
        # Per read whose export kept failing: why (it is paged when its records are asked for).
        self._failures: dict[int, UserError] = {}
        for number, read in enumerate(reads):
            target = folder / f"{number}.json"
            digest = download_body(run, read, target)
            if isinstance(digest, UserError):
                self._failures[number] = digest
                self._files.append(None)
                self._digests.append(None)
                continue
            self._files.append(target)
            self._digests.append(digest)
            self._bytes += target.stat().st_size

    def key(self, window: dict[str, str | None], rules: str) -> dict[str, str] | None:
        """What the window's bytes were, as resource state keeps it: the record rules and one
        digest of every read (query and body bytes); None when a read was paged."""
        if any(digest is None for digest in self._digests):
            return None
        summary = hashlib.sha256(orjson.dumps(window, option=orjson.OPT_SORT_KEYS))
        for read, digest in zip(self.reads, self._digests, strict=True):
            identity = {"path": read.path, "query": read.query, "body": digest}
            summary.update(orjson.dumps(identity, option=orjson.OPT_SORT_KEYS))
        return {"rules": rules, "bodies": summary.hexdigest()}

    def size(self) -> str:
        return f"{self._bytes / 1_000_000:.1f} MB"

    def records(self, read: Read) -> Iterator[Record]:
        """The records of `read`: parsed from its body as a streamed one would be, or paged."""
        number = self.reads.index(read)
        target = self._files[number]
        if target is None:
            yield from paged_instead(self.client, read, self._failures[number])
            return
        try:
            yield from body_records(target)
        except (ijson.JSONError, RetryableError) as error:
            raise UserError(
                f"the {read.what} export sent a body that does not parse ({error}); run again."
            ) from None


def rules_fingerprint(run: Extraction) -> str:
    """What turns an export's bytes into this run's records, as one digest: the code of the
    record rules (the source's modules: any change to them may change records, so a new
    version parses its first read again) and the PII policy applied to a sample contact (a
    new policy or hash salt gives other records; the salt is not kept, only a digest of its
    HMAC of the sample). Same bytes under the same fingerprint give the same records."""
    import pipelines.marketplace as package

    summary = hashlib.sha256()
    for name in ("__init__.py", "client.py", "extraction.py", "helpers.py", "settings.py"):
        try:
            summary.update((Path(str(package.__file__)).parent / name).read_bytes())
        except OSError:
            # No source to read (an unusual install): a fingerprint that never repeats, so
            # every window is parsed, as before bytes were compared.
            summary.update(os.urandom(16))
    sample = {"contactDetails": {"technicalContact": {"email": "a@example.com", "name": "A"}}}
    summary.update(orjson.dumps([run.pii, run.vendor_id, run.protect(sample)]))
    return summary.hexdigest()[:32]


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


def exported_or_paged(client: MarketplaceClient, read: Read) -> Iterator[Record]:
    """A list endpoint's records through its one-request `/export` (a large vendor's metric
    events are tens of thousands of pages of 50), paged instead when the export keeps failing.
    Either way records can repeat (a retried export starts over): the caller deduplicates."""
    try:
        yield from client.stream_sync_export(read.path, read.export_query, read.what)
    except UserError as error:
        yield from paged_instead(client, read, error)


def paged_instead(client: MarketplaceClient, read: Read, error: UserError) -> Iterator[Record]:
    """The pages of a read whose sync export kept failing, as Atlassian warns it may on large
    data (the one fallback, whether the export was streamed or downloaded first)."""
    log.warning("%s: export failed (%s); reading the pages instead", read.what, error)
    yield from client.paginate(read.path, read.items_key, read.query, what=read.what)


def download_body(run: Extraction, read: Read, target: Path) -> str | UserError:
    """The read's body written whole to `target`, and the digest of its bytes; for a sync export
    that kept failing, why (the read is then paged: `paged_instead`). An async export has no
    other way to be read: its failure is the run's, as when streamed."""
    if read.exported:
        return run.exporter.body(read.path, read.query, read.what, target)
    try:
        return run.client.download_sync_export(read.path, read.export_query, target, read.what)
    except UserError as error:
        target.unlink(missing_ok=True)
        return error


def streamed(run: Extraction) -> Source:
    """Each Read's records as they arrive (`exported_or_paged`, or the async export)."""

    def source(read: Read) -> Iterable[Record]:
        if read.exported:
            return run.exporter.records(read.path, read.query, read.what)
        return exported_or_paged(run.client, read)

    return source


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


def license_records(
    run: Extraction, start: dt.date | None, source: Source | None = None
) -> Iterator[Record]:
    """Backfill: one export per insights window. Incremental: the records updated since
    `start`, in one sync export (a large vendor's look-back is hundreds of pages of 50).
    A license returned twice keeps its first copy (the windows put the insights one first)."""
    if start is None:
        return _licenses(run, _exported(run, "licenses", _license_plan(run)))
    source = source or streamed(run)
    return _licenses(run, [source(read) for read in license_reads(run, start)])


def license_reads(run: Extraction, start: dt.date) -> list[Read]:
    """The incremental look-back of licenses: those updated since `start`."""
    query = {**settings.LICENSE_FLAGS, **settings.INSIGHTS_FLAG, "lastUpdated": start.isoformat()}
    return [Read("licenses", "licenses", query, "licenses")]


def license_tables(run: Extraction, tracked: Tracker) -> Iterator[Any]:
    """The backfill's licenses as Arrow tables (bulk.py): the same exports and rules."""
    types = bulk.hinted_types(settings.LICENSE_DATE_COLUMNS)
    records = _licenses(run, _files(run, _exports("licenses", _license_plan(run))))
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


def transaction_records(
    run: Extraction, start: dt.date | None, source: Source | None = None
) -> Iterator[Record]:
    """Backfill: one export per yearly window. Incremental: the lines updated since `start`
    in one sync export (paged if it keeps failing), each line once (pages can shift while
    records are rewritten, and a retried export starts over)."""
    if start is None:
        return _transactions(run, _exported(run, "sales/transactions", _transaction_plan(run)))
    source = source or streamed(run)
    sources = [source(read) for read in transaction_reads(run, start)]
    return _transactions(run, sources, seen=set())


def transaction_reads(run: Extraction, start: dt.date) -> list[Read]:
    """The incremental look-back of transaction lines: those updated since `start`."""
    query = {**settings.TRANSACTION_FLAGS, "lastUpdated": start.isoformat()}
    return [Read("sales/transactions", "transactions", query, "transactions")]


def transaction_tables(run: Extraction, tracked: Tracker) -> Iterator[Any]:
    """The backfill's transaction lines as Arrow tables (bulk.py): the same exports and rules."""
    types = bulk.hinted_types(
        settings.TRANSACTION_DATE_COLUMNS, settings.TRANSACTION_AMOUNT_COLUMNS
    )
    plan = _exports("sales/transactions", _transaction_plan(run))
    records = _transactions(run, _files(run, plan))
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


def _exports(path: str, plan: list[tuple[dict[str, str], str]]) -> list[Read]:
    """The async exports of a backfill plan, as Reads."""
    return [Read(path, "", params, what, exported=True) for params, what in plan]


def _files(run: Extraction, reads: list[Read]) -> Iterator[Iterable[Record]]:
    """The records of each read, its body downloaded to a scratch file and read back in bulk
    (a sync export that keeps failing is paged instead). Every async export is started first
    (as `_exported` does), and the next body downloads in a thread while this one is parsed:
    the wait on the API overlaps our own work. Each file is gone once read."""
    for read in reads:
        if read.exported:
            run.exporter.start(read.path, read.query, read.what)
    with tempfile.TemporaryDirectory(prefix="mpac-export-") as scratch:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mpac-download")

        def fetch(number: int) -> Future[str | UserError]:
            target = Path(scratch) / f"{number}.json"
            return pool.submit(download_body, run, reads[number], target)

        try:
            pending = fetch(0) if reads else None
            for number, read in enumerate(reads):
                assert pending is not None
                digest = pending.result()
                pending = fetch(number + 1) if number + 1 < len(reads) else None
                if isinstance(digest, UserError):
                    yield paged_instead(run.client, read, digest)
                    continue
                body = Path(scratch) / f"{number}.json"
                yield _body_records(body)
                body.unlink()
        finally:
            # A run that stops early does not wait for a download nobody will read.
            pool.shutdown(wait=False, cancel_futures=True)


def _body_records(body: Path) -> Iterator[Record]:
    """A downloaded body's records: DuckDB splits an array (bulk.py); the object form the spec
    gives attribution ({"marketingAttribution": [...]}) is parsed as when streamed."""
    with body.open("rb") as head:
        wrapped = head.read(64).lstrip().startswith(b"{")
    yield from body_records(body) if wrapped else bulk.file_records([body])


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


def attribution_records(
    run: Extraction, start: dt.date | None, source: Source | None = None
) -> Iterator[Record]:
    """Only an async export serves attribution: from `start`, or from the first day."""
    source = source or streamed(run)
    return _attributions(run, [source(read) for read in attribution_reads(run, start)])


def attribution_tables(run: Extraction, tracked: Tracker) -> Iterator[Any]:
    """The backfill's attribution as Arrow tables (bulk.py): the same export and rule."""
    types = bulk.hinted_types((), timestamps=("event_timestamp",))
    records = _attributions(run, _files(run, attribution_reads(run, None)))
    # Its primary key: dlt declares those columns not null.
    keys = (settings.VENDOR_COLUMN, "row_hash")
    return bulk.batches(tracked(records), _load_id(), types, keys, versioned=False)


def _attributions(run: Extraction, sources: Iterable[Iterable[Record]]) -> Iterator[Record]:
    """The one rule of both paths: each record protected, then keyed by a hash of the row."""
    for records in sources:
        for record in records:
            # The hash is taken after the policy: a key must not be a digest of a contact.
            record = run.protect(record)
            record = {**record, "row_hash": row_hash(record)}
            # Stamped after the hash (the keys of rows already loaded do not hold it).
            record[settings.VENDOR_COLUMN] = run.vendor_id
            yield record


def attribution_reads(run: Extraction, start: dt.date | None) -> list[Read]:
    """The one attribution export: from `start`, or from the first day."""
    start = start or run.first_day
    what = f"marketing attribution from {start}"
    query = {"startDate": start.isoformat()}
    return [Read("marketing-attribution", "marketingAttribution", query, what, exported=True)]


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


def metric_event_records(
    run: Extraction, changed_since: dt.date | None, source: Source | None = None
) -> Iterator[Record]:
    """The events of the months from `run.events_from`, plus on an incremental run the events
    updated since `changed_since` whatever their month, each through the sync export (a large
    vendor's renewals updated in the look-back are hundreds of pages of 50)."""
    source = source or streamed(run)
    reads = metric_event_reads(run, changed_since)
    return _metric_events(run, reads, [source(read) for read in reads])


def metric_event_tables(run: Extraction, tracked: Tracker) -> Iterator[Any]:
    """The backfill's metric events as Arrow tables (bulk.py): the same exports and rule."""
    types = bulk.hinted_types(settings.METRIC_EVENT_DATE_COLUMNS)
    reads = metric_event_reads(run, None)
    records = _metric_events(run, reads, _files(run, reads))
    # Its primary key: dlt declares those columns not null.
    keys = (settings.VENDOR_COLUMN, "event_key")
    return bulk.batches(tracked(records), _load_id(), types, keys, versioned=False)


def _metric_events(
    run: Extraction, reads: list[Read], sources: Iterable[Iterable[Record]]
) -> Iterator[Record]:
    """The one rule of both paths: the first copy of each event across the reads (an export
    retried starts over; an event updated in the look-back may be in its month's read too),
    keyed, hashed and given its month."""
    # 64-bit prefixes of the keys: a million events cost ~50 MB rather than ~150 MB.
    seen: set[int] = set()
    for read, events in zip(reads, sources, strict=True):
        metric = read.path.split("/")[2]
        for event in events:
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
                settings.VENDOR_COLUMN: run.vendor_id,
            }


def metric_event_reads(run: Extraction, changed_since: dt.date | None) -> list[Read]:
    """Per metric, the events of the months from `run.events_from`, then (incremental) those
    updated since `changed_since`: the order the events are kept in (first copy wins)."""
    queries = [{"startDate": (run.events_from or run.first_day).isoformat()}]
    if changed_since is not None and run.events_from is not None:
        queries.append({"lastUpdated": changed_since.isoformat()})
    return [
        Read(f"sales/metrics/{metric}/details", "events", query, f"{metric} events")
        for query in queries
        for metric in settings.METRICS
    ]

"""dlt source for the Atlassian Marketplace reporting API (dataset `raw_marketplace`).

Licenses and transactions keep every version Atlassian writes (scd2, merge key = the record's
identity, so an incremental run retires only the records it re-read). Keyless records
(feedback, attribution, metric events) are keyed by a hash of the row. Each resource keeps its
cursor in dlt's resource state, which dlt commits only together with the extracted data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dlt
from dlt.extract.resource import DltResource

from pipelines.marketplace import settings
from pipelines.marketplace.client import MarketplaceClient
from pipelines.marketplace.exports import LEDGER_FILE, ExportLedger, ExportRunner
from pipelines.marketplace.helpers import (
    Extraction,
    Window,
    add_months,
    batched,
    exported_or_paged,
    first_of_month,
    flatten_metric_aggregates,
    has_insights,
    iso,
    later,
    license_key,
    license_windows,
    metric_event_key,
    parse_date,
    row_hash,
    sort_nested_lists,
    transaction_key,
    transaction_license_key,
    window_params,
    windows,
)


def _dates(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    return {name: {"name": name, "data_type": "date"} for name in names}


def _doubles(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    return {name: {"name": name, "data_type": "double"} for name in names}


SCD2 = {"disposition": "merge", "strategy": "scd2"}


@dlt.source(name="marketplace")
def marketplace(
    vendor_id: str = dlt.config.value,
    email: str = dlt.secrets.value,
    api_token: str = dlt.secrets.value,
    base_url: str | None = None,
    api_version: str = settings.DEFAULT_API_VERSION,
    start_date: str = settings.DEFAULT_START_DATE,
    lookback_days: int = settings.DEFAULT_LOOKBACK_DAYS,
    backfill: bool = False,
    since: str | None = None,
    export_poll_seconds: float = settings.EXPORT_POLL_INITIAL,
    export_deadline_seconds: float = settings.EXPORT_DEADLINE_SECONDS,
    client: Any = None,
) -> Sequence[DltResource]:
    """One vendor's reporting data: licenses, transactions, feedback, marketing attribution
    and Atlassian's own churn / renewal / conversion figures.

    Args:
        vendor_id: The numeric vendor id (v3 resolves the developer space from it).
        email: The Atlassian account email (HTTP Basic user).
        api_token: An API token of that account (HTTP Basic password).
        base_url: The API host (the simulator's, say); unset, the live host of api_version.
        api_version: "v2" or "v3".
        start_date: The first day a backfill asks for.
        lookback_days: Incremental runs re-read this many days before the saved cursor.
        backfill: Re-read everything from `since` (or `start_date`) with async exports.
        since: First day of an explicit backfill (YYYY-MM-DD).
        export_poll_seconds: First interval between export status polls (then doubles).
        export_deadline_seconds: How long one run waits for an export before giving up.
        client: A ready MarketplaceClient (the runner passes the one it preflighted).
    """
    first_day = parse_date(since or start_date, "--since" if since else "start_date")
    api = client or MarketplaceClient(
        base_url=settings.base_url_for(api_version, base_url),
        email=email,
        api_token=api_token,
        vendor_id=vendor_id,
        api_version=api_version,
    )
    ledger_path = None
    try:
        ledger_path = Path(dlt.current.pipeline().working_dir) / LEDGER_FILE
    except Exception:  # no active pipeline: exports are then not resumable across runs
        ledger_path = None
    exporter = ExportRunner(
        api,
        ExportLedger(ledger_path),
        poll_initial=export_poll_seconds,
        deadline_seconds=export_deadline_seconds,
    )
    run = Extraction(
        client=api,
        exporter=exporter,
        first_day=first_day,
        lookback_days=lookback_days,
        backfill=backfill,
        today=dt.date.today(),
    )
    # Computed once, before any resource moves a cursor, so the rows read and the rows replaced
    # cover the same months.
    run.events_from = events_from = _metric_events_start(run)
    events = metric_events(run)
    # Delete the stored events of the months re-read (an event Atlassian withdrew, say a
    # renewal a refund turned back, must disappear) and earlier versions of events re-read.
    events.apply_hints(
        write_disposition={
            "disposition": "merge",
            "strategy": "delete-insert",
            "destination_scope": f"period_start >= '{events_from.isoformat()}' "
            "or event_key in (select event_key from {staging_table})",
        }
    )
    aggregates = metric_aggregates(run)
    aggregates.apply_hints(
        write_disposition={
            "disposition": "merge",
            "strategy": "delete-insert",
            "destination_scope": f"period_start >= '{first_of_month(first_day).isoformat()}'",
        }
    )
    return (
        licenses(run),
        transactions(run),
        feedback(run),
        marketing_attribution(run),
        aggregates,
        events,
    )


def _metric_events_start(run: Extraction) -> dt.date:
    """Backfill: from the first day. Else the trailing window before the latest data day (the
    API's today, as the licenses' cursor shows it; our clock may be ahead of or behind it)."""
    try:
        resources = dlt.current.source_state().get("resources", {})
    except Exception:
        resources = {}
    data_day = later(
        (resources.get("licenses") or {}).get("cursor"),
        (resources.get("transactions") or {}).get("cursor"),
    )
    own = (resources.get("metric_events") or {}).get("cursor")
    if run.backfill or not own or not data_day:
        return first_of_month(run.first_day)
    anchor = min(parse_date(data_day, "the saved cursor"), run.today)
    return first_of_month(add_months(anchor, -settings.METRIC_EVENTS_TRAILING_MONTHS))


@dlt.resource(
    name="licenses",
    write_disposition=SCD2,
    merge_key="license_key",
    columns=_dates(settings.LICENSE_DATE_COLUMNS),
)
def licenses(run: Extraction) -> Iterator[list[dict[str, Any]]]:
    """One row per version of a license (scd2 on `license_key`).

    scd2 rather than plain merge because Atlassian rewrites licenses after the fact and a vendor
    must see what changed and when; the merge key makes an incremental run retire only the
    licenses it re-read, never the ones outside its window. The API returns some licenses
    twice (around the 2018-07 insights split, bug MP-557): one run keeps the first copy, and
    the windows are ordered so that it is the copy with data insights.
    """
    state = dlt.current.resource_state()
    start = run.incremental_start(state.get("cursor"))
    flags = {**settings.LICENSE_FLAGS}
    if start is None:
        plan = [
            (
                {**flags, **window_params(w), **(settings.INSIGHTS_FLAG if w.insights else {})},
                f"licenses from {w.start}" + (f" to {w.end}" if w.end else ""),
            )
            for w in license_windows(run.first_day)
        ]
        for params, what in plan:
            run.exporter.start("licenses", params, what)
        sources = [run.exporter.records("licenses", params, what) for params, what in plan]
    else:
        query = {**flags, **settings.INSIGHTS_FLAG, "lastUpdated": start.isoformat()}
        sources = [run.client.paginate("licenses", "licenses", query, what="licenses")]
    newest = state.get("cursor")
    seen: dict[str, bool] = {}

    def unique() -> Iterator[dict[str, Any]]:
        nonlocal newest
        for records in sources:
            for record in records:
                key = license_key(record)
                if key is None or key in seen:
                    continue
                seen[key] = has_insights(record)
                newest = later(newest, record.get("lastUpdated"))
                record["license_key"] = key
                yield sort_nested_lists(record)

    yield from batched(unique())
    state["cursor"] = newest


@dlt.resource(
    name="transactions",
    write_disposition=SCD2,
    merge_key="transaction_key",
    columns={
        **_dates(settings.TRANSACTION_DATE_COLUMNS),
        **_doubles(settings.TRANSACTION_AMOUNT_COLUMNS),
    },
    nested_hints={
        "purchase_details__discounts": {"columns": _doubles(("amount",))},
    },
)
def transactions(run: Extraction) -> Iterator[list[dict[str, Any]]]:
    """One row per version of a transaction line (scd2 on `transaction_key`, which is
    transaction_id|transaction_line_item_id).

    scd2 for the same reason as licenses: refunds flip paymentStatus and Atlassian rewrites
    lines, and the history is what a vendor audits. `license_key` is added so that staging
    joins lines to licenses without repeating the identity rule.
    """
    state = dlt.current.resource_state()
    start = run.incremental_start(state.get("cursor"))
    flags = settings.TRANSACTION_FLAGS
    if start is None:
        plan = [
            (
                {**flags, **window_params(w)},
                f"transactions from {w.start}" + (f" to {w.end}" if w.end else ""),
            )
            for w in windows(run.first_day, run.today, settings.BACKFILL_WINDOW_MONTHS)
        ]
        for params, what in plan:
            run.exporter.start("sales/transactions", params, what)
        sources = [
            run.exporter.records("sales/transactions", params, what) for params, what in plan
        ]
        seen: set[str] | None = None
    else:
        query = {**flags, "lastUpdated": start.isoformat()}
        sources = [run.client.paginate("sales/transactions", "transactions", query)]
        # Pages can shift while records are rewritten; exports are snapshots and need no check.
        seen = set()
    newest = state.get("cursor")

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal newest
        for records in sources:
            for record in records:
                key = transaction_key(record)
                if seen is not None:
                    if key in seen:
                        continue
                    seen.add(key)
                newest = later(newest, record.get("lastUpdated"))
                record["transaction_key"] = key
                record["license_key"] = transaction_license_key(record)
                yield sort_nested_lists(record)

    yield from batched(rows())
    state["cursor"] = newest


@dlt.resource(
    name="feedback",
    write_disposition="merge",
    primary_key="row_hash",
    columns=_dates(settings.FEEDBACK_DATE_COLUMNS),
)
def feedback(run: Extraction) -> Iterator[list[dict[str, Any]]]:
    """One row per feedback event, keyed by a hash of the row (feedback has no id).

    merge, not append: the look-back re-reads days already loaded, and the hash makes those
    rows land on themselves. There is no async export for feedback: the list endpoint is read
    by date window.
    """
    state = dlt.current.resource_state()
    start = run.incremental_start(state.get("cursor"))
    if start is None:
        plan = windows(run.first_day, run.today, settings.BACKFILL_WINDOW_MONTHS)
    else:
        plan = [Window(start, None)]
    newest = state.get("cursor")

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal newest
        for window in plan:
            what = f"feedback from {window.start}"
            for record in run.client.paginate(
                "feedback/details", "feedback", window_params(window), what=what
            ):
                newest = later(newest, record.get("date"))
                yield {**record, "row_hash": row_hash(record)}

    yield from batched(rows())
    state["cursor"] = newest


@dlt.resource(
    name="marketing_attribution",
    write_disposition="merge",
    primary_key="row_hash",
    columns={"event_timestamp": {"data_type": "timestamp"}},
)
def marketing_attribution(run: Extraction) -> Iterator[list[dict[str, Any]]]:
    """One row per attribution event, keyed by a hash of the row (no id in the API).

    merge on the hash so the look-back window lands on rows already loaded. Only an async
    export serves attribution, so incremental runs export the look-back window too, widened by
    the 30 days by which attribution trails its eventTimestamp.
    """
    state = dlt.current.resource_state()
    start = (
        run.incremental_start(state.get("cursor"), settings.ATTRIBUTION_ARRIVES_LATE_DAYS)
        or run.first_day
    )
    newest = state.get("cursor")

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal newest
        params = {"startDate": start.isoformat()}
        for record in run.exporter.records(
            "marketing-attribution", params, what=f"marketing attribution from {start}"
        ):
            newest = later(newest, str(record.get("eventTimestamp") or "")[:10] or None)
            yield {**record, "row_hash": row_hash(record)}

    yield from batched(rows())
    state["cursor"] = newest


@dlt.resource(
    name="metric_aggregates",
    write_disposition="merge",
    columns={"period_start": {"data_type": "date"}, "count": {"data_type": "bigint"}},
)
def metric_aggregates(run: Extraction) -> Iterator[list[dict[str, Any]]]:
    """Atlassian's monthly churn, renewal and conversion figures per app, one count per row
    (metric, aggregation, period_start, addon_key, billing_period, conversion_type, series).

    Read whole every run (three small calls) and merged by deleting the periods re-read:
    Atlassian recomputes past periods as records are rewritten, so a trailing window could
    leave stale figures behind.
    """
    state = dlt.current.resource_state()
    params = {"startDate": first_of_month(run.first_day).isoformat()}
    rows: list[dict[str, Any]] = []
    for metric in settings.METRICS:
        query = {**params, **settings.METRIC_AGGREGATE_PARAMS[metric]}
        body = run.client.get_json(
            run.client.url(f"sales/metrics/{metric}"), query, what=f"{metric} figures"
        )
        rows.extend(flatten_metric_aggregates(metric, body or {}))
    yield rows
    state["cursor"] = max((r["period_start"] for r in rows if r["period_start"]), default=None)


@dlt.resource(
    name="metric_events",
    write_disposition="merge",
    primary_key="event_key",
    columns=_dates(settings.METRIC_EVENT_DATE_COLUMNS),
)
def metric_events(run: Extraction) -> Iterator[list[dict[str, Any]]]:
    """Atlassian's per-event details of churn, renewal and conversion (column `metric`); each
    row has `row_hash` (the whole event) and `event_key` (its identity: metric, app, license,
    date, transaction), on which it is merged.

    Incremental runs read the events of a trailing window of months, which replace every
    stored event of those months (an event Atlassian withdrew disappears), plus the events
    updated since the cursor whatever their date, which replace their earlier versions.
    """
    state = dlt.current.resource_state()
    start = run.events_from or run.first_day
    changed_since = run.incremental_start(state.get("cursor"))
    newest = state.get("cursor")
    queries = [{"startDate": start.isoformat()}]
    if changed_since is not None and run.events_from is not None:
        queries.append({"lastUpdated": changed_since.isoformat()})
    # 64-bit prefixes of the keys: a million events cost ~50 MB rather than ~150 MB.
    seen: set[int] = set()

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal newest
        for number, query in enumerate(queries):
            for metric in settings.METRICS:
                path = f"sales/metrics/{metric}/details"
                # The window is read with the one-request export (a large vendor's events are
                # tens of thousands of pages of 50); events updated since the cursor are few.
                what = f"{metric} events"
                events = (
                    exported_or_paged(run.client, path, "events", query, what)
                    if number == 0
                    else run.client.paginate(path, "events", query, what=what)
                )
                for event in events:
                    key = metric_event_key(metric, event)
                    short = int(key[:16], 16)
                    if short in seen:
                        continue
                    seen.add(short)
                    newest = later(newest, event.get("lastUpdated"))
                    day = event.get("eventDate")
                    month = iso(first_of_month(parse_date(day, "eventDate"))) if day else None
                    yield {
                        "metric": metric,
                        **event,
                        "period_start": month,
                        "event_key": key,
                        "row_hash": row_hash({"metric": metric, **event}),
                    }

    yield from batched(rows())
    state["cursor"] = newest

"""dlt source for the Atlassian Marketplace reporting API (dataset `raw_marketplace`).

Only the source and its resources live here, each with the reason for its write disposition;
what they read is in extraction.py, the pure rules in helpers.py, the endpoints in README.md.
Licenses and transactions keep every version Atlassian writes (scd2, merge key = the record's
identity, so an incremental run retires only the records it re-read). Keyless records
(feedback, attribution, metric events) are keyed by a hash of the row. Each resource keeps its
cursor in dlt's resource state, which dlt commits only together with the extracted data.
Several vendors share one dataset: every row (nested tables too) carries `vendor_id`, every key
includes it, and every merge or delete touches only the rows of the vendor being loaded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dlt
from dlt.common.normalizers.json.relational import (
    DataItemNormalizer,
    RelationalNormalizerConfig,
    RelationalNormalizerConfigPropagation,
)
from dlt.common.schema.typing import (
    TColumnName,
    TColumnSchema,
    TDeleteInsertStrategyDict,
    TScd2StrategyDict,
    TTableSchemaColumns,
)
from dlt.extract.decorators import get_source_schema
from dlt.extract.resource import DltResource

from pipelines.marketplace import extraction, settings
from pipelines.marketplace.client import MarketplaceClient
from pipelines.marketplace.exports import LEDGER_FILE, ExportLedger, ExportRunner
from pipelines.marketplace.extraction import Extraction, with_cursor
from pipelines.marketplace.helpers import apply_pii_policy, first_of_month, parse_date
from pipelines.marketplace.settings import VENDOR_COLUMN

Batches = Iterator[list[dict[str, Any]]]


def _dates(names: Sequence[str]) -> TTableSchemaColumns:
    return {name: TColumnSchema(name=name, data_type="date") for name in names}


def _doubles(names: Sequence[str]) -> TTableSchemaColumns:
    return {name: TColumnSchema(name=name, data_type="double") for name in names}


def _nullable(names: Sequence[str]) -> TTableSchemaColumns:
    """Columns that may be empty. Declared, not left to dlt's default, so that a schema in which
    an older bulk backfill marked one not null becomes nullable again (runner.relax_not_null then
    relaxes the tables)."""
    return {name: TColumnSchema(name=name, nullable=True) for name in names}


SCD2 = TScd2StrategyDict(disposition="merge", strategy="scd2")
# The scope of the rows replaced is set per run by the source (it depends on the window read).
DELETE_INSERT = TDeleteInsertStrategyDict(disposition="merge", strategy="delete-insert")


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
    pii: str = settings.DEFAULT_PII,
    pii_salt: str | None = None,
    bulk: bool = True,
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
        pii: Contact details "keep" (as sent), "hash" (HMAC-SHA256 with pii_salt) or "drop".
        pii_salt: The secret key of the hash (required with pii = "hash").
        bulk: Backfill licenses, transactions, attribution and metric events as Arrow
            tables parsed from the export files (False: record by record, the path
            incremental runs take).
        client: A ready MarketplaceClient (the runner passes the one it preflighted).
    """
    # Checked before any resource runs: a missing salt must not fail halfway through a run.
    apply_pii_policy({}, pii, pii_salt)
    # Nested tables (a transaction's discounts) get the vendor of their root row from dlt's
    # normalizer, so a child row says whose it is without a join.
    propagation = RelationalNormalizerConfigPropagation(
        root={TColumnName(VENDOR_COLUMN): TColumnName(VENDOR_COLUMN)}, tables={}
    )
    DataItemNormalizer.update_normalizer_config(
        get_source_schema(), RelationalNormalizerConfig(propagation=propagation)
    )
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
        pii=pii,
        pii_salt=pii_salt,
        bulk=bulk,
        vendor_id=vendor_id,
    )
    # Computed once, before any resource moves a cursor, so the rows read and the rows replaced
    # cover the same months.
    run.events_from = events_from = extraction.metric_events_start(run)
    # Every delete or retirement is scoped to this vendor's rows: the dataset holds others.
    own = f"{VENDOR_COLUMN} = '{vendor_id}'"
    events = metric_events(run)
    # Delete the stored events of the months re-read (an event Atlassian withdrew, say a
    # renewal a refund turned back, must disappear) and earlier versions of events re-read.
    events.apply_hints(
        write_disposition={
            **DELETE_INSERT,
            "destination_scope": f"{own} and (period_start >= '{events_from.isoformat()}' "
            "or event_key in (select event_key from {staging_table}))",
        }
    )
    aggregates = metric_aggregates(run)
    aggregates.apply_hints(
        write_disposition={
            **DELETE_INSERT,
            "destination_scope": f"{own} and "
            f"period_start >= '{first_of_month(first_day).isoformat()}'",
        }
    )
    versioned = [licenses(run), transactions(run)]
    attribution = marketing_attribution(run)
    others = [feedback(run), attribution, aggregates, events, load_days(run)]
    for resource, key in zip(versioned, ("license_key", "transaction_key"), strict=True):
        # The scd2 merge key is (vendor_id, key), written as a scope: dlt compiles a compound
        # merge_key to a concatenation that no index or join can use (and warns when a table
        # has both, so the resources declare none).
        resource.apply_hints(
            write_disposition={
                **SCD2,
                "destination_scope": f"{own} and {key} in (select {key} from {{staging_table}})",
            }
        )
    # The resources with a bulk path (licenses, transactions, attribution, metric events) get
    # the vendor in their record rule (extraction), before a row becomes Arrow; the rest here.
    for resource in others:
        if resource not in (attribution, events):
            resource.add_map(_stamped(vendor_id))
    return [*versioned, *others]


def _stamped(vendor_id: str) -> Any:
    """Adds the vendor's id to every record, in place (a copy per record would cost a large
    backfill a second pass over its dicts)."""

    def stamp(record: dict[str, Any]) -> dict[str, Any]:
        record[VENDOR_COLUMN] = vendor_id
        return record

    return stamp


@dlt.resource(
    name="licenses",
    write_disposition=SCD2,
    columns=_dates(settings.LICENSE_DATE_COLUMNS),
)
def licenses(run: Extraction) -> Batches:
    """One row per version of a license (scd2 on `license_key` within the vendor: the source
    scopes retirement to `vendor_id` and the license keys re-read).

    scd2 rather than plain merge because Atlassian rewrites licenses after the fact and a vendor
    must see what changed and when; the merge key makes an incremental run retire only the
    licenses it re-read, never the ones outside its window. The API returns some licenses
    twice (around the 2018-07 insights split, bug MP-557): one run keeps the first copy, and
    the windows are ordered so that it is the copy with data insights.
    """
    yield from with_cursor(
        run,
        lambda start, source: extraction.license_records(run, start, source),
        _updated,
        tables=lambda tracked: extraction.license_tables(run, tracked),
        reads=lambda start: extraction.license_reads(run, start),
    )


@dlt.resource(
    name="transactions",
    write_disposition=SCD2,
    columns={
        **_dates(settings.TRANSACTION_DATE_COLUMNS),
        **_doubles(settings.TRANSACTION_AMOUNT_COLUMNS),
        # A line's license id is optional in the API (addonLicenseId?, appEntitlementId?).
        **_nullable(("license_key",)),
    },
    nested_hints={
        "purchase_details__discounts": {"columns": _doubles(("amount",))},
    },
)
def transactions(run: Extraction) -> Batches:
    """One row per version of a transaction line (scd2 on `transaction_key`, which is
    transaction_id|transaction_line_item_id, within the vendor as for licenses).

    scd2 for the same reason as licenses: refunds flip paymentStatus and Atlassian rewrites
    lines, and the history is what a vendor audits. `license_key` is added so that staging
    joins lines to licenses without repeating the identity rule.
    """
    yield from with_cursor(
        run,
        lambda start, source: extraction.transaction_records(run, start, source),
        _updated,
        tables=lambda tracked: extraction.transaction_tables(run, tracked),
        reads=lambda start: extraction.transaction_reads(run, start),
    )


@dlt.resource(
    name="feedback",
    write_disposition="merge",
    primary_key=[VENDOR_COLUMN, "row_hash"],
    columns=_dates(settings.FEEDBACK_DATE_COLUMNS),
)
def feedback(run: Extraction) -> Batches:
    """One row per feedback event, keyed by a hash of the row (feedback has no id).

    merge, not append: the look-back re-reads days already loaded, and the hash makes those
    rows land on themselves. There is no async export for feedback: the list endpoint is read
    by date window.
    """
    yield from with_cursor(
        run, lambda start, _: extraction.feedback_records(run, start), lambda r: r.get("date")
    )


@dlt.resource(
    name="marketing_attribution",
    write_disposition="merge",
    primary_key=[VENDOR_COLUMN, "row_hash"],
    columns={"event_timestamp": TColumnSchema(data_type="timestamp")},
)
def marketing_attribution(run: Extraction) -> Batches:
    """One row per attribution event, keyed by a hash of the row (no id in the API).

    merge on the hash so the look-back window lands on rows already loaded. Only an async
    export serves attribution, so incremental runs export the look-back window too, widened by
    the 30 days by which attribution trails its eventTimestamp.
    """
    yield from with_cursor(
        run,
        lambda start, source: extraction.attribution_records(run, start, source),
        extraction.attribution_day,
        tables=lambda tracked: extraction.attribution_tables(run, tracked),
        reads=lambda start: extraction.attribution_reads(run, start),
        arrives_late_days=settings.ATTRIBUTION_ARRIVES_LATE_DAYS,
    )


@dlt.resource(
    name="metric_aggregates",
    write_disposition=DELETE_INSERT,
    columns={
        "period_start": TColumnSchema(data_type="date"),
        "count": TColumnSchema(data_type="bigint"),
    },
)
def metric_aggregates(run: Extraction) -> Batches:
    """Atlassian's monthly churn, renewal and conversion figures per app, one count per row
    (metric, aggregation, period_start, addon_key, billing_period, conversion_type, series).

    Read whole every run (three small calls) and merged by deleting the periods re-read
    (delete-insert, scoped to the months from the first day): Atlassian recomputes past periods
    as records are rewritten, so a trailing window could leave stale figures behind.
    """
    yield from with_cursor(
        run,
        lambda start, _: extraction.metric_aggregate_records(run, start),
        lambda r: r.get("period_start"),
    )


@dlt.resource(
    name="metric_events",
    write_disposition=DELETE_INSERT,
    primary_key=[VENDOR_COLUMN, "event_key"],
    columns=_dates(settings.METRIC_EVENT_DATE_COLUMNS),
)
def metric_events(run: Extraction) -> Batches:
    """Atlassian's per-event details of churn, renewal and conversion (column `metric`); each
    row has `row_hash` (the whole event) and `event_key` (its identity: metric, app, license,
    date, transaction).

    delete-insert, scoped per run: incremental runs read the events of a trailing window of
    months, which replace every stored event of those months (an event Atlassian withdrew
    disappears), plus the events updated since the cursor whatever their date, which replace
    their earlier versions by `event_key`.
    """
    yield from with_cursor(
        run,
        lambda start, source: extraction.metric_event_records(run, start, source),
        _updated,
        tables=lambda tracked: extraction.metric_event_tables(run, tracked),
        reads=lambda start: extraction.metric_event_reads(run, start),
    )


@dlt.resource(
    name=settings.LOAD_DAYS_RESOURCE,
    write_disposition="merge",
    primary_key=[VENDOR_COLUMN, "load_day"],
    columns=_dates(("load_day",)),
)
def load_days(run: Extraction) -> Iterator[dict[str, Any]]:
    """One row per day a run loaded, by the API's own clock (the Date header of its responses).

    dbt caps the default as_of_date at the latest of these days, so one record whose
    lastUpdated lies in the future cannot move as_of_date past the day the data was read (and
    turn pending renewals into cancellations). merge on the day: reruns land on the same row,
    and the row commits together with the data it dates.

    A day already loaded is not yielded again (its day is kept in the resource state, which
    commits with the load): the same row would land on itself, and a run that finds nothing
    else new then has nothing to load at all (runner.py skips the landing).
    """
    state = dlt.current.resource_state()
    day = extraction.load_day(run).isoformat()
    if state.get("day") != day:
        yield {"load_day": day}
        state["day"] = day


def _updated(record: dict[str, Any]) -> str | None:
    """The cursor of the records that carry lastUpdated (day granularity)."""
    return record.get("lastUpdated")

"""The metric endpoints' JSON: aggregate series and details events, from the ground-truth tables."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pipelines.simulator.ground_truth.tables import (
    IDENTITY_FIELDS,
    METRICS,
    MetricTables,
    identity,
    month_index,
    month_start,
)

BILLING_PERIODS = ("Monthly", "Annual")
CONVERSION_TYPES = ("Net New", "Upgrade")
# Average month length, so that 28..31 days is 1 month and 365 or 366 days is 12 (monthsValid).
DAYS_PER_MONTH = 365.2425 / 12
# (name of the denominator series, name of the numerator series, outcome the numerator counts)
SERIES_NAMES = {
    "churn": ("Customers", "Cancellations", "cancelled"),
    "renewal": ("Renewal opportunities", "Renewals", "renewed"),
}
TOTAL_NAMES = {"churn": "Churn", "renewal": "Renewal", "conversion": "Conversion"}


def _period_start(day: date, aggregation: str) -> date:
    """Return the start of the period holding `day`: first of month, or the ISO week's Monday."""
    if aggregation == "month":
        return day.replace(day=1)
    return day - timedelta(days=day.weekday())


def _periods(first: date, last: date, aggregation: str) -> Iterator[date]:
    """Yield every period start from `first` to `last`, both included."""
    current = first
    while current <= last:
        yield current
        if aggregation == "month":
            current = month_start(month_index(current) + 1)
        else:
            current += timedelta(days=7)


def aggregate_payload(
    tables: MetricTables,
    metric: str,
    aggregation: str = "week",
    start: date | None = None,
    end: date | None = None,
    group_by: str | None = None,
    addon_names: dict[str, str] | None = None,
) -> dict:
    """Render the JSON body of GET sales/metrics/{churn|renewal|conversion}.

    Every series lists every period from the first to the last period that holds a counted row
    for this metric (within `start`..`end`), zeros included, so all series share one date axis.
    Pending opportunities count nowhere.

    Args:
        tables: The computed tables.
        metric: `churn`, `renewal` or `conversion`.
        aggregation: `week` (ISO weeks, Monday) or `month` (first of month).
        start: Keep the periods whose start date is on or after this day.
        end: Keep the periods whose start date is on or before this day.
        group_by: `conversionType` splits the conversion series by conversion type.
        addon_names: addon_key -> display name; the key stands in for a missing name.

    Returns:
        `{"total", "addons"}` shaped as the API's CalculatedChurn, CalculatedRenewals or
        CalculatedConversions; the server adds `_links`, which needs its own URL.

    Raises:
        ValueError: On an unknown metric, aggregation or group_by.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}")
    if aggregation not in ("week", "month"):
        raise ValueError("aggregation must be 'week' or 'month'")
    if group_by not in (None, "conversionType"):
        raise ValueError("group_by must be None or 'conversionType'")
    names = addon_names or {}
    if metric == "conversion":
        rows: list[Any] = tables.evaluation_rows
        series_names: tuple[str, str] = ("Evaluations", "Conversions")
        groups: tuple[str | None, ...] = CONVERSION_TYPES if group_by else (None,)
    else:
        rows = tables.opportunity_rows
        denominator, numerator, outcome = SERIES_NAMES[metric]
        series_names = (denominator, numerator)
        groups = BILLING_PERIODS

    # One pass: counts per (addon or None for the total, group, series, period).
    counts: dict[tuple, int] = defaultdict(int)
    uniques: dict[tuple, set[str]] = defaultdict(set)
    periods: dict[date, date] = {}
    for row in rows:
        day = row.start_date if metric == "conversion" else row.end_date
        period = periods.get(day)
        if period is None:
            period = periods[day] = _period_start(day, aggregation)
        if (start is not None and period < start) or (end is not None and period > end):
            continue
        if metric == "conversion":
            group = row.conversion_type if group_by else None
            hit = row.is_converted
        else:
            if row.outcome == "pending":
                continue  # neither lost nor kept yet
            group = row.billing_period
            hit = row.outcome == outcome
        for scope in (None, row.addon_key):
            counts[(scope, group, series_names[0], period)] += 1
            if hit:
                counts[(scope, group, series_names[1], period)] += 1
            if metric == "churn":
                uniques[(scope, group, series_names[0])].add(row.license_key)
                if hit:
                    uniques[(scope, group, series_names[1])].add(row.license_key)
    kept = {key[3] for key in counts}
    axis = [(p, p.isoformat()) for p in _periods(min(kept), max(kept), aggregation)] if kept else []

    def series_item(scope: str | None, group: str | None, name: str) -> dict:
        item: dict[str, Any] = {"name": name}
        if metric == "conversion" and group is not None:
            item["conversionType"] = group
        if metric == "churn":
            item["uniqueTotal"] = len(uniques.get((scope, group, name), ()))
        item["elements"] = [
            {"date": iso, "count": counts.get((scope, group, name, p), 0)} for p, iso in axis
        ]
        return item

    def body(scope: str | None) -> dict:
        if metric == "conversion":
            return {
                "series": [
                    series_item(scope, group, name) for name in series_names for group in groups
                ]
            }
        return {
            "datasets": [
                {"name": group, "series": [series_item(scope, group, n) for n in series_names]}
                for group in groups
            ]
        }

    addon_keys = sorted({row.addon_key for row in rows})
    return {
        "total": {"name": TOTAL_NAMES[metric], **body(None)},
        "addons": [
            {"addonKey": key, "name": names.get(key, key), **body(key)} for key in addon_keys
        ],
    }


_UPDATED = IDENTITY_FIELDS.index("lastUpdated")


@dataclass(frozen=True)
class EventWindow:
    """The dates a details query keeps, checked before an event is rendered (the query's own
    filter still runs on what is rendered: this only skips what it would drop)."""

    start: date | None = None
    end: date | None = None
    updated_since: date | None = None

    def keeps(self, event_date: date, last_updated: str) -> bool:
        if self.start is not None and event_date < self.start:
            return False
        if self.end is not None and event_date > self.end:
            return False
        return self.updated_since is None or last_updated >= self.updated_since.isoformat()


def details_events(
    tables: MetricTables,
    metric: str,
    licenses_by_key: dict[str, dict] | None = None,
    window: EventWindow | None = None,
) -> list[dict]:
    """Render the event records of GET sales/metrics/{metric}/details.

    churn: one event per cancelled opportunity; renewal: one per renewed opportunity (both dated
    at the end of the term that ended, whose dates `licenseDetails` shows; a renewal carries the
    renewing transaction); conversion: one per converted evaluation, dated at the converting
    sale, with that sale's transaction and term dates.

    Args:
        tables: The computed tables.
        metric: `churn`, `renewal` or `conversion`.
        licenses_by_key: license_key -> license record; its identity fields win over the ones
            kept from the records `compute_metrics` saw.
        window: only the events it keeps are rendered (a query's startDate, endDate and
            lastUpdated: a large vendor's look-back asks for a few thousand of a million).

    Returns:
        Events sorted by (eventDate, addonKey, license_key).

    Raises:
        ValueError: On an unknown metric.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}")
    overrides = licenses_by_key or {}
    as_of = tables.as_of.isoformat()
    out = []
    for event in tables.events.get(metric, []):
        key = event.license_key
        record = overrides.get(key)
        values = identity(record) if record is not None else tables.identities.get(key)
        values = values or (None,) * len(IDENTITY_FIELDS)
        last_updated = str(values[_UPDATED] or as_of)[:10]
        if window is not None and not window.keeps(event.event_date, last_updated):
            continue
        ident = dict(zip(IDENTITY_FIELDS, values, strict=True))
        start, end = event.maintenance_start_date, event.maintenance_end_date
        details: dict[str, Any] = {"licenseId": ident["licenseId"] or key}
        for name in ("appEntitlementId", "appEntitlementNumber", "cloudId"):
            if ident[name]:
                details[name] = ident[name]
        details["maintenanceStartDate"] = start.isoformat()
        details["maintenanceEndDate"] = end.isoformat()
        details["monthsValid"] = round((end - start).days / DAYS_PER_MONTH)
        item: dict[str, Any] = {
            "addonKey": event.addon_key,
            "addonName": ident["addonName"] or event.addon_key,
            "hosting": "Cloud",
            "lastUpdated": last_updated,
            "eventDate": event.event_date.isoformat(),
        }
        if event.transaction_id:
            item["transactionId"] = event.transaction_id
        item["licenseDetails"] = details
        out.append(item)
    return out

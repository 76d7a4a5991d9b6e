"""Record keys, row hashes, date windows and metric flattening: pure functions, no I/O."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import orjson

from pipelines.errors import UserError
from pipelines.marketplace import settings

# ---- identities (METRICS.md, "Identities") ----------------------------------------------------


def license_key(license: Mapping[str, Any]) -> str | None:
    """Cloud: appEntitlementId, else addonLicenseId; Server/Data Center: addonLicenseId.

    Not "entitlement number else SEN": Data Center licenses gained entitlement numbers in 2025
    and that key splits one license in two.
    """
    if license.get("hosting") == "Cloud":
        return license.get("appEntitlementId") or license.get("addonLicenseId")
    return license.get("addonLicenseId")


def transaction_license_key(transaction: Mapping[str, Any]) -> str | None:
    """The license a transaction line belongs to; hosting sits in purchaseDetails there."""
    hosting = (transaction.get("purchaseDetails") or {}).get("hosting")
    if hosting == "Cloud":
        return transaction.get("appEntitlementId") or transaction.get("addonLicenseId")
    return transaction.get("addonLicenseId")


def transaction_key(transaction: Mapping[str, Any]) -> str:
    """One column for (transactionId, transactionLineItemId): scd2's merge key is matched as
    one value, and a plain concatenation of the two could make two lines collide."""
    return f"{transaction.get('transactionId')}|{transaction.get('transactionLineItemId')}"


def has_insights(license: Mapping[str, Any]) -> bool:
    """True for the copy fetched with withDataInsights (ma keeps the copy that has it)."""
    return license.get("evaluationOpportunitySize") is not None


def _canonical(value: Any) -> Any:
    """Nested arrays sorted (by their canonical encoding) so that order alone changes no hash:
    the API's array order is unstable (proratedDetails, for one)."""
    if isinstance(value, Mapping):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        items = [_canonical(item) for item in value]
        return sorted(items, key=lambda item: orjson.dumps(item, option=orjson.OPT_SORT_KEYS))
    return value


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(value: Mapping[str, Any]) -> bool:
    """True when `value` is dicts and scalars only (no array anywhere): then its canonical form
    is itself. Exact type tests; most records (every metric event) take this path, and the
    canonical copy was 60% of a no-op run's metric-event re-read (cProfile)."""
    if type(value) is not dict:
        return False
    for item in value.values():
        kind = type(item)
        if kind is dict:
            if not _plain(item):
                return False
        elif kind not in _SCALARS:
            return False
    return True


def row_hash(record: Mapping[str, Any]) -> str:
    """Key of a record that has no id (feedback, attribution, metric events)."""
    canonical = record if _plain(record) else _canonical(record)
    encoded = orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()


class ContentDigest:
    """What a set of records holds, whatever their order: the sum of their 128-bit hashes.

    Pages can come back in another order with the same content; a sum does not see order.
    """

    def __init__(self) -> None:
        self.total = 0

    def add(self, record: Mapping[str, Any]) -> None:
        encoded = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
        value = int.from_bytes(hashlib.blake2b(encoded, digest_size=16).digest(), "big")
        self.total = (self.total + value) % (1 << 128)

    def hexdigest(self) -> str:
        return f"{self.total:032x}"


def metric_event_key(metric: str, event: Mapping[str, Any]) -> str:
    """Identity of a metric event, which has no id: one event per license, app, date and
    transaction within a metric. Unlike `row_hash` it survives a bumped lastUpdated."""
    details = event.get("licenseDetails") or {}
    identity = {
        "metric": metric,
        "addonKey": event.get("addonKey"),
        "eventDate": event.get("eventDate"),
        "transactionId": event.get("transactionId"),
        "licenseId": details.get("licenseId"),
        "appEntitlementId": details.get("appEntitlementId"),
    }
    return row_hash(identity)


# ---- PII policy --------------------------------------------------------------------------------


def pii_hash(value: Any, salt: str, field: str = "") -> str:
    """HMAC-SHA256 of a contact value keyed by the salt; emails are compared case-blind."""
    text = str(value).strip()
    if field == "email":
        text = text.casefold()
    return hmac.new(salt.encode(), text.encode(), hashlib.sha256).hexdigest()


def _protected(values: Mapping[str, Any], fields: Iterable[str], mode: str, salt: str) -> dict:
    out = dict(values)
    for field in fields:
        if field not in out:
            continue
        value = out[field]
        if mode == "drop":
            del out[field]
        elif value is not None and value != settings.PII_FORGOTTEN and value != "":
            out[field] = pii_hash(value, salt, field)
    return out


def apply_pii_policy(record: Mapping[str, Any], mode: str, salt: str | None = None) -> dict:
    """The record with its contact details kept, hashed or dropped (settings.PII_*); the
    record passed in is not changed. `keep` returns it as is; `hash` needs the salt.

    The one implementation of the policy on records; settings.PII_COLUMNS names the same
    fields as columns for a path that works on tables.
    """
    if mode == "keep":
        return record if isinstance(record, dict) else dict(record)
    if mode not in settings.PII_MODES:
        raise UserError(f"pii must be keep, hash or drop, not {mode!r}.")
    if mode == "hash" and not salt:
        raise UserError(
            'pii = "hash" needs a pii_salt: put a long random secret in .dlt/secrets.toml '
            "under [sources.marketplace] or set SOURCES__MARKETPLACE__PII_SALT."
        )
    key = salt or ""
    out = _protected(record, settings.PII_RECORD_FIELDS, mode, key)
    for holder in settings.PII_CONTACT_HOLDERS:
        details = out.get(holder)
        if not isinstance(details, Mapping):
            continue
        details = dict(details)
        for contact in settings.PII_CONTACTS:
            person = details.get(contact)
            if isinstance(person, Mapping):
                details[contact] = _protected(person, settings.PII_CONTACT_FIELDS, mode, key)
        out[holder] = details
    return out


# ---- dates -------------------------------------------------------------------------------------


def parse_date(value: str | dt.date, what: str) -> dt.date:
    """A YYYY-MM-DD date, or a UserError naming the setting or option it came from."""
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise UserError(f"{what} must be a date like 2024-01-31, not {value!r}.") from None


def past_date(value: str | dt.date, what: str, today: dt.date | None = None) -> dt.date:
    """A date that is not after today: a backfill from the future reads nothing and would
    replace the periods it claims to cover with nothing."""
    day = parse_date(value, what)
    today = today or dt.date.today()
    if day > today:
        raise UserError(f"{what} {day} is in the future: give a day on or before {today}.")
    return day


def iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None


def add_months(day: dt.date, months: int) -> dt.date:
    """Same day-of-month `months` later (or earlier), clamped to the month's last day."""
    month_index = day.year * 12 + day.month - 1 + months
    year, month = divmod(month_index, 12)
    month += 1
    next_first = dt.date(year + (month == 12), month % 12 + 1, 1)
    last_day = (next_first - dt.timedelta(days=1)).day
    return dt.date(year, month, min(day.day, last_day))


def first_of_month(day: dt.date) -> dt.date:
    return day.replace(day=1)


class Window(NamedTuple):
    """A query window; `end` is inclusive, None means open-ended (up to the API's today)."""

    start: dt.date
    end: dt.date | None
    insights: bool = True


def windows(start: dt.date, today: dt.date, months: int) -> list[Window]:
    """Consecutive windows of `months` from `start`; the last is open-ended so that nothing
    after our clock's today (the API's day may be ahead of ours) is left out."""
    result: list[Window] = []
    current = start
    while True:
        following = add_months(current, months)
        if following > today:
            result.append(Window(current, None))
            return result
        result.append(Window(current, following - dt.timedelta(days=1)))
        current = following


def license_windows(start: dt.date) -> list[Window]:
    """Licenses from `start`: withDataInsights only applies from 2018-07-01, so the part before
    is a separate export without it. The insights window comes first: a license returned by
    both keeps the copy with insights (the first one seen wins)."""
    if start >= settings.INSIGHTS_START:
        return [Window(start, None, True)]
    before = settings.INSIGHTS_START - dt.timedelta(days=1)
    return [Window(settings.INSIGHTS_START, None, True), Window(start, before, False)]


def window_params(window: Window) -> dict[str, str]:
    params = {"startDate": window.start.isoformat()}
    if window.end is not None:
        params["endDate"] = window.end.isoformat()
    return params


def lookback_start(cursor: str | dt.date, lookback_days: int) -> dt.date:
    """Where an incremental run starts reading: the saved cursor minus the look-back (records
    are rewritten after the fact and their dates have day granularity)."""
    return parse_date(cursor, "the saved cursor") - dt.timedelta(days=max(0, lookback_days))


def later(a: str | None, b: str | None) -> str | None:
    """The later of two ISO dates (either may be missing)."""
    if not a:
        return b
    if not b:
        return a
    return max(a, b)


def earlier(a: str | None, b: str | None) -> str | None:
    """The earlier of two ISO dates (either may be missing)."""
    if not a:
        return b
    if not b:
        return a
    return min(a, b)


# ---- Atlassian's metric figures -------------------------------------------------------------


def flatten_metric_aggregates(metric: str, body: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """One row per (period, app, billing period, conversion type, series) with its count.

    Churn and renewal nest series under datasets named by billing period; conversion has a
    flat series list with a conversionType each. Only the per-app figures are kept: the total
    is their sum (and `uniqueTotal`, a distinct count, cannot be summed anyway).
    """
    for addon in body.get("addons") or []:
        addon_key = addon.get("addonKey")
        groups = addon.get("datasets")
        if groups is None:
            groups = [{"name": None, "series": addon.get("series") or []}]
        for group in groups:
            for series in group.get("series") or []:
                for element in series.get("elements") or []:
                    yield {
                        "metric": metric,
                        "aggregation": "month",
                        "period_start": element.get("date"),
                        "addon_key": addon_key,
                        "billing_period": group.get("name"),
                        "conversion_type": series.get("conversionType"),
                        "series": series.get("name"),
                        "count": element.get("count"),
                    }


def batched(
    records: Iterable[dict[str, Any]], size: int = settings.BATCH_SIZE
) -> Iterator[list[dict[str, Any]]]:
    """Lists of records: dlt processes a list per step much faster than one item per step."""
    batch: list[dict[str, Any]] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def sort_nested_lists(record: dict[str, Any]) -> dict[str, Any]:
    """The record, in place, with every nested array in a stable order: the API's order is not
    stable (proratedDetails), and scd2 would record a reordering as a new version. Walks only
    containers: a full canonical copy per record cost a third of the extraction time. Exact
    type tests (parsed JSON holds plain dicts and lists): 1.6x faster than isinstance."""
    for key, value in record.items():
        kind = type(value)
        if kind is dict:
            sort_nested_lists(value)
        elif kind is list:
            for item in value:
                if type(item) is dict:
                    sort_nested_lists(item)
            if len(value) > 1:
                record[key] = sorted(value, key=_sort_key)
    return record


def _sort_key(item: Any) -> bytes:
    return orjson.dumps(item, option=orjson.OPT_SORT_KEYS)

"""Ground-truth churn, renewal, conversion and MRR tables computed from API-shaped records."""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import accumulate
from typing import Any, NamedTuple

PAID_SALE_TYPES = frozenset({"New", "Renewal", "Upgrade", "Downgrade"})
METRICS = ("churn", "renewal", "conversion")
BILLING_PERIODS = ("Monthly", "Annual")
CONVERSION_TYPES = ("Net New", "Upgrade")
AMOUNT_BASES = {"vendor_amount": "vendorAmount", "purchase_price": "purchasePrice"}
# Half a cent: MRR is amount / 12, so two equal terms can differ by float noise only.
MOVEMENT_TOLERANCE = 0.005
# Average month length, so that 28..31 days is 1 month and 365 or 366 days is 12 (monthsValid).
DAYS_PER_MONTH = 365.2425 / 12
# (name of the denominator series, name of the numerator series, outcome the numerator counts)
SERIES_NAMES = {
    "churn": ("Customers", "Cancellations", "cancelled"),
    "renewal": ("Renewal opportunities", "Renewals", "renewed"),
}
TOTAL_NAMES = {"churn": "Churn", "renewal": "Renewal", "conversion": "Conversion"}
IDENTITY_FIELDS = (
    "licenseId",
    "appEntitlementId",
    "appEntitlementNumber",
    "cloudId",
    "addonName",
    "lastUpdated",
)

# Dates repeat millions of times in a large vendor: parse each distinct string once.
_DATE_CACHE: dict[str, date | None] = {}


@dataclass(frozen=True)
class MetricVars:
    """The tunable rules of METRICS.md (dbt vars), with their defaults.

    Attributes:
        grace_days: Days after a term's end within which a new term still counts as a renewal.
        conversion_window_days: Days after an evaluation's end within which a New sale converts.
        amount_basis: `vendor_amount` or `purchase_price`: which amount a term sums.
    """

    grace_days: int = 7
    conversion_window_days: int = 30
    amount_basis: str = "vendor_amount"


class TermRow(NamedTuple):
    """One row of `MetricTables.terms`."""

    license_key: str
    addon_key: str
    hosting: str
    start_date: date
    end_date: date
    billing_period: str
    amount: float
    purchase_price: float
    is_refunded: bool


class OpportunityRow(NamedTuple):
    """One row of `MetricTables.renewal_opportunities`."""

    license_key: str
    addon_key: str
    end_date: date
    month: date
    billing_period: str
    outcome: str
    renewal_start_date: date | None
    renewal_transaction_id: str | None


class EvaluationRow(NamedTuple):
    """One row of `MetricTables.evaluations`."""

    license_key: str
    addon_key: str
    start_date: date
    end_date: date
    is_converted: bool
    conversion_sale_date: date | None
    conversion_transaction_id: str | None
    days_to_convert: int | None
    conversion_type: str
    is_open: bool


class EventRow(NamedTuple):
    """What a details event needs besides the license's identity."""

    event_date: date
    addon_key: str
    license_key: str
    transaction_id: str | None
    maintenance_start_date: date
    maintenance_end_date: date


class Spine(NamedTuple):
    """One license's MRR months: the term valued at each month's snapshot day, or None."""

    license_key: str
    addon_key: str
    first_month: int  # `_month_index` of the first month
    terms: list[_Term | None]


@dataclass
class MetricTables:
    """Every ground-truth table as of one day.

    The per-license tables are kept as compact rows (`*_rows`, `spines`) and turned into lists of
    dicts on first access: a large vendor has tens of millions of MRR months, and the server only
    ever needs the aggregates and the events. `events` and `identities` keep what
    `details_events` needs.
    """

    as_of: date
    churn: list[dict] = field(default_factory=list)
    renewal: list[dict] = field(default_factory=list)
    conversion: list[dict] = field(default_factory=list)
    mrr: list[dict] = field(default_factory=list)
    term_rows: list[TermRow] = field(default_factory=list, repr=False)
    opportunity_rows: list[OpportunityRow] = field(default_factory=list, repr=False)
    evaluation_rows: list[EvaluationRow] = field(default_factory=list, repr=False)
    spines: list[Spine] = field(default_factory=list, repr=False)
    events: dict[str, list[EventRow]] = field(default_factory=dict, repr=False)
    identities: dict[str, tuple] = field(default_factory=dict, repr=False)
    _dicts: dict[str, list[dict]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def terms(self) -> list[dict]:
        """license_key, addon_key, hosting, start_date, end_date, billing_period, amount, ..."""
        return self._as_dicts("terms", self.term_rows)

    @property
    def renewal_opportunities(self) -> list[dict]:
        """license_key, addon_key, end_date, month, billing_period, outcome, renewal_*."""
        return self._as_dicts("renewal_opportunities", self.opportunity_rows)

    @property
    def evaluations(self) -> list[dict]:
        """license_key, addon_key, start_date, end_date, is_converted, conversion_*, ..."""
        return self._as_dicts("evaluations", self.evaluation_rows)

    @property
    def mrr_movements(self) -> list[dict]:
        """month, license_key, addon_key, mrr, prior_mrr, movement_type, movement_amount."""
        rows = self._dicts.get("mrr_movements")
        if rows is None:
            rows = [row for spine in self.spines for row in _movement_rows(spine)]
            # Stable sort: licenses stay in key order within a month.
            rows.sort(key=lambda row: row["month"])
            self._dicts["mrr_movements"] = rows
        return rows

    def _as_dicts(self, name: str, rows: list[tuple]) -> list[dict]:
        """Turn compact rows into dicts once, and keep them."""
        dicts = self._dicts.get(name)
        if dicts is None:
            dicts = self._dicts[name] = [row._asdict() for row in rows]  # type: ignore[attr-defined]
        return dicts


@dataclass(slots=True)
class _Term:
    """One (license_key, maintenance start, maintenance end) while it is being computed."""

    start: date
    end: date
    latest: tuple  # ordering key of the latest paid transaction: (saleDate, lineItemId, txId)
    addon_key: str
    hosting: str
    billing_period: str
    amount: float
    purchase_price: float
    is_refunded: bool
    first_paid: tuple  # (saleDate, lineItemId, txId) of the earliest paid transaction
    monthly: float  # its MRR: amount / 12 for Annual, amount for Monthly
    units: int  # the same in twelfths of a cent, so that app totals add up exactly


def license_key(record: dict) -> str:
    """Return the license identity of a license or transaction record (METRICS.md "Identities").

    Args:
        record: A v2 license record, or a transaction record (its hosting is read from
            `purchaseDetails.hosting`).

    Returns:
        `appEntitlementId` for Cloud when present, else `addonLicenseId`.
    """
    hosting = record.get("hosting") or (record.get("purchaseDetails") or {}).get("hosting")
    if hosting == "Cloud" and record.get("appEntitlementId"):
        return record["appEntitlementId"]
    return record["addonLicenseId"]


def _to_date(value: Any) -> date | None:
    """Parse an API date ("YYYY-MM-DD", maybe with a time); None when absent or not a date."""
    if value is None or isinstance(value, date):
        return value
    try:
        return _DATE_CACHE[value]
    except KeyError:
        pass
    try:
        parsed: date | None = date.fromisoformat(str(value)[:10])
    except ValueError:
        # Insight fields such as evaluationStartDate are free strings and may say "NA".
        parsed = None
    _DATE_CACHE[value] = parsed
    return parsed


def _month_index(day: date) -> int:
    """Return a month number that increases by one per calendar month."""
    return day.year * 12 + day.month - 1


def _month_start(index: int) -> date:
    """Return the first day of the month numbered by `_month_index`."""
    return date(index // 12, index % 12 + 1, 1)


def _month_end(index: int) -> date:
    """Return the last day of the month numbered by `_month_index`."""
    return _month_start(index + 1) - timedelta(days=1)


def _rate(numerator: int, denominator: int) -> float | None:
    """Return numerator / denominator, or None when the denominator is 0."""
    return numerator / denominator if denominator else None


def _identity(record: dict) -> tuple:
    """Keep the fields of a license or transaction record that a details event shows."""
    return tuple(record.get(name) for name in IDENTITY_FIELDS)


def _movement(mrr: float, prior: float, had_mrr: bool) -> str:
    """Classify one license's move from the prior month's MRR to this month's."""
    if mrr > 0 and prior > 0:
        if mrr - prior > MOVEMENT_TOLERANCE:
            return "expansion"
        if mrr - prior < -MOVEMENT_TOLERANCE:
            return "contraction"
        return "unchanged"
    if mrr > 0:
        return "reactivation" if had_mrr else "new"
    if prior > 0:
        return "churn"
    return "unchanged"


def _movement_rows(spine: Spine) -> Iterator[dict]:
    """Yield the mrr_movements rows of one license."""
    prior = 0.0
    had_mrr = False
    for offset, term in enumerate(spine.terms):
        mrr = term.monthly if term is not None else 0.0
        yield {
            "month": _month_start(spine.first_month + offset),
            "license_key": spine.license_key,
            "addon_key": spine.addon_key,
            "mrr": mrr,
            "prior_mrr": prior,
            "movement_type": _movement(mrr, prior, had_mrr),
            "movement_amount": mrr - prior,
        }
        had_mrr = had_mrr or mrr > 0
        prior = mrr


def compute_metrics(
    licenses: Iterable[dict],
    transactions: Iterable[dict],
    as_of: date | None = None,
    params: MetricVars = MetricVars(),
) -> MetricTables:
    """Compute every METRICS.md table from v2 license and transaction records.

    Args:
        licenses: v2 license records (camelCase dicts).
        transactions: v2 transaction line records (camelCase dicts).
        as_of: The day the data describes; default the latest `lastUpdated` in the records.
        params: The tunable rules.

    Returns:
        The tables, each sorted by its grain.

    Raises:
        ValueError: On an unknown `amount_basis`.
    """
    if params.amount_basis not in AMOUNT_BASES:
        raise ValueError(f"amount_basis must be one of {sorted(AMOUNT_BASES)}")
    basis_field = AMOUNT_BASES[params.amount_basis]
    latest_update: date | None = None
    updated_at = IDENTITY_FIELDS.index("lastUpdated")

    # Evaluations: (license_key, start) -> [addon_key, end]; license identities for details.
    eval_found: dict[tuple[str, date], list] = {}
    identities: dict[str, tuple] = {}
    for lic in licenses:
        updated = _to_date(lic.get("lastUpdated"))
        if updated is not None and (latest_update is None or updated > latest_update):
            latest_update = updated
        if lic.get("hosting") != "Cloud":
            continue
        key = license_key(lic)
        known = identities.get(key)
        if known is None or (lic.get("lastUpdated") or "") > (known[updated_at] or ""):
            identities[key] = _identity(lic)
        forms = []
        if str(lic.get("licenseType") or "").upper() == "EVALUATION":
            forms.append((lic.get("maintenanceStartDate"), lic.get("maintenanceEndDate")))
        if lic.get("evaluationStartDate"):
            forms.append((lic.get("evaluationStartDate"), lic.get("evaluationEndDate")))
        for start_raw, end_raw in forms:
            start = _to_date(start_raw)
            if start is None:
                continue
            end = _to_date(end_raw)
            found = eval_found.get((key, start))
            if found is None:
                eval_found[(key, start)] = [lic["addonKey"], end]
            elif end is not None and (found[1] is None or end > found[1]):
                found[1] = end

    # One compact tuple per transaction line, grouped by license.
    by_key: dict[str, list[tuple]] = defaultdict(list)
    tx_identities: dict[str, tuple] = {}
    for tx in transactions:
        updated = _to_date(tx.get("lastUpdated"))
        if updated is not None and (latest_update is None or updated > latest_update):
            latest_update = updated
        pd = tx["purchaseDetails"]
        key = license_key(tx)
        hosting = pd.get("hosting")
        if hosting == "Cloud" and key not in identities:
            known = tx_identities.get(key)
            if known is None or (tx.get("lastUpdated") or "") > (known[updated_at] or ""):
                tx_identities[key] = _identity(tx)
        by_key[key].append(
            (
                _to_date(pd["saleDate"]),
                str(tx.get("transactionLineItemId", "")),
                str(tx.get("transactionId", "")),
                pd.get("saleType"),
                float(pd.get("purchasePrice") or 0.0),
                float(pd.get(basis_field) or 0.0),
                pd.get("billingPeriod"),
                _to_date(pd.get("maintenanceStartDate")),
                _to_date(pd.get("maintenanceEndDate")),
                tx["addonKey"],
                hosting,
            )
        )
    for key, ident in tx_identities.items():
        identities.setdefault(key, ident)
    del tx_identities

    if as_of is None:
        as_of = latest_update or date.today()

    evals_by_key: dict[str, list[tuple[date, date | None, str]]] = defaultdict(list)
    for (key, start), (addon_key, end) in eval_found.items():
        if start <= as_of:
            evals_by_key[key].append((start, end, addon_key))
    del eval_found

    tables = MetricTables(as_of=as_of)
    builder = _Builder(tables, params)
    for key in sorted(set(by_key) | set(evals_by_key)):
        builder.add_license(key, by_key.pop(key, ()), evals_by_key.get(key, ()))
    builder.finish()

    event_keys = {event.license_key for events in tables.events.values() for event in events}
    tables.identities = {key: identities[key] for key in event_keys if key in identities}
    return tables


class _Builder:
    """Accumulates the per-license results into the tables, one license at a time."""

    def __init__(self, tables: MetricTables, params: MetricVars) -> None:
        """Prepare empty accumulators.

        Args:
            tables: The tables to fill; `as_of` already set.
            params: The tunable rules.
        """
        self.tables = tables
        self.as_of = tables.as_of
        self.as_of_index = _month_index(tables.as_of)
        self.grace = timedelta(days=params.grace_days)
        self.window = timedelta(days=params.conversion_window_days)
        self.snapshots: dict[int, date] = {}
        # (month index, addon) -> [mrr, new, expansion, contraction, churn, reactivation] in
        # twelfths of a cent, then the paying licenses
        self.mrr_acc: dict[tuple[int, str], list[int]] = {}
        # addon -> its first MRR month: its rows run from there to the as_of month
        self.addon_first: dict[str, int] = {}
        tables.events = {metric: [] for metric in METRICS}

    def _snapshot(self, index: int) -> date:
        """Return the MRR snapshot day of a month: least(last day of the month, as_of)."""
        day = self.snapshots.get(index)
        if day is None:
            day = self.snapshots[index] = min(_month_end(index), self.as_of)
        return day

    def add_license(
        self, key: str, lines: Sequence[tuple], evaluations: Sequence[tuple[date, date | None, str]]
    ) -> None:
        """Compute one license's terms, opportunities, evaluations and MRR rows.

        Args:
            key: The license_key.
            lines: Its transaction tuples (as built by `compute_metrics`).
            evaluations: Its (start, end, addon_key) evaluations.
        """
        terms = self._terms(key, lines)
        counted = sorted((t for t in terms if not t.is_refunded), key=lambda t: (t.start, t.latest))
        cloud = [t for t in counted if t.hosting == "Cloud"]
        if cloud:
            self._opportunities(key, cloud)
        if evaluations:
            self._evaluations(key, counted, lines, evaluations)
        if counted:
            self._mrr(key, counted)

    def _terms(self, key: str, lines: Sequence[tuple]) -> list[_Term]:
        """Group paid lines and refunds into terms and append them to the terms table."""
        paid: dict[tuple[date, date], list[tuple]] = defaultdict(list)
        refunds: dict[tuple[date, date], list[tuple]] = defaultdict(list)
        for line in lines:
            sale, _, _, sale_type, price, _, _, start, end = line[:9]
            if sale is None or sale > self.as_of or start is None or end is None:
                continue
            if sale_type in PAID_SALE_TYPES and price > 0:
                paid[(start, end)].append(line)
            elif sale_type == "Refund":
                refunds[(start, end)].append(line)
        terms = []
        for (start, end), paid_lines in paid.items():
            both = paid_lines + refunds.get((start, end), [])
            # Round after summing: inputs are cents, and this removes order-dependent float noise.
            amount = round(math.fsum(line[5] for line in both), 2)
            purchase_price = round(math.fsum(line[4] for line in both), 2)
            latest = max(paid_lines, key=lambda line: line[:3])
            first = min(paid_lines, key=lambda line: line[:3])
            annual = latest[6] == "Annual"
            cents = round(amount * 100)
            terms.append(
                _Term(
                    start=start,
                    end=end,
                    latest=latest[:3],
                    addon_key=latest[9],
                    hosting=latest[10],
                    billing_period=latest[6],
                    amount=amount,
                    purchase_price=purchase_price,
                    is_refunded=purchase_price <= 0,
                    first_paid=first[:3],
                    monthly=amount / 12 if annual else amount,
                    units=cents if annual else cents * 12,
                )
            )
        terms.sort(key=lambda t: (t.start, t.end))
        self.tables.term_rows.extend(
            TermRow(
                key,
                t.addon_key,
                t.hosting,
                t.start,
                t.end,
                t.billing_period,
                t.amount,
                t.purchase_price,
                t.is_refunded,
            )
            for t in terms
        )
        return terms

    def _opportunities(self, key: str, cloud: list[_Term]) -> None:
        """Append the renewal opportunities of one license's counted Cloud terms."""
        starts = [t.start for t in cloud]
        max_end = list(accumulate((t.end for t in cloud), max))
        ending: dict[date, list[_Term]] = defaultdict(list)
        for t in cloud:
            ending[t.end].append(t)
        for end in sorted(ending):
            if end > self.as_of:
                continue
            inside_from = bisect_left(starts, end)  # terms that start strictly before `end`
            if inside_from and max_end[inside_from - 1] > end:
                continue  # moved to another term (upgrade, billing switch): no opportunity
            ended = max(ending[end], key=lambda t: t.latest)
            renewing = None
            if inside_from < len(cloud) and starts[inside_from] <= end + self.grace:
                stop = bisect_right(starts, starts[inside_from])
                renewing = min(cloud[inside_from:stop], key=lambda t: t.first_paid)
            if renewing is not None:
                outcome = "renewed"
            elif end + self.grace <= self.as_of:
                outcome = "cancelled"
            else:
                outcome = "pending"
            renewal_tx = renewing.first_paid[2] if renewing else None
            self.tables.opportunity_rows.append(
                OpportunityRow(
                    key,
                    ended.addon_key,
                    end,
                    end.replace(day=1),
                    ended.billing_period,
                    outcome,
                    renewing.start if renewing else None,
                    renewal_tx,
                )
            )
            if outcome != "pending":
                self.tables.events["churn" if outcome == "cancelled" else "renewal"].append(
                    EventRow(end, ended.addon_key, key, renewal_tx, ended.start, ended.end)
                )

    def _evaluations(
        self,
        key: str,
        counted: list[_Term],
        lines: Sequence[tuple],
        evaluations: Sequence[tuple[date, date | None, str]],
    ) -> None:
        """Append one license's evaluations, each with its conversion if any."""
        counted_dates = {(t.start, t.end) for t in counted}
        # Paid New sales of counted terms only: a fully refunded purchase converts nothing.
        news = sorted(
            (
                line
                for line in lines
                if line[3] == "New"
                and line[4] > 0
                and line[0] is not None
                and line[0] <= self.as_of
                and (line[7], line[8]) in counted_dates
            ),
            key=lambda line: line[:3],
        )
        sales = [line[0] for line in news]
        first_term_start = counted[0].start if counted else None
        for start, end_or_none, addon_key in sorted(evaluations, key=lambda e: e[0]):
            end = end_or_none or start
            closes = end + self.window
            at = bisect_left(sales, start)
            sale = news[at] if at < len(news) and sales[at] <= closes else None
            upgrade = first_term_start is not None and first_term_start < start
            self.tables.evaluation_rows.append(
                EvaluationRow(
                    key,
                    addon_key,
                    start,
                    end,
                    sale is not None,
                    sale[0] if sale else None,
                    sale[2] if sale else None,
                    (sale[0] - start).days if sale else None,
                    "Upgrade" if upgrade else "Net New",
                    closes > self.as_of,
                )
            )
            if sale is not None:
                self.tables.events["conversion"].append(
                    EventRow(sale[0], addon_key, key, sale[2], sale[7], sale[8])
                )

    def _mrr(self, key: str, counted: list[_Term]) -> None:
        """Record one license's month spine and add its MRR and movements to the app totals."""
        starts = [t.start for t in counted]
        max_end = list(accumulate((t.end for t in counted), max))
        addon_key = counted[-1].addon_key
        first_month = _month_index(counted[0].start)
        spine: list[_Term | None] = []
        prior: _Term | None = None
        had_mrr = False
        all_ended = max_end[-1]
        if first_month < self.addon_first.get(addon_key, first_month + 1):
            self.addon_first[addon_key] = first_month
        for index in range(first_month, self.as_of_index + 1):
            day = self._snapshot(index)
            if prior is None and day >= all_ended:
                # Every term has ended and the churn is recorded: only zero months remain.
                spine.extend([None] * (self.as_of_index + 1 - index))
                break
            term = None
            covering = bisect_right(starts, day)  # terms that start on or before the snapshot
            if covering and max_end[covering - 1] > day:
                # Walk back from the latest start: the later-starting term wins where two cover.
                at = covering - 1
                while counted[at].end <= day:
                    at -= 1
                term = counted[at]
            spine.append(term)
            mrr = term.monthly if term is not None else 0.0
            units = term.units if term is not None else 0
            prior_mrr = prior.monthly if prior is not None else 0.0
            prior_units = prior.units if prior is not None else 0
            acc = self.mrr_acc.get((index, addon_key))
            if acc is None:
                acc = self.mrr_acc[(index, addon_key)] = [0] * 7
            acc[0] += units
            movement = _movement(mrr, prior_mrr, had_mrr)
            if movement != "unchanged":
                acc[_MOVEMENT_SLOTS[movement]] += units - prior_units
            if mrr > 0:
                acc[6] += 1
                had_mrr = True
            prior = term
        if spine:
            self.tables.spines.append(Spine(key, addon_key, first_month, spine))

    def finish(self) -> None:
        """Aggregate the per-license rows into the churn, renewal, conversion and MRR tables."""
        tables = self.tables
        counts: dict[tuple[date, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        for opp in tables.opportunity_rows:
            slot = {"renewed": 0, "cancelled": 1, "pending": 2}[opp.outcome]
            counts[(opp.month, opp.addon_key, opp.billing_period)][slot] += 1
        for (month, addon_key, billing_period), (renewed, cancelled, pending) in sorted(
            counts.items()
        ):
            grain = {"month": month, "addon_key": addon_key, "billing_period": billing_period}
            opportunities = renewed + cancelled
            tables.churn.append(
                {
                    **grain,
                    "opportunities": opportunities,
                    "cancellations": cancelled,
                    "pending": pending,
                    "churn_rate": _rate(cancelled, opportunities),
                }
            )
            tables.renewal.append(
                {
                    **grain,
                    "opportunities": opportunities,
                    "renewals": renewed,
                    "pending": pending,
                    "renewal_rate": _rate(renewed, opportunities),
                }
            )

        groups: dict[tuple[date, str, str], list[EvaluationRow]] = defaultdict(list)
        for ev in tables.evaluation_rows:
            groups[(ev.start_date.replace(day=1), ev.addon_key, ev.conversion_type)].append(ev)
        for (month, addon_key, conversion_type), evs in sorted(groups.items()):
            days = [ev.days_to_convert for ev in evs if ev.days_to_convert is not None]
            tables.conversion.append(
                {
                    "month": month,
                    "addon_key": addon_key,
                    "conversion_type": conversion_type,
                    "evaluations": len(evs),
                    "conversions": len(days),
                    "open_evaluations": sum(1 for ev in evs if ev.is_open),
                    "conversion_rate": _rate(len(days), len(evs)),
                    "median_days_to_convert": statistics.median(days) if days else None,
                }
            )

        app_months = sorted(
            (index, addon_key)
            for addon_key, first in self.addon_first.items()
            for index in range(first, self.as_of_index + 1)
        )
        for index, addon_key in app_months:
            acc = self.mrr_acc.get((index, addon_key), [0] * 7)
            # Sums were kept in twelfths of a cent: exact whatever order licenses come in.
            mrr = acc[0] / UNITS_PER_DOLLAR
            tables.mrr.append(
                {
                    "month": _month_start(index),
                    "addon_key": addon_key,
                    "mrr": mrr,
                    "arr": mrr * 12,
                    **{
                        column: acc[_MOVEMENT_SLOTS[name]] / UNITS_PER_DOLLAR
                        for name, column in _MOVEMENT_COLUMNS.items()
                    },
                    "paying_licenses": acc[6],
                }
            )
        self.mrr_acc = {}
        for events in tables.events.values():
            events.sort(key=lambda e: (e.event_date, e.addon_key, e.license_key))


# Twelfths of a cent per dollar: an Annual term's MRR (amount / 12) is a whole number of them.
UNITS_PER_DOLLAR = 1200
# movement_type -> column of the per-app MRR table
_MOVEMENT_COLUMNS = {
    "new": "new_mrr",
    "expansion": "expansion_mrr",
    "contraction": "contraction_mrr",
    "churn": "churned_mrr",
    "reactivation": "reactivation_mrr",
}
# movement_type -> its slot in a `_Builder.mrr_acc` accumulator
_MOVEMENT_SLOTS = {name: slot for slot, name in enumerate(_MOVEMENT_COLUMNS, start=1)}


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
            current = _month_start(_month_index(current) + 1)
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


def details_events(
    tables: MetricTables, metric: str, licenses_by_key: dict[str, dict] | None = None
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

    Returns:
        Events sorted by (eventDate, addonKey, license_key).

    Raises:
        ValueError: On an unknown metric.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}")
    overrides = licenses_by_key or {}
    out = []
    for event in tables.events.get(metric, []):
        key = event.license_key
        record = overrides.get(key)
        values = _identity(record) if record is not None else tables.identities.get(key)
        ident = dict(zip(IDENTITY_FIELDS, values or (None,) * len(IDENTITY_FIELDS), strict=True))
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
            "lastUpdated": str(ident["lastUpdated"] or tables.as_of.isoformat())[:10],
            "eventDate": event.event_date.isoformat(),
        }
        if event.transaction_id:
            item["transactionId"] = event.transaction_id
        item["licenseDetails"] = details
        out.append(item)
    return out

"""The ground-truth tables: their rows, the tunable rules and the month arithmetic they share."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, NamedTuple, Protocol

METRICS = ("churn", "renewal", "conversion")
# v2 has no movement tolerance: "MRR > 0" and "a difference" both mean more than this (rule 6).
EPSILON = 1e-9
IDENTITY_FIELDS = (
    "licenseId",
    "appEntitlementId",
    "appEntitlementNumber",
    "cloudId",
    "addonName",
    "lastUpdated",
)


class _Row(Protocol):
    """Any of the row NamedTuples: what MetricTables needs to turn one into a dict."""

    def _asdict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class MetricVars:
    """The tunable rules of METRICS.md (dbt vars), with their defaults.

    Attributes:
        grace_days: Days after a term's end within which a new term still counts as a renewal.
        conversion_window_days: Days after an evaluation's end within which a New sale converts.
        amount_basis: `vendor_amount` or `purchase_price`: which amount a term sums.
        upgrade_trial_days: Length of an edition upgrade trial (its end = start + this).
    """

    grace_days: int = 7
    conversion_window_days: int = 30
    amount_basis: str = "vendor_amount"
    upgrade_trial_days: int = 30


# The rules as METRICS.md and dbt's default vars set them.
DEFAULT_VARS = MetricVars()


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
    is_returning_customer: bool


class EventRow(NamedTuple):
    """What a details event needs besides the license's identity."""

    event_date: date
    addon_key: str
    license_key: str
    transaction_id: str | None
    maintenance_start_date: date
    maintenance_end_date: date


class CustomerRow(NamedTuple):
    """One row of `MetricTables.customers` (dim_customers); lists kept as tuples until read."""

    customer_key: str
    hostings: tuple[str, ...]
    apps: tuple[str, ...]
    first_paid_month: date | None
    first_hosting: str | None
    current_mrr: float
    company: str | None
    country: str | None
    region: str | None


class Spine(NamedTuple):
    """One license's MRR at each month's snapshot day, from its first month to the as_of month."""

    license_key: str
    addon_key: str
    first_month: int  # `month_index` of the first month
    mrr: array  # array('d'): one MRR per month


@dataclass
class MetricTables:
    """Every ground-truth table as of one day.

    The per-license tables are kept as compact rows (`*_rows`, `spines`) and turned into lists of
    dicts on first access: a large vendor has tens of millions of MRR months, and the server only
    ever needs the aggregates and the events. `events` and `identities` keep what
    `details_events` needs. The v2 tables named after the marts (`customers`, `customer_mrr`,
    `customer_kpis`, `retention_cohorts`, `retention_cohorts_by_hosting`, `churn_events`,
    `renewal_book`) are lists of dicts whose keys are the mart's columns.
    """

    as_of: date
    churn: list[dict] = field(default_factory=list)
    renewal: list[dict] = field(default_factory=list)
    conversion: list[dict] = field(default_factory=list)
    mrr: list[dict] = field(default_factory=list)
    customer_kpis: list[dict] = field(default_factory=list)
    retention_cohorts: list[dict] = field(default_factory=list)
    retention_cohorts_by_hosting: list[dict] = field(default_factory=list)
    churn_events: list[dict] = field(default_factory=list)
    renewal_book: list[dict] = field(default_factory=list)
    term_rows: list[TermRow] = field(default_factory=list, repr=False)
    opportunity_rows: list[OpportunityRow] = field(default_factory=list, repr=False)
    evaluation_rows: list[EvaluationRow] = field(default_factory=list, repr=False)
    spines: list[Spine] = field(default_factory=list, repr=False)
    customer_rows: list[CustomerRow] = field(default_factory=list, repr=False)
    customer_of: dict[str, str] = field(default_factory=dict, repr=False)  # license -> customer
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
            rows = [row for spine in self.spines for row in movement_rows(spine)]
            # Stable sort: licenses stay in key order within a month.
            rows.sort(key=lambda row: row["month"])
            self._dicts["mrr_movements"] = rows
        return rows

    @property
    def customers(self) -> list[dict]:
        """dim_customers: customer_key, hostings, apps, first_paid_month, first_hosting, ..."""
        rows = self._dicts.get("customers")
        if rows is None:
            rows = self._dicts["customers"] = [
                {**row._asdict(), "hostings": list(row.hostings), "apps": list(row.apps)}
                for row in self.customer_rows
            ]
        return rows

    @property
    def customer_mrr(self) -> list[dict]:
        """fct_customer_mrr: month, customer_key, mrr, movement, movement_mrr."""
        rows = self._dicts.get("customer_mrr")
        if rows is None:
            rows = []
            for customer, first, values in customer_series(
                self.spines, self.customer_of, month_index(self.as_of)
            ):
                prior, had_mrr = 0.0, False
                for offset, mrr in enumerate(values):
                    movement = movement_type(mrr, prior, had_mrr)
                    if mrr > EPSILON or movement != "unchanged":
                        rows.append(
                            {
                                "month": month_start(first + offset),
                                "customer_key": customer,
                                "mrr": mrr,
                                "movement": movement,
                                "movement_mrr": mrr - prior if movement != "unchanged" else 0.0,
                            }
                        )
                    had_mrr = had_mrr or mrr > EPSILON
                    prior = mrr
            rows.sort(key=lambda row: row["month"])  # stable: customers stay in key order
            self._dicts["customer_mrr"] = rows
        return rows

    def _as_dicts(self, name: str, rows: Sequence[_Row]) -> list[dict]:
        """Turn compact rows into dicts once, and keep them."""
        dicts = self._dicts.get(name)
        if dicts is None:
            dicts = self._dicts[name] = [row._asdict() for row in rows]
        return dicts


@dataclass(slots=True)
class Term:
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
    monthly: float  # its monthly value: max(amount, 0) / months(start, end)
    latest_line: tuple = ()  # the latest paid line itself (tier and partner of churn events)
    grace_end: date | None = None  # end + grace_days when grace applies to it in MRR


def month_index(day: date) -> int:
    """Return a month number that increases by one per calendar month."""
    return day.year * 12 + day.month - 1


def month_start(index: int) -> date:
    """Return the first day of the month numbered by `month_index`."""
    return date(index // 12, index % 12 + 1, 1)


def month_end(index: int) -> date:
    """Return the last day of the month numbered by `month_index`."""
    return month_start(index + 1) - timedelta(days=1)


def add_months(day: date, months: int) -> date:
    """Return `day` plus whole months, clamped to the month's last day (Jan 31 + 1 = Feb 28)."""
    index = month_index(day) + months
    return min(month_start(index) + timedelta(days=day.day - 1), month_end(index))


def months_between(start: date, end: date) -> float:
    """METRICS.md months(start, end): whole calendar months plus a fraction of the next one.

    Args:
        start: The first day.
        end: The end (exclusive), after `start`.

    Returns:
        m + days(start + m months, end) / days(start + m months, start + (m + 1) months), m the
        largest whole number of months with start + m months <= end.
    """
    whole = month_index(end) - month_index(start)
    while whole > 0 and add_months(start, whole) > end:
        whole -= 1
    base = add_months(start, whole)
    if base == end:
        return float(whole)
    following = add_months(start, whole + 1)
    return whole + (end - base).days / (following - base).days


def identity(record: Mapping[str, Any]) -> tuple:
    """Keep the fields of a license or transaction record that a details event shows."""
    return tuple(record.get(name) for name in IDENTITY_FIELDS)


def movement_type(mrr: float, prior: float, had_mrr: bool) -> str:
    """Classify one license's (or customer's) move from the prior month's MRR to this month's."""
    if mrr > EPSILON and prior > EPSILON:
        if mrr - prior > EPSILON:
            return "expansion"
        if mrr - prior < -EPSILON:
            return "contraction"
        return "unchanged"
    if mrr > EPSILON:
        return "reactivation" if had_mrr else "new"
    if prior > EPSILON:
        return "churn"
    return "unchanged"


def movement_rows(spine: Spine) -> Iterator[dict]:
    """Yield the mrr_movements rows of one license."""
    prior = 0.0
    had_mrr = False
    for offset, mrr in enumerate(spine.mrr):
        yield {
            "month": month_start(spine.first_month + offset),
            "license_key": spine.license_key,
            "addon_key": spine.addon_key,
            "mrr": mrr,
            "prior_mrr": prior,
            "movement_type": movement_type(mrr, prior, had_mrr),
            "movement_amount": mrr - prior,
        }
        had_mrr = had_mrr or mrr > EPSILON
        prior = mrr


def customer_series(
    spines: Iterable[Spine], customer_of: Mapping[str, str], last_month: int
) -> Iterator[tuple[str, int, array]]:
    """Yield (customer_key, first month, MRR per month to `last_month`) by customer_key.

    A customer's MRR is the sum of its licenses' MRR, all apps and hostings (METRICS.md v2).
    """
    members: dict[str, list[Spine]] = {}
    for spine in spines:
        members.setdefault(customer_of.get(spine.license_key, spine.license_key), []).append(spine)
    for customer in sorted(members):
        group = members.pop(customer)
        if len(group) == 1:
            yield customer, group[0].first_month, group[0].mrr  # most customers: one license
            continue
        first = min(s.first_month for s in group)
        values = array("d", bytes(8 * (last_month + 1 - first)))
        for s in group:
            offset = s.first_month - first
            for i, mrr in enumerate(s.mrr):
                values[offset + i] += mrr
        yield customer, first, values

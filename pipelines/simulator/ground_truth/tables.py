"""The ground-truth tables: their rows, the tunable rules and the month arithmetic they share."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, NamedTuple, Protocol

METRICS = ("churn", "renewal", "conversion")
# Half a cent: MRR is amount / 12, so two equal terms can differ by float noise only.
MOVEMENT_TOLERANCE = 0.005
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
    """

    grace_days: int = 7
    conversion_window_days: int = 30
    amount_basis: str = "vendor_amount"


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
    first_month: int  # `month_index` of the first month
    terms: list[Term | None]


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
            rows = [row for spine in self.spines for row in movement_rows(spine)]
            # Stable sort: licenses stay in key order within a month.
            rows.sort(key=lambda row: row["month"])
            self._dicts["mrr_movements"] = rows
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
    monthly: float  # its MRR: amount / 12 for Annual, amount for Monthly
    units: int  # the same in twelfths of a cent, so that app totals add up exactly


def month_index(day: date) -> int:
    """Return a month number that increases by one per calendar month."""
    return day.year * 12 + day.month - 1


def month_start(index: int) -> date:
    """Return the first day of the month numbered by `month_index`."""
    return date(index // 12, index % 12 + 1, 1)


def month_end(index: int) -> date:
    """Return the last day of the month numbered by `month_index`."""
    return month_start(index + 1) - timedelta(days=1)


def identity(record: Mapping[str, Any]) -> tuple:
    """Keep the fields of a license or transaction record that a details event shows."""
    return tuple(record.get(name) for name in IDENTITY_FIELDS)


def movement_type(mrr: float, prior: float, had_mrr: bool) -> str:
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


def movement_rows(spine: Spine) -> Iterator[dict]:
    """Yield the mrr_movements rows of one license."""
    prior = 0.0
    had_mrr = False
    for offset, term in enumerate(spine.terms):
        mrr = term.monthly if term is not None else 0.0
        yield {
            "month": month_start(spine.first_month + offset),
            "license_key": spine.license_key,
            "addon_key": spine.addon_key,
            "mrr": mrr,
            "prior_mrr": prior,
            "movement_type": movement_type(mrr, prior, had_mrr),
            "movement_amount": mrr - prior,
        }
        had_mrr = had_mrr or mrr > 0
        prior = mrr

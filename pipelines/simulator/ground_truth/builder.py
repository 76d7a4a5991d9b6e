"""Computing the ground-truth churn, renewal, conversion and MRR tables from API-shaped records."""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from itertools import accumulate
from typing import Any

from pipelines.simulator.ground_truth.tables import (
    DEFAULT_VARS,
    IDENTITY_FIELDS,
    METRICS,
    EvaluationRow,
    EventRow,
    MetricTables,
    MetricVars,
    OpportunityRow,
    Spine,
    Term,
    TermRow,
    identity,
    month_end,
    month_index,
    month_start,
    movement_type,
)

PAID_SALE_TYPES = frozenset({"New", "Renewal", "Upgrade", "Downgrade"})
AMOUNT_BASES = {"vendor_amount": "vendorAmount", "purchase_price": "purchasePrice"}
# Dates repeat millions of times in a large vendor: parse each distinct string once.
_DATE_CACHE: dict[str, date | None] = {}


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


def license_key(record: Mapping[str, Any]) -> str:
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


def _rate(numerator: int, denominator: int) -> float | None:
    """Return numerator / denominator, or None when the denominator is 0."""
    return numerator / denominator if denominator else None


def compute_metrics(
    licenses: Iterable[Mapping[str, Any]],
    transactions: Iterable[Mapping[str, Any]],
    as_of: date | None = None,
    params: MetricVars = DEFAULT_VARS,
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
            identities[key] = identity(lic)
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
                tx_identities[key] = identity(tx)
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
        self.as_of_index = month_index(tables.as_of)
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
            day = self.snapshots[index] = min(month_end(index), self.as_of)
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

    def _terms(self, key: str, lines: Sequence[tuple]) -> list[Term]:
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
                Term(
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

    def _opportunities(self, key: str, cloud: list[Term]) -> None:
        """Append the renewal opportunities of one license's counted Cloud terms."""
        starts = [t.start for t in cloud]
        max_end = list(accumulate((t.end for t in cloud), max))
        ending: dict[date, list[Term]] = defaultdict(list)
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
        counted: list[Term],
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

    def _mrr(self, key: str, counted: list[Term]) -> None:
        """Record one license's month spine and add its MRR and movements to the app totals."""
        starts = [t.start for t in counted]
        max_end = list(accumulate((t.end for t in counted), max))
        addon_key = counted[-1].addon_key
        first_month = month_index(counted[0].start)
        spine: list[Term | None] = []
        prior: Term | None = None
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
            movement = movement_type(mrr, prior_mrr, had_mrr)
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
                    "month": month_start(index),
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

"""Computing the ground-truth tables (METRICS.md contract v2) from API-shaped records."""

from __future__ import annotations

import math
import statistics
import sys
from array import array
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any, NamedTuple

from pipelines.simulator.ground_truth.tables import (
    DEFAULT_VARS,
    EPSILON,
    IDENTITY_FIELDS,
    METRICS,
    CustomerRow,
    EvaluationRow,
    EventRow,
    MetricTables,
    MetricVars,
    OpportunityRow,
    Spine,
    Term,
    TermRow,
    customer_series,
    identity,
    month_end,
    month_index,
    month_start,
    months_between,
    movement_type,
)

PAID_SALE_TYPES = frozenset({"New", "Renewal", "Upgrade", "Downgrade"})
AMOUNT_BASES = {"vendor_amount": "vendorAmount", "purchase_price": "purchasePrice"}
ON_PREM = frozenset({"Server", "Data Center"})
# Dates repeat millions of times in a large vendor: parse each distinct string once.
_DATE_CACHE: dict[str, date | None] = {}
# Days around a churned term's end in which feedback counts as its reason (METRICS.md).
FEEDBACK_DAYS = 30
# Days ahead that the renewal book lists (METRICS.md).
BOOK_DAYS = 90

# movement_type -> column of the per-app MRR and the customer KPI tables
_MOVEMENT_COLUMNS = {
    "new": "new_mrr",
    "expansion": "expansion_mrr",
    "contraction": "contraction_mrr",
    "churn": "churned_mrr",
    "reactivation": "reactivation_mrr",
}
# movement_type -> its slot in an accumulator: [mrr, new, expansion, contraction, churn,
# reactivation, paying, opening]
_MOVEMENT_SLOTS = {name: slot for slot, name in enumerate(_MOVEMENT_COLUMNS, start=1)}
_PAYING, _CHURNED = 6, 7

# Slots of the compact tuple kept per transaction line.
(
    X_SALE,
    X_ITEM,
    X_TX,
    X_TYPE,
    X_PRICE,
    X_AMOUNT,
    X_BILLING,
    X_START,
    X_END,
    X_ADDON,
    X_HOSTING,
    X_TIER,
    X_PARTNER,
    X_EDITION,
) = range(14)


class LicenseInfo(NamedTuple):
    """What the customer tables need from a license's latest record (or transaction line)."""

    order: tuple  # which record is the latest: (lastUpdated,) or the line's (sale, item, tx)
    from_record: bool
    hosting: str | None
    addon_key: str | None
    customer_key: str
    related_on_prem: str | None  # cmtDetails.relatedOnPremLicense of a Cloud record
    company: str | None
    country: str | None
    region: str | None


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


def _own_customer(record: Mapping[str, Any], hosting: str | None, key: str) -> str:
    """The instance a record's app is installed on: cloudId, hostLicenseId, else the license."""
    if hosting == "Cloud":
        return record.get("cloudId") or key
    if hosting in ON_PREM:
        return record.get("hostLicenseId") or key
    return key


def _shared(value: str | None) -> str | None:
    """One copy of a string that repeats on millions of lines (tier, partner name)."""
    return sys.intern(value) if isinstance(value, str) else value


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


def _rate(numerator: float, denominator: float) -> float | None:
    """Return numerator / denominator, or None when the denominator is 0."""
    return numerator / denominator if denominator else None


def _contacts(details: Mapping[str, Any] | None) -> tuple[str | None, str | None, str | None]:
    details = details or {}
    return details.get("company"), details.get("country"), details.get("region")


class _EvalFound:
    """One (license_key, start) evaluation while its forms are being merged (exact rule 4)."""

    __slots__ = ("addon_key", "edition", "end", "is_upgrade")

    def __init__(self, addon_key: str, end: date, is_upgrade: bool, edition: str | None) -> None:
        self.addon_key = addon_key
        self.end = end
        self.is_upgrade = is_upgrade
        self.edition = edition

    def merge(self, end: date, is_upgrade: bool, edition: str | None) -> None:
        """Keep the latest end; it is an Upgrade only when only the upgrade form has that end."""
        if end > self.end:
            self.end, self.is_upgrade, self.edition = end, is_upgrade, edition
        elif end == self.end and self.is_upgrade != is_upgrade:
            self.is_upgrade = False


def compute_metrics(
    licenses: Iterable[Mapping[str, Any]],
    transactions: Iterable[Mapping[str, Any]],
    as_of: date | None = None,
    params: MetricVars = DEFAULT_VARS,
    feedback: Iterable[Mapping[str, Any]] = (),
) -> MetricTables:
    """Compute every METRICS.md table from v2 license, transaction and feedback records.

    Args:
        licenses: v2 license records (camelCase dicts).
        transactions: v2 transaction line records (camelCase dicts).
        as_of: The day the data describes; default the latest `lastUpdated` in the records.
        params: The tunable rules.
        feedback: v2 feedback records (the churn events' reasons); none by default.

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
    trial = timedelta(days=params.upgrade_trial_days)

    eval_found: dict[tuple[str, date], _EvalFound] = {}
    identities: dict[str, tuple] = {}
    infos: dict[str, LicenseInfo] = {}
    # licenseId / addonLicenseId of a Server or Data Center record -> its license_key
    on_prem_ids: dict[str, str] = {}
    # licenseId -> license_key: how feedback without an appEntitlementId names its license
    by_license_id: dict[str, str] = {}
    for lic in licenses:
        updated = _to_date(lic.get("lastUpdated"))
        if updated is not None and (latest_update is None or updated > latest_update):
            latest_update = updated
        key = license_key(lic)
        hosting = lic.get("hosting")
        order: tuple[Any, ...] = (str(lic.get("lastUpdated") or ""),)
        known_info = infos.get(key)
        if known_info is None or order > known_info.order:
            infos[key] = LicenseInfo(
                order,
                True,
                hosting,
                lic.get("addonKey"),
                _own_customer(lic, hosting, key),
                (lic.get("cmtDetails") or {}).get("relatedOnPremLicense")
                if hosting == "Cloud"
                else None,
                *_contacts(lic.get("contactDetails")),
            )
        if lic.get("licenseId"):
            by_license_id[str(lic["licenseId"])] = key
        if hosting in ON_PREM:
            for name in ("licenseId", "addonLicenseId"):
                if lic.get(name):
                    on_prem_ids[str(lic[name])] = key
        if hosting != "Cloud":
            continue
        known = identities.get(key)
        if known is None or (lic.get("lastUpdated") or "") > (known[updated_at] or ""):
            identities[key] = identity(lic)
        forms: list[tuple[Any, Any, bool]] = []
        if str(lic.get("licenseType") or "").upper() == "EVALUATION":
            forms.append((lic.get("maintenanceStartDate"), lic.get("maintenanceEndDate"), False))
        if lic.get("evaluationStartDate"):
            forms.append((lic.get("evaluationStartDate"), lic.get("evaluationEndDate"), False))
        if lic.get("upgradeEvaluationStartDate"):
            forms.append((lic.get("upgradeEvaluationStartDate"), None, True))
        for start_raw, end_raw, is_upgrade in forms:
            start = _to_date(start_raw)
            if start is None:
                continue
            end = start + trial if is_upgrade else (_to_date(end_raw) or start)
            edition = lic.get("upgradeEvaluatingEdition") if is_upgrade else None
            found = eval_found.get((key, start))
            if found is None:
                eval_found[(key, start)] = _EvalFound(lic["addonKey"], end, is_upgrade, edition)
            else:
                found.merge(end, is_upgrade, edition)

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
        line = (
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
            _shared(pd.get("tier")),
            _shared((tx.get("partnerDetails") or {}).get("partnerName")),
            tx.get("appEdition") or pd.get("appEdition"),
        )
        by_key[key].append(line)
        if tx.get("licenseId"):
            by_license_id.setdefault(str(tx["licenseId"]), key)
        known_info = infos.get(key)
        if known_info is None or not known_info.from_record:
            # Exact rule 8: a license without a record takes its latest line's instance.
            order = (line[X_SALE] or date.min, line[X_ITEM], line[X_TX])
            if known_info is None or order > known_info.order:
                infos[key] = LicenseInfo(
                    order,
                    False,
                    hosting,
                    tx["addonKey"],
                    _own_customer(tx, hosting, key),
                    None,
                    *_contacts(tx.get("customerDetails")),
                )
        if hosting == "Cloud" and key not in identities:
            known = tx_identities.get(key)
            if known is None or (tx.get("lastUpdated") or "") > (known[updated_at] or ""):
                tx_identities[key] = identity(tx)
    for key, ident in tx_identities.items():
        identities.setdefault(key, ident)
    del tx_identities

    # Exact rule 10: a license's feedback names it by appEntitlementId (a Cloud license_key),
    # else by the licenseId of its record.
    feedback_by_key: dict[str, list[tuple[date, str, str]]] = defaultdict(list)
    for row in feedback:
        named = row.get("appEntitlementId") or by_license_id.get(str(row.get("licenseId")))
        day = _to_date(row.get("date"))
        if named and day is not None:
            feedback_by_key[str(named)].append(
                (day, str(row.get("feedbackType") or ""), str(row.get("reasonKey") or ""))
            )

    if as_of is None:
        as_of = latest_update or date.today()

    evals_by_key: dict[str, list[tuple[date, date, str, bool, str | None]]] = defaultdict(list)
    for (key, start), found in eval_found.items():
        if start <= as_of:
            evals_by_key[key].append(
                (start, found.end, found.addon_key, found.is_upgrade, found.edition)
            )
    del eval_found

    # customer_key of every license: its own instance, or a migration's on-prem customer.
    customers: dict[str, str] = {}
    for key, info in infos.items():
        customer = info.customer_key
        related = info.related_on_prem
        if related is not None and related in on_prem_ids:
            customer = infos[on_prem_ids[related]].customer_key
        customers[key] = customer

    tables = MetricTables(as_of=as_of)
    builder = _Builder(tables, params)
    for key in sorted(set(by_key) | set(evals_by_key)):
        builder.add_license(
            key,
            by_key.pop(key, ()),
            evals_by_key.get(key, ()),
            customers.get(key, key),
            feedback_by_key.get(key, ()),
        )
    builder.finish(infos, customers)

    event_keys = {event.license_key for events in tables.events.values() for event in events}
    tables.identities = {key: identities[key] for key in event_keys if key in identities}
    return tables


class _End(NamedTuple):
    """One distinct counted-term end of a license that no other counted term straddles."""

    end: date
    ended: Term  # the term ending there with the latest paid transaction
    renewing: Term | None  # the term that renewed it, if any
    outcome: str  # renewed | cancelled | pending (or "due" when end > as_of)


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
        self.grace_days = params.grace_days
        self.window = timedelta(days=params.conversion_window_days)
        self.trial = timedelta(days=params.upgrade_trial_days)
        self.snapshots: dict[int, date] = {}
        # (month index, addon) -> [mrr, new, expansion, contraction, churn, reactivation, paying]
        self.mrr_acc: dict[tuple[int, str], list[float]] = {}
        # addon -> its first month with MRR > 0: its rows run from there to the as_of month
        self.addon_first: dict[str, int] = {}
        # license_key -> (first counted term start) for the customers' first hosting
        self.first_starts: dict[str, date] = {}
        tables.events = {metric: [] for metric in METRICS}

    def _snapshot(self, index: int) -> date:
        """Return the MRR snapshot day of a month: least(last day of the month, as_of)."""
        day = self.snapshots.get(index)
        if day is None:
            day = self.snapshots[index] = min(month_end(index), self.as_of)
        return day

    def add_license(
        self,
        key: str,
        lines: Sequence[tuple],
        evaluations: Sequence[tuple[date, date, str, bool, str | None]],
        customer_key: str,
        feedback: Sequence[tuple[date, str, str]],
    ) -> None:
        """Compute one license's terms, opportunities, evaluations, MRR, events and book rows.

        Args:
            key: The license_key.
            lines: Its transaction tuples (as built by `compute_metrics`).
            evaluations: Its (start, end, addon_key, is_upgrade, edition) evaluations.
            customer_key: Its customer.
            feedback: Its (date, feedbackType, reasonKey) feedback rows.
        """
        terms = self._terms(key, lines)
        counted = sorted((t for t in terms if not t.is_refunded), key=lambda t: (t.start, t.end))
        if counted:
            self.first_starts[key] = counted[0].start
        ends = self._ends(counted) if counted else []
        for resolved in ends:
            if resolved.end <= self.as_of and resolved.outcome != "cancelled":
                # Grace in MRR: renewed or pending ends keep covering their grace days.
                for term in counted:
                    if term.end == resolved.end:
                        term.grace_end = resolved.end + self.grace
        if evaluations:
            self._evaluations(key, counted, lines, evaluations)
        if counted:
            self._mrr(key, counted)
            self._opportunities(key, counted, ends, customer_key, feedback)

    def _terms(self, key: str, lines: Sequence[tuple]) -> list[Term]:
        """Group paid lines and refunds into terms and append them to the terms table."""
        paid: dict[tuple[date, date], list[tuple]] = defaultdict(list)
        refunds: dict[tuple[date, date], list[tuple]] = defaultdict(list)
        for line in lines:
            sale, start, end = line[X_SALE], line[X_START], line[X_END]
            # Exact rule 1, and v2: a line without dates or with start >= end forms no term.
            if sale is None or sale > self.as_of or start is None or end is None or start >= end:
                continue
            sale_type = line[X_TYPE]
            if sale_type in PAID_SALE_TYPES and line[X_PRICE] > 0:
                paid[(start, end)].append(line)
            elif sale_type == "Refund":
                refunds[(start, end)].append(line)
        terms = []
        for (start, end), paid_lines in paid.items():
            both = paid_lines + refunds.get((start, end), [])
            # Round after summing: inputs are cents, and this removes order-dependent float noise.
            amount = round(math.fsum(line[X_AMOUNT] for line in both), 2)
            purchase_price = round(math.fsum(line[X_PRICE] for line in both), 2)
            latest = max(paid_lines, key=lambda line: line[:3])
            first = min(paid_lines, key=lambda line: line[:3])
            terms.append(
                Term(
                    start=start,
                    end=end,
                    latest=latest[:3],
                    addon_key=latest[X_ADDON],
                    hosting=latest[X_HOSTING],
                    billing_period=latest[X_BILLING],
                    amount=amount,
                    purchase_price=purchase_price,
                    is_refunded=purchase_price <= 0,
                    first_paid=first[:3],
                    monthly=max(amount, 0.0) / months_between(start, end),
                    latest_line=latest,
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

    def _ends(self, counted: list[Term]) -> list[_End]:
        """Resolve each distinct end of the counted terms that no other counted term straddles.

        Ends after as_of come back as `due`; the others renewed, cancelled or pending.
        """
        starts = [t.start for t in counted]
        by_end: dict[date, list[Term]] = defaultdict(list)
        for t in counted:
            by_end[t.end].append(t)
        out = []
        for end in sorted(by_end):
            if any(t.start < end < t.end for t in counted):
                continue  # moved to another term (upgrade, billing switch): no opportunity
            ended = max(by_end[end], key=lambda t: t.latest)
            if end > self.as_of:
                out.append(_End(end, ended, None, "due"))
                continue
            at = bisect_left(starts, end)
            renewing = None
            if at < len(counted) and starts[at] <= end + self.grace:
                first_start = starts[at]
                renewing = min(
                    (t for t in counted[at:] if t.start == first_start), key=lambda t: t.first_paid
                )
            if renewing is not None:
                outcome = "renewed"
            elif end + self.grace <= self.as_of:
                outcome = "cancelled"
            else:
                outcome = "pending"
            out.append(_End(end, ended, renewing, outcome))
        return out

    @staticmethod
    def _value(covering: Sequence[Term]) -> float:
        """MRR of the covering terms: the sum over the layers that no covering term supersedes."""
        if len(covering) == 1:
            return covering[0].monthly
        total = 0.0
        for t in covering:
            if not any(
                (u.start > t.start and u.end != t.end) or (u.start == t.start and u.end > t.end)
                for u in covering
            ):
                total += t.monthly
        return total

    def _mrr_on(self, counted: Sequence[Term], day: date) -> float:
        """A license's MRR on any day (layers and grace included)."""
        return self._value([t for t in counted if t.start <= day < (t.grace_end or t.end)])

    def _opportunities(
        self,
        key: str,
        counted: list[Term],
        ends: list[_End],
        customer_key: str,
        feedback: Sequence[tuple[date, str, str]],
    ) -> None:
        """Append one license's renewal opportunities, churn events and renewal book rows."""
        book_until = self.as_of + timedelta(days=BOOK_DAYS)
        for resolved in ends:
            end, ended, renewing, outcome = resolved
            if outcome == "due":
                if end <= book_until:
                    self._book_row(key, counted, resolved, customer_key, "due")
                continue
            if ended.hosting != "Cloud":
                continue
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
            if outcome == "pending":
                self._book_row(key, counted, resolved, customer_key, "pending")
                continue
            self.tables.events["churn" if outcome == "cancelled" else "renewal"].append(
                EventRow(end, ended.addon_key, key, renewal_tx, ended.start, ended.end)
            )
            if outcome == "cancelled":
                near = [
                    (abs((day - end).days), day, ftype, reason)
                    for day, ftype, reason in feedback
                    if abs((day - end).days) <= FEEDBACK_DAYS
                ]
                nearest = min(near) if near else None
                line = ended.latest_line
                self.tables.churn_events.append(
                    {
                        "license_key": key,
                        "end_date": end,
                        "customer_key": customer_key,
                        "addon_key": ended.addon_key,
                        "billing_period": ended.billing_period,
                        "tier": line[X_TIER],
                        "partner_name": line[X_PARTNER],
                        "tenure_months": months_between(counted[0].start, end),
                        "mrr_lost": self._mrr_on(counted, end - timedelta(days=1)),
                        "feedback_type": nearest[2] if nearest else None,
                        "feedback_reason": nearest[3] if nearest else None,
                    }
                )

    def _book_row(
        self, key: str, counted: list[Term], resolved: _End, customer_key: str, status: str
    ) -> None:
        end, ended = resolved.end, resolved.ended
        self.tables.renewal_book.append(
            {
                "license_key": key,
                "due_date": end,
                "customer_key": customer_key,
                "addon_key": ended.addon_key,
                "billing_period": ended.billing_period,
                "days_until_due": (end - self.as_of).days,
                "arr_at_stake": 12 * self._mrr_on(counted, end - timedelta(days=1)),
                "status": status,
            }
        )

    def _evaluations(
        self,
        key: str,
        counted: list[Term],
        lines: Sequence[tuple],
        evaluations: Sequence[tuple[date, date, str, bool, str | None]],
    ) -> None:
        """Append one license's evaluations, each with its conversion if any."""
        counted_dates = {(t.start, t.end) for t in counted}
        # Paid sales of counted terms only: a fully refunded purchase converts nothing.
        sold = sorted(
            (
                line
                for line in lines
                if line[X_TYPE] in ("New", "Upgrade")
                and line[X_PRICE] > 0
                and line[X_SALE] is not None
                and line[X_SALE] <= self.as_of
                and (line[X_START], line[X_END]) in counted_dates
            ),
            key=lambda line: line[:3],
        )
        for start, end, addon_key, is_upgrade, edition in sorted(evaluations, key=lambda e: e[0]):
            if is_upgrade:
                closes = start + self.trial + self.window
                sale = next(
                    (
                        line
                        for line in sold
                        if line[X_TYPE] == "Upgrade"
                        and line[X_EDITION] == edition
                        and start <= line[X_SALE] <= closes
                    ),
                    None,
                )
                returning = False
            else:
                closes = end + self.window
                sale = next(
                    (
                        line
                        for line in sold
                        if line[X_TYPE] == "New" and start <= line[X_SALE] <= closes
                    ),
                    None,
                )
                returning = any(t.start < start for t in counted)
            self.tables.evaluation_rows.append(
                EvaluationRow(
                    key,
                    addon_key,
                    start,
                    end,
                    sale is not None,
                    sale[X_SALE] if sale else None,
                    sale[X_TX] if sale else None,
                    (sale[X_SALE] - start).days if sale else None,
                    "Upgrade" if is_upgrade else "Net New",
                    closes > self.as_of,
                    returning,
                )
            )
            if sale is not None:
                self.tables.events["conversion"].append(
                    EventRow(sale[X_SALE], addon_key, key, sale[X_TX], sale[X_START], sale[X_END])
                )

    def _mrr(self, key: str, counted: list[Term]) -> None:
        """Record one license's MRR spine and add its MRR and movements to the app totals."""
        # Exact rule 6: the app of the counted term with the latest (start, end).
        addon_key = counted[-1].addon_key
        first_month = month_index(counted[0].start)
        if first_month > self.as_of_index:
            return
        spine = array("d")
        prior = 0.0
        had_mrr = False
        active: list[Term] = []
        pending = 0  # counted[pending:] have not started by the snapshot yet
        cache: dict[tuple[int, ...], float] = {}
        for index in range(first_month, self.as_of_index + 1):
            day = self._snapshot(index)
            while pending < len(counted) and counted[pending].start <= day:
                active.append(counted[pending])
                pending += 1
            active = [t for t in active if (t.grace_end or t.end) > day]
            if not active:
                mrr = 0.0
                if pending == len(counted) and prior <= EPSILON:
                    # Nothing covers any later snapshot: only zero months remain.
                    spine.extend([0.0] * (self.as_of_index + 1 - index))
                    break
            else:
                ids = tuple(id(t) for t in active)
                cached = cache.get(ids)
                mrr = cached if cached is not None else cache.setdefault(ids, self._value(active))
            spine.append(mrr)
            acc = self.mrr_acc.get((index, addon_key))
            if acc is None:
                acc = self.mrr_acc[(index, addon_key)] = [0.0] * 7
            acc[0] += mrr
            movement = movement_type(mrr, prior, had_mrr)
            if movement != "unchanged":
                acc[_MOVEMENT_SLOTS[movement]] += mrr - prior
            if mrr > EPSILON:
                acc[_PAYING] += 1
                if not had_mrr and index < self.addon_first.get(addon_key, index + 1):
                    self.addon_first[addon_key] = index
                had_mrr = True
            prior = mrr
        self.tables.spines.append(Spine(key, addon_key, first_month, spine))

    def finish(self, infos: Mapping[str, LicenseInfo], customers: Mapping[str, str]) -> None:
        """Aggregate the per-license rows into the app and customer tables.

        Args:
            infos: license_key -> what its latest record says.
            customers: license_key -> customer_key.
        """
        self._renewal_tables()
        self._conversion_table()
        self._mrr_table()
        _CustomerTables(self, infos, customers).build()
        tables = self.tables
        tables.churn_events.sort(key=lambda row: (row["license_key"], row["end_date"]))
        tables.renewal_book.sort(key=lambda row: (row["license_key"], row["due_date"]))
        for events in tables.events.values():
            events.sort(key=lambda e: (e.event_date, e.addon_key, e.license_key))

    def _renewal_tables(self) -> None:
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
            # No outcome of the month can still change once its last end's grace has passed.
            complete = month_end(month_index(month)) + self.grace <= self.as_of
            tables.churn.append(
                {
                    **grain,
                    "opportunities": opportunities,
                    "cancellations": cancelled,
                    "pending": pending,
                    "churn_rate": _rate(cancelled, opportunities),
                    "is_complete": complete,
                }
            )
            tables.renewal.append(
                {
                    **grain,
                    "opportunities": opportunities,
                    "renewals": renewed,
                    "pending": pending,
                    "renewal_rate": _rate(renewed, opportunities),
                    "is_complete": complete,
                }
            )

    def _conversion_table(self) -> None:
        tables = self.tables
        groups: dict[tuple[date, str, str], list[EvaluationRow]] = defaultdict(list)
        for ev in tables.evaluation_rows:
            groups[(ev.start_date.replace(day=1), ev.addon_key, ev.conversion_type)].append(ev)
        for (month, addon_key, conversion_type), evs in sorted(groups.items()):
            days = [ev.days_to_convert for ev in evs if ev.days_to_convert is not None]
            open_evaluations = sum(1 for ev in evs if ev.is_open)
            tables.conversion.append(
                {
                    "month": month,
                    "addon_key": addon_key,
                    "conversion_type": conversion_type,
                    "evaluations": len(evs),
                    "conversions": len(days),
                    "open_evaluations": open_evaluations,
                    "returning_evaluations": sum(1 for ev in evs if ev.is_returning_customer),
                    "conversion_rate": _rate(len(days), len(evs)),
                    "median_days_to_convert": statistics.median(days) if days else None,
                    "is_complete": open_evaluations == 0,
                }
            )

    def _mrr_table(self) -> None:
        tables = self.tables
        app_months = sorted(
            (addon_key, index)
            for addon_key, first in self.addon_first.items()
            for index in range(first, self.as_of_index + 1)
        )
        rows = []
        opening = 0.0
        for addon_key, index in app_months:
            acc = self.mrr_acc.get((index, addon_key), [0.0] * 7)
            if index == self.addon_first[addon_key]:
                opening = 0.0
            rows.append(
                {
                    "month": month_start(index),
                    "addon_key": addon_key,
                    "mrr": acc[0],
                    "arr": acc[0] * 12,
                    **{
                        column: acc[_MOVEMENT_SLOTS[name]]
                        for name, column in _MOVEMENT_COLUMNS.items()
                    },
                    "paying_licenses": int(acc[_PAYING]),
                    **_rates(acc, opening, int(acc[_PAYING])),
                    "is_complete": month_end(index) <= self.as_of,
                }
            )
            opening = acc[0]
        rows.sort(key=lambda row: (row["month"], row["addon_key"]))
        tables.mrr = rows
        self.mrr_acc = {}


def _rates(acc: Sequence[float], opening: float, paying: int) -> dict[str, float | None]:
    """The SaaS rates of one month (exact rule 12: null on a zero denominator)."""
    lost = acc[_MOVEMENT_SLOTS["churn"]] + acc[_MOVEMENT_SLOTS["contraction"]]
    gained = (
        acc[_MOVEMENT_SLOTS["new"]]
        + acc[_MOVEMENT_SLOTS["reactivation"]]
        + acc[_MOVEMENT_SLOTS["expansion"]]
    )
    net = lost + acc[_MOVEMENT_SLOTS["expansion"]] + acc[_MOVEMENT_SLOTS["reactivation"]]
    return {
        "gross_mrr_churn_rate": _rate(-lost, opening),
        "net_mrr_churn_rate": _rate(-net, opening),
        "quick_ratio": _rate(gained, -lost),
        "arpa": acc[0] / paying if paying else None,
    }


class _CustomerTables:
    """dim_customers, fct_customer_mrr, fct_customer_kpis and the retention cohorts."""

    def __init__(
        self,
        builder: _Builder,
        infos: Mapping[str, LicenseInfo],
        customers: Mapping[str, str],
    ) -> None:
        self.builder = builder
        self.tables = builder.tables
        self.infos = infos
        self.customers = customers

    def build(self) -> None:
        b = self.builder
        members: dict[str, list[str]] = defaultdict(list)
        for key in sorted(set(self.customers) | set(b.first_starts)):
            members[self.customers.get(key, key)].append(key)
        self.tables.customer_of = dict(self.customers)
        kpis: dict[int, list[float]] = defaultdict(lambda: [0.0] * 8)
        cohorts: dict[tuple[str | None, int, int], list[float]] = defaultdict(lambda: [0.0] * 5)
        # (scope, cohort, months since) -> [customers, starting MRR] whose MRR is 0 from then on
        # to the as_of month: added to every later cell at the end, not month by month.
        tails: dict[tuple[str | None, int, int], list[float]] = defaultdict(lambda: [0.0, 0.0])
        # customer -> (first hosting, first month with MRR > 0, MRR at the as_of snapshot)
        summaries: dict[str, tuple[str | None, int | None, float]] = {}
        for customer, first, values in customer_series(
            self.tables.spines, self.customers, b.as_of_index
        ):
            hosting = self._first_hosting(members[customer])
            prior, had_mrr, cohort, starting = 0.0, False, None, 0.0
            # Months after the last one with MRR > 0 and its churn month only add cohort rows.
            live = len(values)
            while live and values[live - 1] <= EPSILON:
                live -= 1
            live = min(live + 1, len(values))
            for offset in range(live):
                mrr = values[offset]
                index = first + offset
                movement = movement_type(mrr, prior, had_mrr)
                acc = kpis[index]
                acc[0] += mrr
                if movement != "unchanged":
                    acc[_MOVEMENT_SLOTS[movement]] += mrr - prior
                if movement == "churn":
                    acc[_CHURNED] += 1
                if mrr > EPSILON:
                    acc[_PAYING] += 1
                    if cohort is None:
                        cohort, starting = index, mrr
                    had_mrr = True
                if cohort is not None:
                    for scope in (None, hosting):
                        cell = cohorts[(scope, cohort, index - cohort)]
                        cell[0] += 1
                        cell[1] += mrr > EPSILON
                        cell[2] += starting
                        cell[3] += mrr
                        cell[4] += min(mrr, starting)
                prior = mrr
            if cohort is not None and live < len(values):
                for scope in (None, hosting):
                    tail = tails[(scope, cohort, first + live - cohort)]
                    tail[0] += 1
                    tail[1] += starting
            summaries[customer] = (hosting, cohort, values[-1] if len(values) else 0.0)
        for (scope, cohort, since), (count, starting_sum) in tails.items():
            for k in range(since, b.as_of_index - cohort + 1):
                cell = cohorts[(scope, cohort, k)]
                cell[0] += count
                cell[2] += starting_sum
        self._kpis(kpis)
        self._cohorts(cohorts)
        self._dim(members, summaries)

    def _first_hosting(self, keys: Sequence[str]) -> str | None:
        """Exact rule 8: the hosting of the license whose first counted term starts earliest."""
        starts = self.builder.first_starts
        dated = [(starts[key], key) for key in keys if key in starts]
        if not dated:
            return None
        info = self.infos.get(min(dated)[1])
        return info.hosting if info is not None else None

    def _kpis(self, kpis: Mapping[int, list[float]]) -> None:
        paying_months = [index for index, acc in kpis.items() if acc[_PAYING]]
        if not paying_months:
            return
        opening_mrr, opening_paying = 0.0, 0
        rows = []
        for index in range(min(paying_months), self.builder.as_of_index + 1):
            acc = kpis.get(index, [0.0] * 8)
            paying = int(acc[_PAYING])
            rows.append(
                {
                    "month": month_start(index),
                    "paying_customers": paying,
                    "mrr": acc[0],
                    **{
                        column: acc[_MOVEMENT_SLOTS[name]]
                        for name, column in _MOVEMENT_COLUMNS.items()
                    },
                    "logo_churn_rate": _rate(acc[_CHURNED], opening_paying),
                    "arpa": _rate(acc[0], paying),
                    "is_complete": month_end(index) <= self.builder.as_of,
                }
            )
            opening_mrr, opening_paying = acc[0], paying
        del opening_mrr
        self.tables.customer_kpis = rows

    def _cohorts(self, cohorts: Mapping[tuple[str | None, int, int], list[float]]) -> None:
        overall, by_hosting = [], []
        for (scope, cohort, since), cell in sorted(
            cohorts.items(), key=lambda item: (str(item[0][0]), item[0][1], item[0][2])
        ):
            customers, active, starting, mrr, retained = cell
            row = {
                "cohort_month": month_start(cohort),
                "months_since": since,
                "customers": int(customers),
                "active_customers": int(active),
                "starting_mrr": starting,
                "mrr": mrr,
                "retained_mrr": retained,
                "nrr": _rate(mrr, starting),
                "grr": _rate(retained, starting),
                "logo_retention": _rate(active, customers),
            }
            if scope is None:
                overall.append(row)
            else:
                by_hosting.append({"first_hosting": scope, **row})
        self.tables.retention_cohorts = overall
        self.tables.retention_cohorts_by_hosting = by_hosting

    def _dim(
        self,
        members: Mapping[str, list[str]],
        summaries: Mapping[str, tuple[str | None, int | None, float]],
    ) -> None:
        rows = []
        for customer in sorted(members):
            keys = members[customer]
            infos = [(self.infos[key], key) for key in keys if key in self.infos]
            summary = summaries.get(customer)
            hosting, paid, current = summary or (self._first_hosting(keys), None, 0.0)
            contact = _latest_contact(infos)
            rows.append(
                CustomerRow(
                    customer,
                    tuple(sorted({i.hosting for i, _ in infos if i.hosting})),
                    tuple(sorted({i.addon_key for i, _ in infos if i.addon_key})),
                    month_start(paid) if paid is not None else None,
                    hosting,
                    current,
                    contact.company if contact else None,
                    contact.country if contact else None,
                    contact.region if contact else None,
                )
            )
        self.tables.customer_rows = rows


def _latest_contact(infos: Sequence[tuple[LicenseInfo, str]]) -> LicenseInfo | None:
    """Contacts: the most recently updated license record (else transaction line), ties: the
    smallest license_key."""
    pool = [item for item in infos if item[0].from_record] or list(infos)
    if not pool:
        return None
    latest = max(info.order for info, _ in pool)
    return min((key, info) for info, key in pool if info.order == latest)[1]

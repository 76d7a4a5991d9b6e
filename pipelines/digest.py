"""`mpac digest`: what happened since the last digest, as Markdown (and to a chat webhook)."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from pipelines.errors import UserError
from pipelines.warehouse import open_marts

if TYPE_CHECKING:
    from pipelines.destinations import Destination

# The first digest of a warehouse reports the events of this many days before as_of.
FIRST_DIGEST_DAYS = 7
# Cancellations listed one by one (with their feedback); the rest are counted.
LISTED = 10
# A spike: at least this many cancellations, and more than SPIKE_FACTOR times the daily rate of
# the BASELINE_DAYS before the window, scaled to the window's length.
SPIKE_MINIMUM = 3
SPIKE_FACTOR = 2.0
BASELINE_DAYS = 90
KINDS = ("evaluation", "conversion", "renewal", "cancellation", "refund")
TITLES = {
    "evaluation": "Evaluations started",
    "conversion": "Evaluations converted",
    "renewal": "Renewals",
    "cancellation": "Cancellations",
    "refund": "Refunds",
}

# One row per event: kind, a stable id, the day it happened, its app, and what to say about it.
# Cancellations take their feedback from fct_churn_events (metrics v2) when it exists.
_EVENTS = """
select 'evaluation' as kind, evaluation_id as id, evaluation_start_date as day, addon_key,
    conversion_type as detail, null::double as amount
from intermediate.int_evaluations_resolved
union all
select 'conversion', evaluation_id, conversion_sale_date, addon_key, conversion_type, null
from intermediate.int_evaluations_resolved where is_converted
union all
select 'renewal', renewal_opportunity_id, renewal_start_date, addon_key, billing_period, null
from intermediate.int_renewal_opportunities_resolved where outcome = 'renewed'
union all
select 'cancellation', renewal_opportunity_id, end_date, addon_key, {cancellation_detail}, null
from intermediate.int_renewal_opportunities_resolved as o where outcome = 'cancelled'
union all
select 'refund', transaction_line_id, sale_date, addon_key,
    coalesce(refund_reason, credit_note_reason, sale_type), vendor_amount
from marts.fct_transactions where is_refund
"""
_V1_FEEDBACK = (
    "billing_period || coalesce((select ' · feedback: ' || f.feedback_type || ', '"
    " || coalesce(f.reason_key, '') || coalesce(': \"' || f.message || '\"', '')"
    " from marts.fct_feedback as f where f.license_key = o.license_key"
    " and f.feedback_date between o.end_date - 30 and o.end_date + 30"
    " order by abs(f.feedback_date - o.end_date), f.feedback_date limit 1), '')"
)
_V2_FEEDBACK = (
    "billing_period || coalesce((select ' · feedback: ' || e.feedback_type || ', '"
    " || coalesce(e.feedback_reason, '') from marts.fct_churn_events as e"
    " where e.license_key = o.license_key and e.end_date = o.end_date), '')"
)


@dataclass
class Digest:
    """What a digest found: new events per kind, MRR now and before, and the window."""

    as_of: date
    previous_as_of: date | None
    first: bool
    new: dict[str, list[dict[str, Any]]]
    mrr: dict[str, float]
    previous_mrr: dict[str, float]
    seen: dict[str, list[str]] = field(default_factory=dict)
    expected_cancellations: float = 0.0

    @property
    def cancellation_spike(self) -> bool:
        count = len(self.new["cancellation"])
        return count >= SPIKE_MINIMUM and count > SPIKE_FACTOR * self.expected_cancellations

    def markdown(self, name: str) -> str:
        lines = [f"# Marketplace digest: {name}, data as of {self.as_of}", ""]
        if self.first:
            lines.append(
                f"First digest of this warehouse: the {FIRST_DIGEST_DAYS} days up to {self.as_of}."
            )
        else:
            lines.append(f"Since the last digest (data as of {self.previous_as_of}).")
        lines.append("")
        for kind in KINDS:
            events = self.new[kind]
            by_app = Counter(str(event["addon_key"]) for event in events)
            apps = ", ".join(f"{app} {count}" for app, count in sorted(by_app.items()))
            line = f"- **{TITLES[kind]}**: {len(events)}" + (f" ({apps})" if apps else "")
            if kind == "refund" and events:
                total = sum(float(event["amount"] or 0) for event in events)
                line += f", USD {total:,.2f}"
            if kind == "cancellation" and self.cancellation_spike:
                line += (
                    f" :warning: **spike**: about {self.expected_cancellations:.1f} expected "
                    f"from the {BASELINE_DAYS} days before"
                )
            lines.append(line)
            if kind == "cancellation":
                for event in sorted(events, key=lambda e: (str(e["day"]), str(e["id"])))[:LISTED]:
                    lines.append(
                        f"  - {event['addon_key']} · ended {event['day']} · {event['detail']}"
                    )
                if len(events) > LISTED:
                    lines.append(f"  - and {len(events) - LISTED} more")
        total, before = sum(self.mrr.values()), sum(self.previous_mrr.values())
        change = total - before
        since = "the last digest" if not self.first else "the close of last month"
        percent = f", {change / before:+.1%}" if before else ""
        lines += ["", f"**MRR** USD {total:,.2f} ({change:+,.2f} since {since}{percent})", ""]
        for app in sorted(set(self.mrr) | set(self.previous_mrr)):
            now, then = self.mrr.get(app, 0.0), self.previous_mrr.get(app, 0.0)
            lines.append(f"- {app}: USD {now:,.2f} ({now - then:+,.2f})")
        return "\n".join(lines).rstrip() + "\n"


def state_path(warehouse: Path, vendor: str | None = None) -> Path:
    """The digest's memory sits beside the warehouse, like dlt's and dbt's folders (one per
    vendor chosen with --vendor, so that one vendor's digest does not mark another's events)."""
    scope = f".{vendor}" if vendor else ""
    return warehouse.parent / f".{warehouse.stem}{scope}.digest.json"


def _relations(connection: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        f"{schema}.{table}"
        for schema, table in connection.execute(
            "select table_schema, table_name from information_schema.tables"
        ).fetchall()
    }


def _read_state(path: Path) -> Mapping[str, Any] | None:
    if not path.exists():
        return None
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        raise UserError(
            f"the digest's memory {path} is unreadable: delete it to start from a first digest."
        ) from None
    return found if isinstance(found, dict) else None


def collect(
    warehouse: Path, vendor: str | None = None, destination: Destination | None = None
) -> Digest:
    """Compare the warehouse (one vendor's part: see open_marts) with what the last digest saw
    (its state file)."""
    with open_marts(warehouse, vendor, destination, reader="digest") as connection:
        relations = _relations(connection)
        needed = {
            "intermediate.int_as_of_date",
            "intermediate.int_evaluations_resolved",
            "intermediate.int_renewal_opportunities_resolved",
            "marts.fct_transactions",
            "marts.fct_mrr",
        }
        if not needed <= relations:
            raise UserError("the marts are not built yet: run `mpac transform` (or `mpac run`).")
        (as_of,) = connection.execute(
            "select max(as_of_date) from intermediate.int_as_of_date"
        ).fetchone() or (None,)
        if as_of is None:
            raise UserError("the marts are empty: run `mpac run` to load data first.")
        detail = _V2_FEEDBACK if "marts.fct_churn_events" in relations else _V1_FEEDBACK
        relation = connection.execute(_EVENTS.format(cancellation_detail=detail))
        names = [d[0] for d in relation.description]
        events = [dict(zip(names, row, strict=True)) for row in relation.fetchall()]
        month_rows = connection.execute(
            "select addon_key, mrr, prior_month_mrr from marts.fct_mrr"
            " where month = (select max(month) from marts.fct_mrr)"
        ).fetchall()
    state = _read_state(state_path(warehouse, vendor))
    mrr = {str(app): float(value) for app, value, _ in month_rows}
    if state is None:
        cutoff = as_of - timedelta(days=FIRST_DIGEST_DAYS)
        seen = {
            kind: {str(e["id"]) for e in events if e["kind"] == kind and e["day"] <= cutoff}
            for kind in KINDS
        }
        previous_mrr = {str(app): float(prior) for app, _, prior in month_rows}
        previous_as_of = None
    else:
        seen = {kind: set(state.get("seen", {}).get(kind, [])) for kind in KINDS}
        previous_mrr = {str(k): float(v) for k, v in state.get("mrr", {}).items()}
        previous_as_of = date.fromisoformat(state["as_of"]) if state.get("as_of") else None
    window = (as_of - previous_as_of).days if previous_as_of else FIRST_DIGEST_DAYS
    start = as_of - timedelta(days=window)
    baseline = sum(
        1
        for e in events
        if e["kind"] == "cancellation" and start - timedelta(days=BASELINE_DAYS) <= e["day"] < start
    )
    new: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for event in events:
        if str(event["id"]) not in seen[event["kind"]]:
            new[event["kind"]].append(event)
    return Digest(
        as_of=as_of,
        previous_as_of=previous_as_of,
        first=state is None,
        new=new,
        mrr=mrr,
        previous_mrr=previous_mrr,
        seen={kind: sorted({str(e["id"]) for e in events if e["kind"] == kind}) for kind in KINDS},
        expected_cancellations=baseline * window / BASELINE_DAYS,
    )


def remember(warehouse: Path, digest: Digest, vendor: str | None = None) -> None:
    """Save what this digest saw, so the next one reports only what is new (write, rename)."""
    path = state_path(warehouse, vendor)
    # On Postgres this machine may hold no local folder of the warehouse yet.
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.partial")
    partial.write_text(
        json.dumps({"as_of": digest.as_of.isoformat(), "mrr": digest.mrr, "seen": digest.seen})
    )
    os.replace(partial, path)


def run_digest(
    warehouse: Path,
    notify: str | None = None,
    remember_it: bool = True,
    vendor: str | None = None,
    destination: Destination | None = None,
) -> str:
    """The digest as Markdown; posted to `notify` when given; remembered unless told not to."""
    from pipelines.notify import post

    digest = collect(warehouse, vendor, destination)
    text = digest.markdown(warehouse.stem)
    if notify:
        post(notify, text)
    if remember_it:
        remember(warehouse, digest, vendor)
    return text

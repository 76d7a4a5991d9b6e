"""What one running simulator holds (vendor, faults, exports, caches) and how it is built."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any, Protocol

from pipelines.errors import UserError
from pipelines.simulator.bodies import BodyCache
from pipelines.simulator.exports import ExportRegistry
from pipelines.simulator.faults import FaultConfig, FaultInjector, parse_faults
from pipelines.simulator.ground_truth.builder import compute_metrics
from pipelines.simulator.ground_truth.payloads import (
    EventWindow,
    aggregate_payload,
    details_events,
)
from pipelines.simulator.ground_truth.tables import MetricTables
from pipelines.simulator.queries import RecordFilter
from pipelines.simulator.vendor.catalog import SIZES, App
from pipelines.simulator.vendor.synthetic import SyntheticVendor

DEFAULT_EMAIL = "simulator@example.com"
DEFAULT_API_TOKEN = "sim-api-token"
# Filtered lists kept for paging (see SimulatorState.page).
_LIST_CACHE_SIZE = 8
_LIST_CACHE_RECORDS = 300_000


class Vendor(Protocol):
    """What the server needs of a vendor: SyntheticVendor, or a test's stand-in for it.

    `counts()` and `sticky_license_ids` are optional (see vendor_counts and sticky_ids).
    """

    @property
    def vendor_id(self) -> str: ...
    @property
    def developer_id(self) -> str: ...
    @property
    def apps(self) -> Sequence[App]: ...
    @property
    def today(self) -> date: ...
    def advance(self, days: int) -> None: ...
    def licenses(
        self, as_of: date | None = None, with_data_insights: bool = True
    ) -> Iterable[Mapping[str, Any]]: ...
    def transactions(self, as_of: date | None = None) -> Iterable[Mapping[str, Any]]: ...
    def feedback(self, as_of: date | None = None) -> Iterable[Mapping[str, Any]]: ...
    def marketing_attribution(self, as_of: date | None = None) -> Iterable[Mapping[str, Any]]: ...


def vendor_counts(vendor: Vendor) -> dict[str, int]:
    """Records per entity as of today, or {} for a vendor that cannot count."""
    counts = getattr(vendor, "counts", None)
    return counts() if counts is not None else {}


def sticky_ids(vendor: Vendor) -> frozenset[str]:
    """The addonLicenseIds every licenses export returns (bug MP-557), if the vendor has any."""
    sticky: frozenset[str] = getattr(vendor, "sticky_license_ids", frozenset())
    return sticky


class SimulatorState:
    """Everything one running simulator holds: the vendor, faults, exports and caches."""

    def __init__(
        self,
        vendor: Vendor,
        faults: FaultInjector | None = None,
        email: str = DEFAULT_EMAIL,
        api_token: str = DEFAULT_API_TOKEN,
        seed: int | None = None,
        size: str | int | None = None,
    ) -> None:
        self.vendor = vendor
        self.faults = faults or FaultInjector()
        self.exports = ExportRegistry(self.faults)
        self.bodies = BodyCache()
        self.email = email
        self.api_token = api_token
        self.seed = seed
        self.size = size
        self.product_of = {app.addon_key: app.product_id for app in vendor.apps}
        self.addon_of = {app.product_id: app.addon_key for app in vendor.apps}
        self.addon_names = {app.addon_key: app.name for app in vendor.apps}
        self._expected: tuple[date, MetricTables] | None = None
        # Aggregate bodies by query, for the tables they were computed from (see aggregate).
        self._aggregates: tuple[MetricTables | None, dict[tuple[object, ...], dict[str, Any]]] = (
            None,
            {},
        )
        self._lists: OrderedDict[tuple[object, ...], list[Mapping[str, Any]]] = OrderedDict()
        # The vendor draws its stories lazily when an iterator starts or today moves; that step
        # must not run twice at once (exports stream from several worker threads). Rendering
        # after it only reads, so streams run in parallel.
        self.lock = threading.RLock()
        self._expected_lock = threading.Lock()
        self._cache_lock = threading.Lock()

    def advance(self, days: int) -> date:
        with self.lock:
            self.vendor.advance(days)
            return self.vendor.today

    def records(
        self,
        kind: str,
        as_of: date | None = None,
        with_data_insights: bool = False,
        record_filter: RecordFilter | None = None,
    ) -> Iterable[Mapping[str, Any]]:
        """The vendor's records of one kind as of a day (default: the simulated today).

        With `record_filter`, only the records it keeps. The synthetic vendor then skips
        rendering the transactions sold outside the filter's window (a yearly export keeps a
        tenth of them, and rendering the rest was most of what serving one cost), the
        licenses that start after its endDate, the records last updated before its
        lastUpdated (an incremental run's pages) and the attribution outside its dates.
        """
        if kind.startswith("events:"):
            window = None
            if record_filter is not None:
                start, end = record_filter.date_window()
                window = EventWindow(start, end, record_filter.updated_since())
            events = details_events(self.expected(), kind.removeprefix("events:"), window=window)
            return record_filter.apply(events) if record_filter else events
        with self.lock:
            as_of = as_of or self.vendor.today
            # Filtered before rendering where the synthetic vendor can (see above).
            start, end = record_filter.date_window() if record_filter else (None, None)
            since = record_filter.updated_since() if record_filter else None
            vendor = self.vendor
            records: Iterable[Mapping[str, Any]]
            if kind == "licenses" and isinstance(vendor, SyntheticVendor):
                records = vendor.licenses(as_of, with_data_insights, end, since)
            elif kind == "licenses":
                records = vendor.licenses(as_of=as_of, with_data_insights=with_data_insights)
            elif kind == "transactions" and isinstance(vendor, SyntheticVendor):
                records = vendor.transactions(as_of, start, end, since)
            elif kind == "marketing_attribution" and isinstance(vendor, SyntheticVendor):
                records = vendor.marketing_attribution(as_of, start, end)
            else:
                records = getattr(self.vendor, kind)(as_of=as_of)
            # Run the generator to its first record while holding the lock: that is when the
            # vendor draws whatever it has not drawn yet.
            iterator = iter(records)
            first = list(itertools.islice(iterator, 1))
        chained = itertools.chain(first, iterator)
        return record_filter.apply(chained) if record_filter else chained

    def expected(self) -> MetricTables:
        """The ground-truth metric tables, computed once per simulated day.

        as_of is METRICS.md's default, the latest lastUpdated in the data (which can trail the
        simulated today by a day), so a warehouse built with default dbt vars reconciles to zero.
        """
        with self._expected_lock:
            today = self.vendor.today
            if self._expected is None or self._expected[0] != today:
                tables = compute_metrics(
                    self.records("licenses", today, with_data_insights=True),
                    self.records("transactions", today),
                    feedback=self.records("feedback", today),
                )
                self._expected = (today, tables)
            return self._expected[1]

    def aggregate(
        self,
        metric: str,
        aggregation: str,
        start: date | None,
        end: date | None,
        group_by: str | None,
    ) -> dict[str, Any]:
        """The body of one metric aggregate query (`aggregate_payload`), computed once per
        simulated day and query, as `expected` is.

        A large vendor's three aggregate calls cost ~4 s of counting each time they were asked,
        while the live API answers them in well under a second; the answer only depends on the
        tables of the day and the query, so a day's second ask is served from here. The caller
        must not change what it gets (it is shared).
        """
        tables = self.expected()
        key = (metric, aggregation, start, end, group_by)
        with self._expected_lock:
            computed_from, bodies = self._aggregates
            if computed_from is not tables:
                # A new simulated day (new tables): every body of the day before is stale.
                bodies = {}
                self._aggregates = (tables, bodies)
            body = bodies.get(key)
        if body is None:
            body = aggregate_payload(
                tables,
                metric,
                aggregation=aggregation,
                start=start,
                end=end,
                group_by=group_by,
                addon_names=self.addon_names,
            )
            with self._expected_lock:
                if self._aggregates[0] is tables:
                    self._aggregates[1][key] = body
        return body

    def page(
        self,
        kind: str,
        record_filter: RecordFilter,
        key: tuple[object, ...],
        insights: bool,
        offset: int,
        limit: int,
    ) -> tuple[list[Mapping[str, Any]], int]:
        """One page of a filtered list and the total match count.

        Small results are cached so walking N pages costs one filter pass, not N; a result
        larger than _LIST_CACHE_RECORDS is recounted per page rather than held in memory.
        """
        full_key = (kind, self.vendor.today, *key)
        with self._cache_lock:
            cached = self._lists.get(full_key)
            if cached is not None:
                self._lists.move_to_end(full_key)
                return cached[offset : offset + limit], len(cached)
        kept: list[Mapping[str, Any]] | None = []
        page: list[Mapping[str, Any]] = []
        total = 0
        for record in self.records(kind, with_data_insights=insights, record_filter=record_filter):
            if offset <= total < offset + limit:
                page.append(record)
            if kept is not None:
                kept.append(record)
                if len(kept) > _LIST_CACHE_RECORDS:
                    kept = None
            total += 1
        if kept is not None:
            with self._cache_lock:
                self._lists[full_key] = kept
                while len(self._lists) > _LIST_CACHE_SIZE or (
                    sum(map(len, self._lists.values())) > _LIST_CACHE_RECORDS
                ):
                    self._lists.popitem(last=False)
        return page, total


def build_state(
    seed: int = 42,
    size: str | int = "small",
    faults: FaultConfig | str | dict[str, Any] | None = None,
    email: str = DEFAULT_EMAIL,
    api_token: str = DEFAULT_API_TOKEN,
    today: date | None = None,
    injector: FaultInjector | None = None,
) -> SimulatorState:
    """Build the vendor and the state a server runs on; bad arguments raise UserError.

    `injector`: the fault layer of another vendor on the same host, to share (then `faults`
    is not used)."""
    size = parse_size(size)
    injector = injector or FaultInjector(parse_faults(faults))
    vendor = SyntheticVendor(seed=seed, size=size, today=today)
    return SimulatorState(vendor, injector, email, api_token, seed=seed, size=size)


def parse_size(size: str | int) -> str | int:
    """A size name of SIZES (tiny, small, medium, large), or a number of licenses."""
    if isinstance(size, int) or size in SIZES:
        return size
    if not size.isdigit():
        names = ", ".join(SIZES)
        raise UserError(f"Unknown vendor size {size!r}: use {names} or a number.")
    return int(size)


def state_summary(state: SimulatorState) -> dict[str, Any]:
    """What GET /admin/state shows: the simulated day, ids, counts, requests, faults, exports."""
    vendor = state.vendor
    return {
        "today": vendor.today.isoformat(),
        "vendor_id": str(vendor.vendor_id),
        "developer_id": str(vendor.developer_id),
        "seed": state.seed,
        "size": state.size,
        "counts": vendor_counts(vendor),
        "requests": dict(state.faults.counters),
        "faults": dataclasses.asdict(state.faults.config),
        "exports": {job.id: job.status for job in state.exports.jobs.values()},
    }

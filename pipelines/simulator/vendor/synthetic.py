"""A seeded, deterministic synthetic Marketplace vendor whose records look like the v2 API's."""

from __future__ import annotations

import itertools
import math
import random
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from pipelines.simulator.vendor.catalog import (
    APP_SPECS,
    DEFAULT_TODAY,
    EPOCH,
    EVAL_DAYS,
    GROWTH_PER_YEAR,
    HORIZON_DAYS,
    HORIZON_MARGIN,
    HOSTINGS,
    MASK64,
    REFUND,
    SIZES,
    VENDOR_SLUGS,
    App,
    mix64,
)
from pipelines.simulator.vendor.render import Renderer
from pipelines.simulator.vendor.stories import (
    L_ATTRIB,
    L_EVENTS,
    L_FEEDBACK,
    L_RELATED,
    L_START,
    L_TXS,
    ORIGINAL,
    T_REFUNDED,
    T_REWRITE,
    T_SALE,
    T_TYPE,
    draw_story,
)


# Size and speed (seed 42, today 2026-11-15, 2 shared cores, CPython 3.11): stories are tuples of
# ints and records are rendered lazily, so a large vendor is built once and streamed.
#   size   construct  licenses   transaction lines  iterate licenses / transactions  peak RSS
#   tiny   < 0.01 s   ~80        ~200               < 0.01 s
#   small  0.03 s     ~830       ~2,000             < 0.1 s                          ~20 MB
#   large  21-24 s    1,037,375  2,640,194          9-14 s / 15-18 s                 ~1.9 GB
class SyntheticVendor:
    """One Marketplace vendor's licenses, sales, feedback and attribution, as of a movable day.

    Every license's whole story is drawn up front from (seed, story index) and held as tuples of
    ints; records are rendered lazily, as of a day, from the events on or before it.

    Attributes:
        vendor_id: The numeric v2 vendor id.
        developer_id: The v3 developer-space UUID.
        apps: The vendor's apps.
        today: The simulated "today".
        sticky_license_ids: addonLicenseIds of 2018 licenses that bug MP-557 exports every time.
    """

    def __init__(
        self, seed: int = 42, size: str | int = "small", today: date | None = None
    ) -> None:
        """Draw the vendor.

        Args:
            seed: The seed: the same seed always gives the same vendor.
            size: `tiny`, `small`, `large` or a number of licenses (as of today).
            today: The simulated today; DEFAULT_TODAY when None (never the wall clock).
        """
        n = SIZES[size] if isinstance(size, str) else int(size)
        self.seed = seed
        self.today = today or DEFAULT_TODAY
        self._today0 = (self.today - EPOCH).days
        self._horizon = self._today0 + HORIZON_DAYS
        mix = mix64(seed)
        self.vendor_id = str(1_000_000 + mix % 8_000_000)
        self.developer_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"mpac-sim:developer:{seed}"))
        slug = VENDOR_SLUGS[mix % len(VENDOR_SLUGS)]
        self.apps = [
            App(
                addon_key=f"com.{slug}.{spec[0]}",
                name=spec[1],
                product_id=str(
                    uuid.uuid5(uuid.NAMESPACE_URL, f"mpac-sim:{seed}:com.{slug}.{spec[0]}")
                ),
                hostings=tuple(HOSTINGS[h] for h in spec[2]),
            )
            for spec in APP_SPECS
        ]
        self._render = Renderer(seed, self.apps)
        # New licenses per day grow exponentially; story i starts where the cumulative count
        # reaches i, so indices are chronological and a story never depends on the others.
        self._g = math.log(1 + GROWTH_PER_YEAR) / 365
        self._rate = n * self._g / math.expm1(self._g * self._today0)
        self._licenses: list[tuple[Any, ...]] = []
        self._n_stories = 0
        self._drawn_to = -1
        self._draw_until(self._today0)
        y2018, y2019 = (date(2018, 1, 1) - EPOCH).days, (date(2019, 1, 1) - EPOCH).days
        sticky: list[str] = []
        # The latest start of a sticky license: licenses(started_by=...) must not skip them.
        self._sticky_last_start = -1
        for lic in self._licenses:
            if lic[L_RELATED] != ORIGINAL:
                continue  # a v2 cross-sell or migration: not where its story starts
            if lic[L_START] >= y2019 or len(sticky) == 3:
                break
            if lic[L_START] >= y2018:
                sticky.append(self._render.ids(lic)["addonLicenseId"])
                self._sticky_last_start = lic[L_START]
        self.sticky_license_ids = frozenset(sticky)

    # --- drawing -------------------------------------------------------------------------

    def _story_start(self, i: float) -> int:
        return int(math.log1p(i * self._g / self._rate) / self._g)

    def _draw_until(self, day: int) -> None:
        """Draw the stories that start on or before `day` (advance() calls it again)."""
        rng = random.Random()
        base = mix64(self.seed ^ 0x5EED)
        out = self._licenses
        i = self._n_stories
        while True:
            rng.seed(base ^ (i * 0x9E3779B97F4A7C15 & MASK64))
            start = self._story_start(i + rng.random())
            # Attribution precedes an evaluation by up to 30 days: draw those stories too.
            if start > day + EVAL_DAYS + 1:
                break
            out.extend(draw_story(rng, i, start, self._horizon))
            i += 1
        self._n_stories = i
        self._drawn_to = day
        self._counts_cache: dict[int, dict[str, int]] = {}

    # --- public API --------------------------------------------------------------------------

    def advance(self, days: int) -> None:
        """Move today forward by `days` (>= 1): new records appear, some old ones change.

        Args:
            days: How many days to move forward.

        Raises:
            ValueError: When days < 1.
        """
        if days < 1:
            raise ValueError("advance() needs days >= 1")
        self.today += timedelta(days=days)
        self._as_of(self.today)

    def _as_of(self, as_of: date | None) -> int:
        day = ((as_of or self.today) - EPOCH).days
        if day > self._horizon - HORIZON_MARGIN:
            # Past the drawn future: redraw every story further out. Prefixes are stable, so
            # nothing already rendered changes.
            self._horizon = day + HORIZON_DAYS
            self._licenses = []
            self._n_stories = 0
            self._drawn_to = -1
        if day > self._drawn_to:
            self._draw_until(max(day, self._today0))
        return day

    def counts(self, as_of: date | None = None) -> dict[str, int]:
        """Return the number of records each iterator yields as of a day.

        Args:
            as_of: The day; today when None.

        Returns:
            Rows per entity: licenses, transactions, feedback, marketing_attribution.
        """
        day = self._as_of(as_of)
        if day in self._counts_cache:
            return dict(self._counts_cache[day])
        lic = tx = fb = ma = 0
        for rec in self._licenses:
            if rec[L_START] <= day:
                lic += 1
                txs = rec[L_TXS]
                if txs and txs[0][0] <= day:
                    tx += bisect_right(txs, day, key=_sale_key)
                fb += sum(1 for f in rec[L_FEEDBACK] if f[0] <= day)
                ma += len(rec[L_ATTRIB])
        result = {"licenses": lic, "transactions": tx, "feedback": fb, "marketing_attribution": ma}
        self._counts_cache[day] = result
        return dict(result)

    def licenses(
        self,
        as_of: date | None = None,
        with_data_insights: bool = True,
        started_by: date | None = None,
        updated_since: date | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield the license records as of a day, in license order.

        Args:
            as_of: The day; today when None.
            with_data_insights: Whether to add the data-insight fields (from 2018-07 only).
            started_by: Leave out the licenses that start after this day (a maintenance period
                never starts before its license does, so an endDate filter drops them anyway),
                except the sticky ones (MP-557), which every export returns.
            updated_since: Leave out the licenses last updated before this day (decided from
                the story, without rendering: an incremental run's pages keep a few).

        Yields:
            One v2 License dict per license that exists on that day.
        """
        day = self._as_of(as_of)
        last = day
        if started_by is not None:
            last = min(day, max((started_by - EPOCH).days, self._sticky_last_start))
        since = (updated_since - EPOCH).days if updated_since else -1
        for rec in self._licenses:
            if rec[L_START] <= last and (since < 0 or _license_updated_since(rec, day, since)):
                yield self._render.license(rec, day, with_data_insights)

    def transactions(
        self,
        as_of: date | None = None,
        sold_from: date | None = None,
        sold_to: date | None = None,
        updated_since: date | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield the transaction lines as of a day, by license then sale date.

        Args:
            as_of: The day; today when None.
            sold_from: Only lines sold on or after this day (None: from the first).
            sold_to: Only lines sold on or before this day (None: up to `as_of`).
            updated_since: Only lines last updated on or after this day.

        Yields:
            One v2 Transaction dict per line sold on or before that day (and in the window).
        """
        day = self._as_of(as_of)
        # The sale window is applied before rendering: a yearly export keeps a tenth of the
        # lines, and rendering the other nine tenths was most of what serving it cost.
        first = (sold_from - EPOCH).days if sold_from else -1
        last = min(day, (sold_to - EPOCH).days) if sold_to else day
        since = (updated_since - EPOCH).days if updated_since else -1
        for rec in self._licenses:
            txs = rec[L_TXS]
            if not txs or txs[0][0] > last or txs[-1][0] < first:
                continue
            begin = bisect_left(txs, first, key=_sale_key) if first > txs[0][0] else 0
            if begin == len(txs) or txs[begin][T_SALE] > last:
                continue
            ids: dict[str, str] | None = None
            for t in itertools.islice(txs, begin, None):
                if t[T_SALE] > last:
                    break
                if since >= 0 and _transaction_updated(t, day) < since:
                    continue
                if ids is None:
                    ids = self._render.ids(rec)
                    cust = self._render.customer(rec, day)
                yield self._render.transaction(rec, t, day, ids, cust)

    def feedback(self, as_of: date | None = None) -> Iterator[dict[str, Any]]:
        """Yield the feedback rows (uninstall, disable, unsubscribe) as of a day.

        Args:
            as_of: The day; today when None.

        Yields:
            One v2 VendorFeedback dict per event on or before that day.
        """
        day = self._as_of(as_of)
        for rec in self._licenses:
            for f in rec[L_FEEDBACK]:
                if f[0] <= day:
                    yield self._render.feedback(rec, f)

    def marketing_attribution(
        self,
        as_of: date | None = None,
        since: date | None = None,
        until: date | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield the marketing attribution rows as of a day.

        Args:
            as_of: The day; today when None.
            since: Only rows whose eventTimestamp falls on or after this day.
            until: Only rows whose eventTimestamp falls on or before this day.

        Yields:
            One v2 MarketingAttributionActivity dict per event of an evaluation started on or
            before that day.
        """
        day = self._as_of(as_of)
        # eventTimestamp is EPOCH + a[1] seconds: its day is a[1] // 86400, known unrendered.
        first = (since - EPOCH).days if since else None
        last = (until - EPOCH).days if until else None
        for rec in self._licenses:
            # Atlassian attributes the 30 days of page activity before an evaluation once the
            # evaluation starts: the rows appear on that day, dated up to 30 days earlier.
            if rec[L_START] <= day:
                for a in rec[L_ATTRIB]:
                    stamp_day = a[1] // 86_400
                    if (first is None or stamp_day >= first) and (
                        last is None or stamp_day <= last
                    ):
                        yield self._render.attribution(rec, a)


def _sale_key(t: tuple[int, ...]) -> int:
    return t[0]


# The two rules below restate how render.py dates lastUpdated, so that a lastUpdated filter can
# skip rendering; the byte-identical comparison in DECISIONLOG.md (perf) checks they agree.


def _license_updated_since(rec: tuple[Any, ...], day: int, since: int) -> bool:
    """Whether the license's lastUpdated as of `day` is on or after `since`: its start, an
    event or a sale (refunds aside) on a day in [since, day]."""
    if since <= rec[L_START] <= day:
        return True
    if any(since <= event[0] <= day for event in rec[L_EVENTS]):
        return True
    return any(since <= t[T_SALE] <= day and t[T_TYPE] != REFUND for t in rec[L_TXS])


def _transaction_updated(t: tuple[int, ...], day: int) -> int:
    """A transaction line's lastUpdated as of `day` (a rewrite or refund counts once done)."""
    last = t[T_SALE]
    if 0 < t[T_REWRITE] <= day:
        last = max(last, t[T_REWRITE])
    if 0 < t[T_REFUNDED] <= day:
        last = max(last, t[T_REFUNDED])
    return int(last)

"""Drawing customer stories: each license's whole life as tuples of ints, from one RNG."""

from __future__ import annotations

import random
from typing import Any

from pipelines.simulator.vendor.catalog import (
    ACTIVE,
    ANNUAL,
    APP_SPECS,
    CANCELLED,
    CLOUD,
    CLOUD_APPS,
    CLOUD_TIERS,
    COMMERCIAL,
    CROSS_SELL_PERCENT,
    DC,
    DC_ENTITLEMENT_DAY,
    DOWNGRADE,
    DRIFT_PERCENT,
    EDITION_PRICE_PERCENT,
    EDITION_TRIAL_PERCENT,
    EVAL_DAYS,
    F_ADVANCED,
    F_EDITIONED,
    F_EXPERT,
    F_FULL_REFUND,
    F_LOYALTY,
    F_MANUAL,
    F_NET30,
    F_PROMO,
    F_SWITCH,
    INACTIVE,
    LATE_START_PERCENT,
    MIGRATION_PERCENT,
    MONTHLY,
    NEW,
    ONPREM_APPS,
    ONPREM_TIERS,
    PARTNERS,
    REASONS,
    REFUND,
    RENEWAL,
    SERVER,
    SERVER_END,
    TWO_YEAR_PERCENT,
    UPGRADE,
    ZERO_LENGTH_PERCENT,
    days_to_month_end,
    list_price_cents,
    mix64,
    percent,
    sale_amounts,
    term_end,
)

# Transaction tuple slots.
T_SALE, T_K, T_LINE, T_TYPE, T_MS, T_ME, T_BILL, T_USERS, T_OLD, T_LIST = range(10)
T_PRICE, T_VENDOR, T_FLAGS, T_ORIG_K, T_ORIG_SALE, T_REWRITE, T_REFUNDED, T_LTYPE = range(10, 18)

# License event codes: (day, code, a, b).
EV_EVAL, EV_PAID, EV_STATUS, EV_CONVERT, EV_UPG_EVAL, EV_UPG_END = range(6)
EV_TIER_FLAP, EV_CONTACT, EV_ENTNUM = 6, 7, 8
# v2: an edition upgrade trial starts (a = start); the tried edition is bought (a = trial start).
EV_EDITION_TRIAL, EV_EDITION_BOUGHT = 9, 10

# License tuple slots.
(
    L_NO,
    L_APP,
    L_HOST,
    L_SALT,
    L_CUST,
    L_START,
    L_USERS,
    L_PARTNER,
    L_EVENTS,
    L_TXS,
    L_FEEDBACK,
    L_ATTRIB,
    L_RELATED,
) = range(13)
# L_RELATED: the license number a Cloud migration came from; else one of these.
ORIGINAL, CROSS_SELL = -1, -2


class _Story:
    """Draws one customer's licenses (a primary, sometimes a same-cart companion) from one RNG."""

    __slots__ = ("attrib", "events", "fb", "horizon", "k", "rng", "txs")

    def __init__(self, rng: random.Random, horizon: int) -> None:
        self.rng = rng
        self.horizon = horizon
        self.k = 0
        self.txs: list[list[int]] = []
        self.events: list[tuple[int, int, int, int]] = []
        self.fb: list[tuple[int, int, int, int]] = []
        self.attrib: list[tuple[int, int, int]] = []

    def tx(
        self,
        sale: int,
        stype: int,
        ms: int,
        me: int,
        billing: int,
        users: int,
        old: int,
        lst: int,
        flags: int,
        hosting: int,
        ltype: int,
    ) -> list[int]:
        """Append a sale line and return it (a list: refunds mark it later)."""
        self.k += 1
        price, vendor = sale_amounts(lst, flags, hosting)
        rewrite = sale + 20 + int(self.rng.random() * 300) if self.rng.random() < 0.05 else 0
        row = [sale, self.k, 1, stype, ms, me, billing, users, old, lst, price, vendor, flags]
        row += [-1, 0, rewrite, 0, ltype]
        self.txs.append(row)
        return row

    def maybe_refund(self, row: list[int], hosting: int) -> bool:
        """Sometimes refund a paid line a few days later; return True when fully refunded."""
        rng = self.rng
        if row[T_PRICE] <= 0 or rng.random() >= 0.035:
            return False
        day = row[T_SALE] + 1 + int(rng.random() * 12)
        full = rng.random() < 0.6
        if full:
            price, vendor = -row[T_PRICE], -row[T_VENDOR]
            row[T_REFUNDED] = day
        else:
            price = -max(1, int(row[T_PRICE] * (0.2 + 0.4 * rng.random())))
            vendor = price * (85 if hosting == CLOUD else 75) // 100
            vendor = max(vendor, price + 1) if vendor <= price else vendor
        self.k += 1
        flags = F_FULL_REFUND if full else 0
        ref = [day, self.k, 1, REFUND, row[T_MS], row[T_ME], row[T_BILL], row[T_USERS], -1, 0]
        ref += [price, vendor, flags, row[T_K], row[T_SALE], 0, 0, row[T_LTYPE]]
        self.txs.append(ref)
        return full


def _renewal_start(te: int, bits: int) -> int:
    """The day a renewal of a term ending at `te` starts: `te`, or past the month end (in grace)."""
    gap = days_to_month_end(te)
    if gap < 5 and percent(bits, te) < LATE_START_PERCENT:
        return te + gap + 1 + (bits >> 7) % 2  # 1..7 days late, always into the next month
    return te


def _drifted(lst: int, bits: int, day: int) -> int:
    """A list price a few cents off, sometimes (prices drift by rounding in the live API)."""
    if lst > 0 and percent(bits, day ^ 0xD81F7) < DRIFT_PERCENT:
        return lst + (mix64(bits ^ day) % 7) - 3
    return lst


def _draw_cloud(
    st: _Story, app: int, start: int, users: int, partner: int, bits: int = 0, direct: bool = False
) -> int:
    """Draw a Cloud license's evaluation, conversion and subscription; return the initial users.

    `bits` (a hash of the customer) decides the v2 features; `direct` skips the evaluation.
    """
    rng = st.rng
    ev = st.events
    hz = st.horizon
    direct = rng.random() < 0.08 or direct
    if direct:
        conv = start
        ev.append((start, EV_PAID, COMMERCIAL, start))
    else:
        end = start + EVAL_DAYS
        ev.append((start, EV_EVAL, start, end))
        x = rng.random()
        if x < 0.34:
            conv = start + 1 + int(rng.random() * (EVAL_DAYS - 1))
        elif x < 0.44:
            conv = end + int(rng.random() * 31)
        elif x < 0.47:
            # Late converters fall outside the 30-day conversion window on purpose.
            conv = end + 31 + int(rng.random() * 90)
        else:
            conv = -1
        if conv < 0 or conv > end:
            if end <= hz:
                ev.append((end, EV_STATUS, INACTIVE, 0))
            if conv < 0:
                if rng.random() < 0.3:
                    _feedback(st, start + int(rng.random() * EVAL_DAYS), 0)
                return users
        if conv > hz:
            return users
        ev.append((conv, EV_CONVERT, start, end))
    billing = ANNUAL if rng.random() < 0.3 else MONTHLY
    flags = F_EXPERT if partner >= 0 else 0
    if rng.random() < 0.06:
        flags |= F_PROMO
    ts = conv
    te = term_end(ts, billing)
    lst = list_price_cents(app, CLOUD, users, billing)
    row = st.tx(conv, NEW, ts, te, billing, users, -1, lst, flags, CLOUD, COMMERCIAL)
    if st.maybe_refund(row, CLOUD):
        ev.append((row[T_REFUNDED], EV_STATUS, CANCELLED, 0))
        return users
    upgrade_eval_done = False
    edition = 0  # F_EDITIONED once an edition trial started, | F_ADVANCED once bought
    p_cancel = 0.13 if billing == MONTHLY else 0.2
    while True:
        pflags = (F_EXPERT if partner >= 0 else 0) | edition
        span = te - ts
        x = rng.random()
        if x < (0.06 if billing == MONTHLY else 0.25) and span > 3:
            u = ts + 1 + int(rng.random() * (span - 2))
            if u > hz:
                break
            y = rng.random()
            if billing == ANNUAL and y < 0.3:
                # Prorated upgrade: same term, amounts add up.
                nu = _bigger(users)
                full = list_price_cents(app, CLOUD, nu, ANNUAL) - list_price_cents(
                    app, CLOUD, users, ANNUAL
                )
                lst = max(100, full * (te - u) // span)
                row = st.tx(u, UPGRADE, ts, te, ANNUAL, nu, users, lst, pflags, CLOUD, COMMERCIAL)
                users = nu
                if st.maybe_refund(row, CLOUD):
                    ev.append((row[T_REFUNDED], EV_STATUS, CANCELLED, 0))
                    return users
            elif billing == ANNUAL and y < 0.45 and not upgrade_eval_done and te - u > 80:
                upgrade_eval_done = True
                r_end = u + EVAL_DAYS
                if percent(bits, u) < EDITION_TRIAL_PERCENT:
                    # v2: an edition upgrade trial; bought through an Upgrade line of the edition.
                    ev.append((u, EV_EDITION_TRIAL, u, 0))
                    edition = F_EDITIONED
                    if rng.random() < 0.5:
                        c2 = u + 1 + int(rng.random() * 35)
                        if c2 > hz:
                            break
                        ev.append((c2, EV_EDITION_BOUGHT, u, 0))
                        edition = F_EDITIONED | F_ADVANCED
                        ts, te = c2, term_end(c2, ANNUAL)
                        lst = list_price_cents(app, CLOUD, users, ANNUAL)
                        lst = lst * EDITION_PRICE_PERCENT // 100
                        fl = pflags | edition
                        row = st.tx(c2, UPGRADE, ts, te, ANNUAL, users, users, lst, fl, CLOUD, 1)
                        if st.maybe_refund(row, CLOUD):
                            ev.append((row[T_REFUNDED], EV_STATUS, CANCELLED, 0))
                            return users
                        continue
                    continue
                ev.append((u, EV_UPG_EVAL, u, r_end))
                if rng.random() < 0.5:
                    c2 = u + 1 + int(rng.random() * 35)
                    if c2 > hz:
                        break
                    ev.append((c2, EV_CONVERT, u, r_end))
                    nu = _bigger(users)
                    ts, te = c2, term_end(c2, ANNUAL)
                    lst = list_price_cents(app, CLOUD, nu, ANNUAL)
                    row = st.tx(c2, NEW, ts, te, ANNUAL, nu, users, lst, pflags, CLOUD, COMMERCIAL)
                    users = nu
                    if st.maybe_refund(row, CLOUD):
                        ev.append((row[T_REFUNDED], EV_STATUS, CANCELLED, 0))
                        return users
                    continue
                if r_end <= hz:
                    ev.append((r_end, EV_UPG_END, u, r_end))
            else:
                if billing == MONTHLY and y < 0.35:
                    stype, nb, nu, f = UPGRADE, ANNUAL, users, F_SWITCH
                elif y < 0.75 or users <= 15:
                    stype, nb, nu, f = UPGRADE, billing, _bigger(users), 0
                else:
                    stype, nb, nu, f = DOWNGRADE, billing, _smaller(users), 0
                ts, te = u, term_end(u, nb)
                lst = list_price_cents(app, CLOUD, nu, nb)
                fl = pflags | f
                row = st.tx(u, stype, ts, te, nb, nu, users, lst, fl, CLOUD, COMMERCIAL)
                billing, users = nb, nu
                if st.maybe_refund(row, CLOUD):
                    ev.append((row[T_REFUNDED], EV_STATUS, CANCELLED, 0))
                    return users
                continue
        if te > hz:
            break
        y = rng.random()
        if y < p_cancel:
            ev.append((te, EV_STATUS, CANCELLED, 0))
            if rng.random() < 0.4:
                _feedback(st, te - int(rng.random() * 10), 2)
            break
        if y < p_cancel + 0.03:
            # Late renewal: a churn at te, then a reactivation 8..90 days later.
            sale = te + 8 + int(rng.random() * 83)
            ev.append((te, EV_STATUS, CANCELLED, 0))
            if sale > hz:
                break
            ev.append((sale, EV_STATUS, ACTIVE, 0))
            ts = sale
        else:
            sale = te + int(rng.random() * 7) - 3
            ts = _renewal_start(te, bits)
        te = term_end(ts, billing)
        if billing == ANNUAL and rng.random() < 0.15:
            pflags |= F_LOYALTY
        lst = _drifted(list_price_cents(app, CLOUD, users, billing), bits, ts)
        if edition & F_ADVANCED:
            lst = lst * EDITION_PRICE_PERCENT // 100
        row = st.tx(sale, RENEWAL, ts, te, billing, users, -1, lst, pflags, CLOUD, COMMERCIAL)
        if st.maybe_refund(row, CLOUD):
            ev.append((row[T_REFUNDED], EV_STATUS, CANCELLED, 0))
            break
        if lst > 0 and percent(bits, ts ^ 0x2E50) < ZERO_LENGTH_PERCENT:
            # A paid line whose start equals its end: it forms no term (METRICS.md v2).
            st.tx(sale, UPGRADE, ts, ts, billing, users, users, 300, pflags, CLOUD, COMMERCIAL)
    return users


def _draw_onprem(
    st: _Story, app: int, hosting: int, start: int, users: int, partner: int, bits: int = 0
) -> int:
    """Draw a Server or Data Center license: an evaluation, a free licence or annual maintenance.

    Returns:
        The day its customer moved to Cloud (a migration), or -1.
    """
    rng = st.rng
    ev = st.events
    hz = st.horizon
    x = rng.random()
    if x < 0.2:
        ev.append((start, EV_EVAL, start, start + EVAL_DAYS))
        if start + EVAL_DAYS <= hz:
            ev.append((start + EVAL_DAYS, EV_STATUS, INACTIVE, 0))
        return -1
    ltype = COMMERCIAL if x < 0.9 else 2 + int(rng.random() * 3)
    ev.append((start, EV_PAID, ltype, start))
    # v2: some Data Center licenses buy two years at a time, billed "Annual".
    years = 2 if hosting == DC and percent(bits, 0x2EA5) < TWO_YEAR_PERCENT else 1
    ts, te = start, term_end(start, ANNUAL, years)
    flags = F_EXPERT if partner >= 0 and ltype == COMMERCIAL else 0
    if ltype == COMMERCIAL and rng.random() < 0.05:
        flags |= F_MANUAL
    if ltype == COMMERCIAL and rng.random() < 0.2:
        flags |= F_NET30
    lst = list_price_cents(app, hosting, users, ANNUAL) * years if ltype == COMMERCIAL else 0
    row = st.tx(start, NEW, ts, te, ANNUAL, users, -1, lst, flags, hosting, ltype)
    if st.maybe_refund(row, hosting):
        ev.append((row[T_REFUNDED], EV_STATUS, CANCELLED, 0))
        return -1
    while te <= hz:
        y = rng.random()
        stop = hosting == SERVER and te > SERVER_END
        if stop or y < 0.12:
            ev.append((te, EV_STATUS, INACTIVE, 0))
            if rng.random() < 0.1:
                _feedback(st, te, 1)
            migrates = ltype == COMMERCIAL and app in CLOUD_APPS
            if migrates and percent(bits, 0x313) < MIGRATION_PERCENT:
                return te - 14  # the Cloud trial starts two weeks before maintenance ends
            return -1
        if y < 0.19:
            # Lapses, then comes back with a new year from the renewal day.
            sale = te + 30 + int(rng.random() * 170)
            if hosting == SERVER and sale > SERVER_END:
                ev.append((te, EV_STATUS, INACTIVE, 0))
                return -1
            ev.append((te, EV_STATUS, INACTIVE, 0))
            if sale > hz:
                return -1
            ev.append((sale, EV_STATUS, ACTIVE, 0))
            ts = sale
        else:
            sale = te - int(rng.random() * 8)
            ts = _renewal_start(te, bits)
        te = term_end(ts, ANNUAL, years)
        lst = list_price_cents(app, hosting, users, ANNUAL) * years if ltype == COMMERCIAL else 0
        lst = _drifted(lst, bits, ts)
        row = st.tx(sale, RENEWAL, ts, te, ANNUAL, users, -1, lst, flags, hosting, ltype)
        if st.maybe_refund(row, hosting):
            ev.append((row[T_REFUNDED], EV_STATUS, CANCELLED, 0))
            return -1
    return -1


def _feedback(st: _Story, day: int, kind: int) -> None:
    if day <= st.horizon:
        rng = st.rng
        ftype = kind if kind != 2 else (2 if rng.random() < 0.5 else 0)
        st.fb.append((day, ftype, int(rng.random() * len(REASONS)), rng.getrandbits(32)))


def _bigger(users: int) -> int:
    i = CLOUD_TIERS.index(users) if users in CLOUD_TIERS else 0
    return CLOUD_TIERS[min(i + 3, len(CLOUD_TIERS) - 1)] if users < 1200 else users + 300


def _smaller(users: int) -> int:
    i = CLOUD_TIERS.index(users) if users in CLOUD_TIERS else 3
    return CLOUD_TIERS[max(i - 3, 2)]


def draw_story(rng: random.Random, i: int, start: int, horizon: int) -> list[tuple[Any, ...]]:
    """Draw story i: the fixed facts first, then the lifecycle, which the horizon truncates.

    Drawing the variable-length lifecycle last keeps a story's prefix the same whatever the
    horizon, so extending the horizon (a redraw) never changes a record already shown.
    """
    st = _Story(rng, horizon)
    hz = horizon
    years = start / 365
    cust = rng.getrandbits(64)
    salt = rng.getrandbits(64)
    partner = int(rng.random() * len(PARTNERS)) if rng.random() < 0.1 else -1
    companion = -1
    if rng.random() < min(0.85, 0.3 + 0.08 * years):
        hosting = CLOUD
        app = CLOUD_APPS[int(rng.random() * len(CLOUD_APPS))]
        users = CLOUD_TIERS[int(rng.random() * len(CLOUD_TIERS))]
        other = CLOUD_APPS[int(rng.random() * len(CLOUD_APPS))]
        if rng.random() < 0.07 and other != app:
            companion = other
        # An odd salt marks a sandbox install: the API flaps those licenses' tier.
        salt = salt | 1 if rng.random() < 0.05 else salt & ~1
    else:
        app = ONPREM_APPS[int(rng.random() * len(ONPREM_APPS))]
        dc = rng.random() < min(0.9, 0.1 + 0.1 * years) or start > SERVER_END
        hosting = DC if dc else SERVER
        users = ONPREM_TIERS[int(rng.random() * len(ONPREM_TIERS))]
        salt &= ~1
    contact_day = start + 10 + int(rng.random() * 500) if rng.random() < 0.04 else -1
    if hosting == CLOUD and rng.random() < 0.5:
        for _ in range(1 + int(rng.random() * 4)):
            # Activity on the app's pages in the 30 days before the evaluation started.
            t = start * 86400 - 1 - int(rng.random() * (30 * 86400 - 1))
            st.attrib.append((t // 86400, t, rng.getrandbits(32)))
        st.attrib.sort()
    bits = mix64(cust ^ 0xB175)
    migration = -1
    if hosting == CLOUD:
        _draw_cloud(st, app, start, users, partner, bits)
    else:
        migration = _draw_onprem(st, app, hosting, start, users, partner, bits)
    ev = st.events
    if ev[0][1] != EV_EVAL:
        st.attrib.clear()  # bought outright: no evaluation to attribute
    if salt & 1:
        d, flap = start + 5 + (salt >> 8) % 200, 1
        while d <= hz and flap < 20:
            ev.append((d, EV_TIER_FLAP, flap % 2, 0))
            d += 30 + (salt >> (8 + flap)) % 170
            flap += 1
    if 0 <= contact_day <= hz:
        ev.append((contact_day, EV_CONTACT, 1, 0))
    if hosting == DC and start < DC_ENTITLEMENT_DAY <= hz:
        ev.append((DC_ENTITLEMENT_DAY, EV_ENTNUM, 0, 0))
    ev.sort(key=_day_key)
    st.txs.sort(key=_sale_k_key)
    txs = tuple(tuple(t) for t in st.txs)
    events = tuple(ev)
    no = 2 * i
    attrib = tuple(st.attrib)
    fb = tuple(st.fb)
    lics = [
        (no, app, hosting, salt, cust, start, users, partner, events, txs, fb, attrib, ORIGINAL)
    ]
    if companion >= 0 and percent(bits, 0xC055) < CROSS_SELL_PERCENT:
        # v2 cross-sell: the second app is bought on the same site at the first renewal.
        first = next((t for t in txs if t[T_TYPE] == RENEWAL and t[T_PRICE] > 0), None)
        if first is not None:
            day = first[T_SALE]
            sold = [t for t in txs if t[T_TYPE] != REFUND and t[T_SALE] >= day]
            ks = {t[T_K] for t in sold}
            kept = [t for t in txs if t in sold or (t[T_TYPE] == REFUND and t[T_ORIG_K] in ks)]
            rows = [list(t) for t in kept]
            rows[0][T_TYPE] = NEW
            ctxs = _companion_txs(tuple(tuple(r) for r in rows), app, companion)
            later = [e for e in events if e[0] > day and e[1] in (EV_STATUS, EV_TIER_FLAP)]
            xevents = ((day, EV_PAID, COMMERCIAL, day), *later)
            lics.append(
                (
                    no + 1,
                    companion,
                    CLOUD,
                    salt ^ 2,
                    cust,
                    day,
                    users,
                    partner,
                    xevents,
                    ctxs,
                    (),
                    (),
                    CROSS_SELL,
                )
            )
    elif companion >= 0:
        # Same cart: the companion app's lines share the primary's transactionIds.
        ctxs = _companion_txs(txs, app, companion)
        lics.append(
            (
                no + 1,
                companion,
                CLOUD,
                salt ^ 2,
                cust,
                start,
                users,
                partner,
                events,
                ctxs,
                (),
                (),
                ORIGINAL,
            )
        )
    if 0 <= migration <= hz:
        # v2: the customer moves to Cloud (a CMT trial, then maybe a purchase) on a new license.
        mst = _Story(random.Random(mix64(cust ^ 0x5EC0D)), hz)
        mst.k = 5000  # its transactionIds never meet the on-prem license's
        musers = CLOUD_TIERS[4 + bits % (len(CLOUD_TIERS) - 4)]
        _draw_cloud(mst, app, migration, musers, partner, bits)
        mst.events.sort(key=_day_key)
        mst.txs.sort(key=_sale_k_key)
        lics.append(
            (
                no + 1,
                app,
                CLOUD,
                (salt ^ 4) & ~1,
                cust,
                migration,
                musers,
                partner,
                tuple(mst.events),
                tuple(tuple(t) for t in mst.txs),
                tuple(mst.fb),
                (),
                no,
            )
        )
    return lics


def _day_key(e: tuple[int, ...]) -> int:
    return e[0]


def _sale_k_key(t: list[int]) -> tuple[int, int]:
    return t[0], t[1]


def _companion_txs(txs: tuple[tuple[int, ...], ...], app: int, companion: int) -> tuple:
    """Return the companion app's lines of the cart transactions (line 2, its own prices)."""
    ratio = APP_SPECS[companion][4] / APP_SPECS[app][4]
    originals: dict[int, tuple[int, int]] = {}
    out = []
    for t in txs:
        row = list(t)
        row[T_LINE] = 2
        if t[T_TYPE] == REFUND:
            price, vendor = originals[t[T_ORIG_K]]
            if t[T_FLAGS] & F_FULL_REFUND:
                price, vendor = -price, -vendor
            else:
                price = -max(1, min(price, round(-t[T_PRICE] * ratio)))
                vendor = price * 85 // 100
                vendor = price + 1 if vendor <= price else vendor
        else:
            row[T_LIST] = round(t[T_LIST] * ratio)
            price, vendor = sale_amounts(row[T_LIST], t[T_FLAGS], CLOUD)
            originals[t[T_K]] = (price, vendor)
        row[T_PRICE], row[T_VENDOR] = price, vendor
        out.append(tuple(row))
    return tuple(out)

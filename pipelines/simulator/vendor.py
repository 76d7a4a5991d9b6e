"""A seeded, deterministic synthetic Marketplace vendor whose records look like the v2 API's."""

# Names and messages are unicode on purpose (real contacts are), so look-alike letters are fine.
# ruff: noqa: RUF001

from __future__ import annotations

import math
import random
import uuid
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

# Size and speed (seed 42, today 2026-11-15, 2 shared cores, CPython 3.11): stories are tuples of
# ints and records are rendered lazily, so a large vendor is built once and streamed.
#   size   construct  licenses   transaction lines  iterate licenses / transactions  peak RSS
#   tiny   < 0.01 s   ~80        ~200               < 0.01 s
#   small  0.03 s     ~830       ~2,000             < 0.1 s                          ~20 MB
#   large  21-24 s    1,037,375  2,640,194          9-14 s / 15-18 s                 ~1.9 GB
DEFAULT_TODAY = date(2026, 11, 15)
SIZES: dict[str, int] = {"tiny": 80, "small": 800, "large": 1_000_000}

EPOCH = date(2016, 1, 1)
# Events are drawn this far past the construction day so that time travel reveals new ones; an
# as_of beyond it redraws every story further out (same records, since story prefixes are stable).
# One year, not three: the future renewals of live subscriptions cost as much as the past.
HORIZON_DAYS = 366
# Renewals are sold up to a week before a term starts: keep as_of this far inside the horizon.
HORIZON_MARGIN = 14
# Atlassian stopped selling (and renewing) Server on 2024-02-15.
SERVER_END = (date(2024, 2, 15) - EPOCH).days
# Data Center licenses got entitlement numbers in 2025-09 (why their key is addonLicenseId).
DC_ENTITLEMENT_DAY = (date(2025, 9, 1) - EPOCH).days
# Cloud licenses got app entitlements (appEntitlementId / E- numbers) from about 2019.
CLOUD_ENTITLEMENT_DAY = (date(2019, 1, 1) - EPOCH).days
# The API documents data insights as "only applicable after July 2018".
INSIGHTS_DAY = (date(2018, 7, 1) - EPOCH).days
EVAL_DAYS = 30
# Yearly growth of new licenses, so that recent months are the busiest, as in real vendors.
GROWTH_PER_YEAR = 0.30

HOSTINGS = ("Cloud", "Server", "Data Center")
CLOUD, SERVER, DC = 0, 1, 2
LICENSE_TYPES = ("EVALUATION", "COMMERCIAL", "ACADEMIC", "COMMUNITY", "OPEN_SOURCE")
EVALUATION, COMMERCIAL = 0, 1
STATUSES = ("active", "inactive", "cancelled")
ACTIVE, INACTIVE, CANCELLED = 0, 1, 2
SALE_TYPES = ("New", "Renewal", "Upgrade", "Downgrade", "Refund")
NEW, RENEWAL, UPGRADE, DOWNGRADE, REFUND = 0, 1, 2, 3, 4
BILLING = ("Monthly", "Annual")
MONTHLY, ANNUAL = 0, 1

# Discount and transaction flags (bit set in a transaction tuple).
F_EXPERT, F_LOYALTY, F_PROMO, F_MANUAL = 1, 2, 4, 8
F_SWITCH, F_NET30, F_FULL_REFUND = 16, 32, 64

# Transaction tuple slots.
T_SALE, T_K, T_LINE, T_TYPE, T_MS, T_ME, T_BILL, T_USERS, T_OLD, T_LIST = range(10)
T_PRICE, T_VENDOR, T_FLAGS, T_ORIG_K, T_ORIG_SALE, T_REWRITE, T_REFUNDED, T_LTYPE = range(10, 18)

# License event codes: (day, code, a, b).
EV_EVAL, EV_PAID, EV_STATUS, EV_CONVERT, EV_UPG_EVAL, EV_UPG_END = range(6)
EV_TIER_FLAP, EV_CONTACT, EV_ENTNUM = 6, 7, 8

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
) = range(12)

CLOUD_TIERS = (10, 10, 15, 25, 25, 50, 50, 100, 100, 250, 500, 593, 1000, 1200)
ONPREM_TIERS = (25, 50, 100, 250, 500, 2000, 10000)
STANDARD_TIERS = frozenset({10, 25, 50, 100, 250, 500, 1000, 2000, 10000})
ONPREM_ANNUAL_CENTS = {25: 50_000, 50: 95_000, 100: 180_000, 250: 390_000, 500: 690_000}
ONPREM_ANNUAL_CENTS |= {2000: 1_650_000, 10000: 4_200_000}

COMPANIES = (
    "Müller & Søn GmbH",
    "李雷科技有限公司",
    "Åström Konsult AB",
    "Société Générale de Logiciels",
    "Zürich Datenwerk AG",
    "株式会社オオカミシステムズ",
    "Acme Corp",
    "Globex Corporation",
    "Initech LLC",
    "Νέα Λογισμικά Α.Ε.",
    "ООО «Ромашка»",
    "O'Reilly & Partners",
    "Umbrella Ltd",
    "Çelik Yazılım A.Ş.",
    "Hooli",
    "Brasil Soluções Ltda.",
)
PEOPLE = (
    ("Zoë Åström", "zoe.astrom"),
    ("李雷", "li.lei"),
    ("José Núñez", "jose.nunez"),
    ("Søren Kierkegaard", "soren.k"),
    ("Ana María Pérez", "ana.perez"),
    ("Björn Ødegaard", "bjorn.o"),
    ("Chloé Dubois", "chloe.dubois"),
    ("Ömer Şahin", "omer.sahin"),
    ("Иван Петров", "ivan.petrov"),
    ("John Smith", "john.smith"),
    ("Priya Patel", "priya.patel"),
    ("Łukasz Żółć", "lukasz.zolc"),
    ("Nguyễn Văn An", "an.nguyen"),
    ("Fatima Al-Zahra", "fatima.alzahra"),
)
COUNTRIES = (
    ("Germany", "EMEA"),
    ("United States", "Americas"),
    ("China", "APAC"),
    ("Sweden", "EMEA"),
    ("France", "EMEA"),
    ("Japan", "APAC"),
    ("Brazil", "Americas"),
    ("Australia", "APAC"),
    ("United Kingdom", "EMEA"),
    ("India", "APAC"),
    ("Türkiye", "EMEA"),
    ("Canada", "Americas"),
)
CITIES = ("München", "São Paulo", "Kraków", "東京", "Malmö", "Austin", "Zürich", "Lyon")
PARTNERS = (
    ("Ørsted Consulting ApS", "Expert"),
    ("Cloudreach Partners", "Expert"),
    ("Softwareone Reseller GmbH", "Reseller"),
    ("Atlas Élite Solutions", "Expert"),
    ("Resello Pty Ltd", "Reseller"),
)
FEEDBACK_TYPES = ("uninstall", "disable", "unsubscribe")
REASONS = (
    "bugs",
    "merging",
    "not-meeting-needs",
    "other",
    "project-based",
    "sandbox",
    "usefulness",
)
MESSAGES = (
    "Too expensive for our small team 💸",
    "Nous avons fusionné deux instances.",
    "Die Berichte sind zu langsam — bitte verbessern.",
    "项目结束了，不再需要。",
    "Only needed it for a sandbox test.",
    "Doesn't integrate with our workflow; we'll revisit next year.",
    "Funciona bien, pero no lo usamos más.",
    'Bug: the gadget shows "NaN" on dashboards',
)
CHANNELS = (
    ("Organic search", "google.com", "google", "organic", None),
    ("Paid search", "google.com", "google", "cpc", "spring-sale"),
    ("Marketplace search", "marketplace.atlassian.com", None, None, None),
    ("Referral", "community.atlassian.com", "community", "referral", None),
    ("Social", "linkedin.com", "linkedin", "social", "launch-2024"),
    ("Email", "mail.example.com", "newsletter", "email", "monthly-digest"),
    ("Direct", None, None, None, None),
)
REFUND_REASONS = ("REFUND_CANCELLED_PURCHASE", "REFUND_DUPLICATE_PURCHASE", "REFUND_OTHER")
OPPORTUNITY_SIZES = ("Small", "Medium", "Large", "Enterprise")
CLOUD_EDITIONS = ("Standard", "Standard", "Premium", "Free")
VENDOR_SLUGS = ("nordlicht", "kiwiapps", "bluefjord", "sakura", "atelier", "quokka")
APP_SPECS = (
    # suffix, name, hostings, parent product, Cloud monthly cents per user
    ("timesheets", "Timesheets Pro", (CLOUD, SERVER, DC), "Jira", 120),
    ("diagrams", "Diagrams für Confluence", (CLOUD,), "Confluence", 80),
    ("backup", "Backup Manager", (SERVER, DC), "Jira", 0),
    ("checklists", "Smart Checklists", (CLOUD,), "Jira", 60),
)
CLOUD_APPS = tuple(i for i, spec in enumerate(APP_SPECS) if CLOUD in spec[2])
ONPREM_APPS = tuple(i for i, spec in enumerate(APP_SPECS) if DC in spec[2])
MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class App:
    """One Marketplace app of the vendor.

    Attributes:
        addon_key: The app key (`addonKey`).
        name: The display name (`addonName`).
        product_id: The v3 product UUID, uuid5 of the seed and the key.
        hostings: The hostings the app is sold on, as response display values.
    """

    addon_key: str
    name: str
    product_id: str
    hostings: tuple[str, ...] = ()


@cache
def _iso(day: int) -> str:
    return (EPOCH + timedelta(days=day)).isoformat()


@cache
def _add_months(day: int, months: int) -> int:
    d = EPOCH + timedelta(days=day)
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return (date(year, month, min(d.day, last)) - EPOCH).days


def _term_end(day: int, billing: int) -> int:
    return _add_months(day, 1 if billing == MONTHLY else 12)


def _mix64(x: int) -> int:
    """Return a bijective 64-bit mix of x (splitmix64 finaliser), so derived ids never collide."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def _uuid(hi: int, lo: int) -> str:
    h = f"{(hi & MASK64) << 64 | (lo & MASK64):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _tier(users: int) -> str:
    if users < 0:
        return "Unlimited Users"
    if users in STANDARD_TIERS:
        return f"{users} Users"
    return f"Per Unit Pricing ({users} Users)"


def _list_cents(app: int, hosting: int, users: int, billing: int) -> int:
    if hosting != CLOUD:
        return ONPREM_ANNUAL_CENTS.get(users, 100_000) + 15_000 * app
    if users <= 10:
        return 0  # Cloud "10 Users" is a free tier: $0 transactions
    monthly = users * APP_SPECS[app][4]
    return monthly if billing == MONTHLY else monthly * 10


def _amounts(list_cents: int, flags: int, hosting: int) -> tuple[int, int]:
    """Return (purchase, vendor) cents for a list price after its discounts."""
    price = list_cents - sum(_discounts(list_cents, flags).values())
    # Atlassian's cut: floor keeps vendorAmount strictly below a positive purchasePrice.
    return price, price * (85 if hosting == CLOUD else 75) // 100


def _discounts(list_cents: int, flags: int) -> dict[str, int]:
    out: dict[str, int] = {}
    if flags & F_EXPERT:
        out["EXPERT"] = list_cents * 20 // 100
    if flags & F_LOYALTY:
        out["LOYALTY_DISCOUNT"] = list_cents * 10 // 100
    if flags & F_PROMO:
        out["MARKETPLACE_PROMOTION"] = list_cents * 25 // 100
    if flags & F_MANUAL:
        out["MANUAL"] = list_cents * 5 // 100
    return out


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
        price, vendor = _amounts(lst, flags, hosting)
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


def _draw_cloud(st: _Story, app: int, start: int, users: int, partner: int) -> int:
    """Draw a Cloud license's evaluation, conversion and subscription; return the initial users."""
    rng = st.rng
    ev = st.events
    hz = st.horizon
    direct = rng.random() < 0.08
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
    te = _term_end(ts, billing)
    lst = _list_cents(app, CLOUD, users, billing)
    row = st.tx(conv, NEW, ts, te, billing, users, -1, lst, flags, CLOUD, COMMERCIAL)
    if st.maybe_refund(row, CLOUD):
        ev.append((row[T_REFUNDED], EV_STATUS, CANCELLED, 0))
        return users
    upgrade_eval_done = False
    p_cancel = 0.13 if billing == MONTHLY else 0.2
    while True:
        pflags = F_EXPERT if partner >= 0 else 0
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
                full = _list_cents(app, CLOUD, nu, ANNUAL) - _list_cents(app, CLOUD, users, ANNUAL)
                lst = max(100, full * (te - u) // span)
                row = st.tx(u, UPGRADE, ts, te, ANNUAL, nu, users, lst, pflags, CLOUD, COMMERCIAL)
                users = nu
                if st.maybe_refund(row, CLOUD):
                    ev.append((row[T_REFUNDED], EV_STATUS, CANCELLED, 0))
                    return users
            elif billing == ANNUAL and y < 0.45 and not upgrade_eval_done and te - u > 80:
                upgrade_eval_done = True
                r_end = u + EVAL_DAYS
                ev.append((u, EV_UPG_EVAL, u, r_end))
                if rng.random() < 0.5:
                    c2 = u + 1 + int(rng.random() * 35)
                    if c2 > hz:
                        break
                    ev.append((c2, EV_CONVERT, u, r_end))
                    nu = _bigger(users)
                    ts, te = c2, _term_end(c2, ANNUAL)
                    lst = _list_cents(app, CLOUD, nu, ANNUAL)
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
                ts, te = u, _term_end(u, nb)
                lst = _list_cents(app, CLOUD, nu, nb)
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
            ts = te
        te = _term_end(ts, billing)
        if billing == ANNUAL and rng.random() < 0.15:
            pflags |= F_LOYALTY
        lst = _list_cents(app, CLOUD, users, billing)
        row = st.tx(sale, RENEWAL, ts, te, billing, users, -1, lst, pflags, CLOUD, COMMERCIAL)
        if st.maybe_refund(row, CLOUD):
            ev.append((row[T_REFUNDED], EV_STATUS, CANCELLED, 0))
            break
    return users


def _draw_onprem(st: _Story, app: int, hosting: int, start: int, users: int, partner: int) -> None:
    """Draw a Server or Data Center license: an evaluation, a free licence or annual maintenance."""
    rng = st.rng
    ev = st.events
    hz = st.horizon
    x = rng.random()
    if x < 0.2:
        ev.append((start, EV_EVAL, start, start + EVAL_DAYS))
        if start + EVAL_DAYS <= hz:
            ev.append((start + EVAL_DAYS, EV_STATUS, INACTIVE, 0))
        return
    ltype = COMMERCIAL if x < 0.9 else 2 + int(rng.random() * 3)
    ev.append((start, EV_PAID, ltype, start))
    ts, te = start, _term_end(start, ANNUAL)
    flags = F_EXPERT if partner >= 0 and ltype == COMMERCIAL else 0
    if ltype == COMMERCIAL and rng.random() < 0.05:
        flags |= F_MANUAL
    if ltype == COMMERCIAL and rng.random() < 0.2:
        flags |= F_NET30
    lst = _list_cents(app, hosting, users, ANNUAL) if ltype == COMMERCIAL else 0
    row = st.tx(start, NEW, ts, te, ANNUAL, users, -1, lst, flags, hosting, ltype)
    if st.maybe_refund(row, hosting):
        ev.append((row[T_REFUNDED], EV_STATUS, CANCELLED, 0))
        return
    while te <= hz:
        y = rng.random()
        stop = hosting == SERVER and te > SERVER_END
        if stop or y < 0.12:
            ev.append((te, EV_STATUS, INACTIVE, 0))
            if rng.random() < 0.1:
                _feedback(st, te, 1)
            return
        if y < 0.19:
            # Lapses, then comes back with a new year from the renewal day.
            sale = te + 30 + int(rng.random() * 170)
            if hosting == SERVER and sale > SERVER_END:
                ev.append((te, EV_STATUS, INACTIVE, 0))
                return
            ev.append((te, EV_STATUS, INACTIVE, 0))
            if sale > hz:
                return
            ev.append((sale, EV_STATUS, ACTIVE, 0))
            ts = sale
        else:
            sale = te - int(rng.random() * 8)
            ts = te
        te = _term_end(ts, ANNUAL)
        lst = _list_cents(app, hosting, users, ANNUAL) if ltype == COMMERCIAL else 0
        row = st.tx(sale, RENEWAL, ts, te, ANNUAL, users, -1, lst, flags, hosting, ltype)
        if st.maybe_refund(row, hosting):
            ev.append((row[T_REFUNDED], EV_STATUS, CANCELLED, 0))
            return


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
        mix = _mix64(seed)
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
        # New licenses per day grow exponentially; story i starts where the cumulative count
        # reaches i, so indices are chronological and a story never depends on the others.
        self._g = math.log(1 + GROWTH_PER_YEAR) / 365
        self._rate = n * self._g / math.expm1(self._g * self._today0)
        self._licenses: list[tuple[Any, ...]] = []
        self._n_stories = 0
        self._drawn_to = -1
        self._draw_until(self._today0)
        y2018, y2019 = (date(2018, 1, 1) - EPOCH).days, (date(2019, 1, 1) - EPOCH).days
        sticky = []
        for lic in self._licenses:
            if lic[L_START] >= y2019 or len(sticky) == 3:
                break
            if lic[L_START] >= y2018:
                sticky.append(self._ids(lic)["addonLicenseId"])
        self.sticky_license_ids = frozenset(sticky)

    # --- drawing -------------------------------------------------------------------------

    def _story_start(self, i: float) -> int:
        return int(math.log1p(i * self._g / self._rate) / self._g)

    def _draw_until(self, day: int) -> None:
        """Draw the stories that start on or before `day` (advance() calls it again)."""
        rng = random.Random()
        base = _mix64(self.seed ^ 0x5EED)
        out = self._licenses
        i = self._n_stories
        while True:
            rng.seed(base ^ (i * 0x9E3779B97F4A7C15 & MASK64))
            start = self._story_start(i + rng.random())
            # Attribution precedes an evaluation by up to 30 days: draw those stories too.
            if start > day + EVAL_DAYS + 1:
                break
            out.extend(self._draw_story(rng, i, start))
            i += 1
        self._n_stories = i
        self._drawn_to = day
        self._counts_cache: dict[int, dict[str, int]] = {}

    def _draw_story(self, rng: random.Random, i: int, start: int) -> list[tuple[Any, ...]]:
        """Draw story i: the fixed facts first, then the lifecycle, which the horizon truncates.

        Drawing the variable-length lifecycle last keeps a story's prefix the same whatever the
        horizon, so extending the horizon (a redraw) never changes a record already shown.
        """
        st = _Story(rng, self._horizon)
        hz = self._horizon
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
        if hosting == CLOUD:
            _draw_cloud(st, app, start, users, partner)
        else:
            _draw_onprem(st, app, hosting, start, users, partner)
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
        lics = [
            (no, app, hosting, salt, cust, start, users, partner, events, txs, tuple(st.fb), attrib)
        ]
        if companion >= 0:
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
                )
            )
        return lics

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
        self, as_of: date | None = None, with_data_insights: bool = True
    ) -> Iterator[dict]:
        """Yield the license records as of a day, in license order.

        Args:
            as_of: The day; today when None.
            with_data_insights: Whether to add the data-insight fields (from 2018-07 only).

        Yields:
            One v2 License dict per license that exists on that day.
        """
        day = self._as_of(as_of)
        for rec in self._licenses:
            if rec[L_START] <= day:
                yield self._render_license(rec, day, with_data_insights)

    def transactions(self, as_of: date | None = None) -> Iterator[dict]:
        """Yield the transaction lines as of a day, by license then sale date.

        Args:
            as_of: The day; today when None.

        Yields:
            One v2 Transaction dict per line sold on or before that day.
        """
        day = self._as_of(as_of)
        for rec in self._licenses:
            txs = rec[L_TXS]
            if not txs or txs[0][0] > day:
                continue
            ids = self._ids(rec)
            cust = self._customer(rec, day)
            for t in txs:
                if t[T_SALE] > day:
                    break
                yield self._render_tx(rec, t, day, ids, cust)

    def feedback(self, as_of: date | None = None) -> Iterator[dict]:
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
                    yield self._render_feedback(rec, f)

    def marketing_attribution(self, as_of: date | None = None) -> Iterator[dict]:
        """Yield the marketing attribution rows as of a day.

        Args:
            as_of: The day; today when None.

        Yields:
            One v2 MarketingAttributionActivity dict per event of an evaluation started on or
            before that day.
        """
        day = self._as_of(as_of)
        for rec in self._licenses:
            # Atlassian attributes the 30 days of page activity before an evaluation once the
            # evaluation starts: the rows appear on that day, dated up to 30 days earlier.
            if rec[L_START] <= day:
                for a in rec[L_ATTRIB]:
                    yield self._render_attribution(rec, a)

    # --- rendering ---------------------------------------------------------------------------

    def _ids(self, rec: tuple[Any, ...]) -> dict[str, str]:
        """Return the identifier fields a license and its transactions share (before 2025-09)."""
        no, hosting, salt, cust = rec[L_NO], rec[L_HOST], rec[L_SALT], rec[L_CUST]
        seedmix = _mix64(self.seed)
        ids = {"addonLicenseId": str(10_000_000 + no * 7 + self.seed % 7)}
        if hosting == CLOUD:
            ids["licenseId"] = f"SEN-L{20_000_000 + no}"
            if rec[L_START] >= CLOUD_ENTITLEMENT_DAY:
                ids["appEntitlementId"] = _uuid(_mix64(no) ^ seedmix, salt)
                ids["appEntitlementNumber"] = f"E-{4_000_000 + no}"
                ids["hostEntitlementId"] = _uuid(cust, seedmix)
            else:
                ids["hostLicenseId"] = f"SEN-{60_000_000 + no}"
            ids["cloudId"] = _uuid(seedmix ^ cust, cust)
        else:
            ids["licenseId"] = f"SEN-{30_000_000 + no}"
            ids["hostLicenseId"] = f"SEN-{50_000_000 + no}"
        app = self.apps[rec[L_APP]]
        ids["addonKey"] = app.addon_key
        ids["addonName"] = app.name
        return ids

    def _customer(self, rec: tuple[Any, ...], day: int) -> dict[str, Any]:
        """Return the transaction `customerDetails` (contact changes are license-only)."""
        cust = rec[L_CUST]
        country, region = COUNTRIES[cust % len(COUNTRIES)]
        rtbf = (cust >> 8) % 33 == 0
        name, handle = PEOPLE[(cust >> 16) % len(PEOPLE)]
        out: dict[str, Any] = {}
        if (cust >> 24) % 20:
            out["company"] = "RTBF" if rtbf else COMPANIES[(cust >> 12) % len(COMPANIES)]
        out["country"] = country
        out["region"] = region
        domain = f"example{(cust >> 32) % 997}.com"
        out["technicalContact"] = (
            {"email": "RTBF", "name": "RTBF"}
            if rtbf
            else {"email": f"{handle}@{domain}", "name": name}
        )
        if (cust >> 40) % 10 < 7:
            bname, bhandle = PEOPLE[(cust >> 44) % len(PEOPLE)]
            out["billingContact"] = {"email": f"{bhandle}.billing@{domain}", "name": bname}
        return out

    def _render_license(self, rec: tuple[Any, ...], day: int, insights: bool) -> dict[str, Any]:
        ltype = COMMERCIAL
        ms = me = rec[L_START]
        status = ACTIVE
        last = rec[L_START]
        flap = contact = entnum = 0
        ins: tuple[int, int, int] | None = None
        in_eval = False
        saved_ms = ms
        for d, code, a, b in rec[L_EVENTS]:
            if d > day:
                break
            last = d
            if code == EV_EVAL:
                ltype, ms, me, status, in_eval = EVALUATION, a, b, ACTIVE, True
            elif code == EV_PAID:
                ltype, ms, status = a, b, ACTIVE
            elif code == EV_STATUS:
                status = a
            elif code == EV_CONVERT:
                ltype, ms, status, in_eval, ins = COMMERCIAL, d, ACTIVE, False, (a, b, d)
            elif code == EV_UPG_EVAL:
                saved_ms = ms
                ltype, ms, me, in_eval = EVALUATION, a, b, True
            elif code == EV_UPG_END:
                ltype, ms, in_eval, ins = COMMERCIAL, saved_ms, False, (a, b, -1)
            elif code == EV_TIER_FLAP:
                flap = a
            elif code == EV_CONTACT:
                contact = a
            elif code == EV_ENTNUM:
                entnum = 1
        users = rec[L_USERS]
        for t in rec[L_TXS]:
            if t[T_SALE] > day:
                break
            if t[T_TYPE] != REFUND:
                users = t[T_USERS]
                if t[T_SALE] > last:
                    last = t[T_SALE]
                if not in_eval:
                    me = t[T_ME]
        hosting = rec[L_HOST]
        out: dict[str, Any] = self._ids(rec)
        if hosting == DC and (entnum or rec[L_START] >= DC_ENTITLEMENT_DAY):
            out["appEntitlementNumber"] = f"E-{4_000_000 + rec[L_NO]}"
        if hosting == CLOUD and "appEntitlementId" in out:
            out["cloudSiteHostname"] = (
                f"site{rec[L_CUST] % 100_000:05d}-{rec[L_NO] // 2}.atlassian.net"
            )
        out["hosting"] = HOSTINGS[hosting]
        out["lastUpdated"] = _iso(last)
        out["licenseType"] = LICENSE_TYPES[ltype]
        out["maintenanceStartDate"] = _iso(ms)
        out["maintenanceEndDate"] = _iso(me)
        out["status"] = STATUSES[status]
        out["tier"] = _tier(-1 if flap else users)
        contact_details = self._customer(rec, day)
        if contact:
            name, handle = PEOPLE[(rec[L_CUST] >> 50) % len(PEOPLE)]
            tc = contact_details["technicalContact"]
            if tc["name"] != "RTBF":
                tc["name"], tc["email"] = name, f"{handle}@example-new.com"
        if rec[L_CUST] % 3 == 0:
            contact_details["technicalContact"]["phone"] = f"+49 89 {rec[L_CUST] % 10_000_000:07d}"
            contact_details["technicalContact"]["city"] = CITIES[rec[L_CUST] % len(CITIES)]
        out["contactDetails"] = contact_details
        if rec[L_PARTNER] >= 0:
            pname, ptype = PARTNERS[rec[L_PARTNER]]
            out["partnerDetails"] = {"partnerName": pname, "partnerType": ptype}
        if hosting == CLOUD and rec[L_ATTRIB]:
            _, source, medium, campaign = _channel(rec[L_ATTRIB][0][2])[:4]
            attribution = {"channel": _channel(rec[L_ATTRIB][0][2])[0]}
            if source:
                attribution |= {"campaignSource": source, "campaignMedium": medium or ""}
            if campaign:
                attribution["campaignName"] = campaign
            out["attribution"] = attribution
        if insights and ms >= INSIGHTS_DAY:
            salt = rec[L_SALT]
            spec = APP_SPECS[rec[L_APP]]
            evaluated = ins is not None or ltype == EVALUATION
            out["evaluationOpportunitySize"] = (
                OPPORTUNITY_SIZES[(salt >> 4) % 4] if evaluated and hosting == CLOUD else "NA"
            )
            if ins is not None:
                out["evaluationLicense"] = out["licenseId"]
                out["evaluationStartDate"] = _iso(ins[0])
                out["evaluationEndDate"] = _iso(ins[1])
                if ins[2] >= 0:
                    out["daysToConvertEval"] = str(ins[2] - ins[0])
                    out["evaluationSaleDate"] = _iso(ins[2])
            if hosting == CLOUD:
                out["parentProductBillingCycle"] = BILLING[(salt >> 8) % 2]
                out["parentProductName"] = spec[3]
                out["parentProductEdition"] = CLOUD_EDITIONS[(salt >> 10) % 3]
                out["installedOnSandbox"] = "Yes" if salt & 1 else "No"
            else:
                out["parentProductBillingCycle"] = "NA"
                out["parentProductName"] = spec[3]
                out["parentProductEdition"] = "NA"
                out["installedOnSandbox"] = "NA"
        return out

    def _render_tx(
        self,
        rec: tuple[Any, ...],
        t: tuple[int, ...],
        day: int,
        ids: dict[str, str],
        cust: dict[str, Any],
    ) -> dict[str, Any]:
        hosting = rec[L_HOST]
        out: dict[str, Any] = {
            "transactionId": f"AT-{10_000_000 + rec[L_NO] // 2}{t[T_K]:04d}",
            "transactionLineItemId": str(t[T_LINE]),
        }
        out |= ids
        if hosting == DC and t[T_SALE] >= DC_ENTITLEMENT_DAY:
            out["appEntitlementNumber"] = f"E-{4_000_000 + rec[L_NO]}"
        last = t[T_SALE]
        rewritten = 0 < t[T_REWRITE] <= day
        refunded = 0 < t[T_REFUNDED] <= day
        if rewritten:
            last = max(last, t[T_REWRITE])
        if refunded:
            last = max(last, t[T_REFUNDED])
        out["lastUpdated"] = _iso(last)
        stype = t[T_TYPE]
        if stype != REFUND:
            out["paymentStatus"] = "Refunded" if refunded else "Paid"
        out["customerDetails"] = {k: dict(v) if isinstance(v, dict) else v for k, v in cust.items()}
        pd: dict[str, Any] = {
            "saleDate": _iso(t[T_SALE]),
            "licenseType": LICENSE_TYPES[t[T_LTYPE]],
            "hosting": HOSTINGS[hosting],
            "billingPeriod": BILLING[t[T_BILL]],
        }
        flags = t[T_FLAGS]
        if flags & F_SWITCH:
            pd["changeInBillingPeriod"] = "Yes"
            pd["oldBillingPeriod"] = "Monthly"
        pd["tier"] = _tier(t[T_USERS])
        if t[T_OLD] >= 0 and t[T_OLD] != t[T_USERS]:
            pd["changeInTier"] = "Increase" if t[T_USERS] > t[T_OLD] else "Decrease"
            pd["oldTier"] = _tier(t[T_OLD])
        spec = APP_SPECS[rec[L_APP]]
        pd["parentProductName"] = spec[3]
        if hosting == CLOUD:
            edition = CLOUD_EDITIONS[(rec[L_SALT] >> 10) % 3]
            if rewritten:
                # The API rewrites history: the parent edition flaps with no real change.
                new = "Premium" if edition == "Standard" else "Enterprise"
                pd["parentProductEdition"] = new
                pd["changeInParentProductEdition"] = "Yes"
                pd["oldParentProductEdition"] = edition
            else:
                pd["parentProductEdition"] = edition
        pd["purchasePrice"] = t[T_PRICE] / 100
        pd["vendorAmount"] = t[T_VENDOR] / 100
        discounts = _discounts(t[T_LIST], flags) if stype != REFUND else {}
        if "EXPERT" in discounts:
            pd["partnerDiscountAmount"] = discounts["EXPERT"] / 100
        if discounts:
            items = []
            for kind, cents in discounts.items():
                item: dict[str, Any] = {"type": kind, "amount": cents / 100}
                if kind == "MARKETPLACE_PROMOTION":
                    item["code"] = f"PROMO{(rec[L_CUST] >> 20) % 90 + 10}"
                elif kind == "MANUAL":
                    item["reason"] = "Négocié par l'équipe commerciale"
                items.append(item)
            pd["discounts"] = items
        if stype == REFUND:
            pd["refundReason"] = REFUND_REASONS[(rec[L_CUST] + t[T_K]) % 3]
        pd["saleType"] = SALE_TYPES[stype]
        pd["maintenanceStartDate"] = _iso(t[T_MS])
        pd["maintenanceEndDate"] = _iso(t[T_ME])
        if flags & F_NET30:
            pd["paymentTerms"] = "Net30"
        if stype == REFUND:
            pd["originalTransactionDetails"] = {
                "transactionId": f"AT-{10_000_000 + rec[L_NO] // 2}{t[T_ORIG_K]:04d}",
                "saleDate": _iso(t[T_ORIG_SALE]),
            }
        out["purchaseDetails"] = pd
        if rec[L_PARTNER] >= 0:
            pname, ptype = PARTNERS[rec[L_PARTNER]]
            out["partnerDetails"] = {"partnerName": pname, "partnerType": ptype}
        return out

    def _render_feedback(self, rec: tuple[Any, ...], f: tuple[int, int, int, int]) -> dict:
        day, ftype, reason, salt = f
        app = self.apps[rec[L_APP]]
        hosting = rec[L_HOST]
        years = day // 365
        out: dict[str, Any] = {
            "addonKey": app.addon_key,
            "addonName": app.name,
            "addonVersion": f"{1 + years}.{salt % 12}.{(salt >> 4) % 20}",
            "applicationKey": APP_SPECS[rec[L_APP]][3].lower(),
            "applicationVersion": "1000.0.0" if hosting == CLOUD else f"{7 + years}.{salt % 5}.0",
            "hosting": HOSTINGS[hosting],
            "date": _iso(day),
            "feedbackType": FEEDBACK_TYPES[ftype],
            "reasonKey": REASONS[reason],
        }
        if salt % 5:
            out["message"] = MESSAGES[(salt >> 8) % len(MESSAGES)]
        who = (salt >> 12) % 10
        if who < 6:
            name, handle = PEOPLE[(salt >> 16) % len(PEOPLE)]
            out["email"] = f"{handle}@example{(salt >> 20) % 997}.com"
            out["fullName"] = name
        elif who < 7:
            out["email"] = out["fullName"] = "RTBF"
        ids = self._ids(rec)
        out["licenseId"] = ids["licenseId"]
        for key in ("appEntitlementId", "appEntitlementNumber", "cloudId"):
            if key in ids:
                out[key] = ids[key]
        return out

    def _render_attribution(self, rec: tuple[Any, ...], a: tuple[int, int, int]) -> dict:
        _, ts, salt = a
        channel, source, medium, campaign, domain = _channel(salt)
        app = self.apps[rec[L_APP]]
        ids = self._ids(rec)
        out: dict[str, Any] = {"addonLicenseId": ids["addonLicenseId"]}
        if "appEntitlementId" in ids:
            out["appEntitlementId"] = ids["appEntitlementId"]
            out["appEntitlementNumber"] = ids["appEntitlementNumber"]
        out["addonKey"] = app.addon_key
        out["channel"] = channel
        if domain:
            out["referrerDomain"] = domain
        url = f"https://marketplace.atlassian.com/apps/{1_200_000 + rec[L_APP]}/{app.addon_key}"
        if source:
            url += f"?utm_source={source}&utm_medium={medium}"
            out["campaignSource"] = source
            out["campaignMedium"] = medium
            if campaign:
                url += f"&utm_campaign={campaign}"
                out["campaignName"] = campaign
                out["campaignContent"] = "hero-banner" if salt % 2 else "sidebar"
        out["marketplaceURL"] = url
        stamp = datetime(EPOCH.year, EPOCH.month, EPOCH.day) + timedelta(seconds=ts)
        out["eventTimestamp"] = f"{stamp.isoformat()}.000Z"
        out["userId"] = f"{_mix64(salt ^ rec[L_CUST]):016x}{_mix64(salt):016x}"
        out["userType"] = "admin" if salt % 3 else "requester"
        return out


def _channel(salt: int) -> tuple[str, str | None, str | None, str | None, str | None]:
    channel, domain, source, medium, campaign = CHANNELS[(salt >> 3) % len(CHANNELS)]
    return channel, source, medium, campaign, domain


def _sale_key(t: tuple[int, ...]) -> int:
    return t[0]


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
            price, vendor = _amounts(row[T_LIST], t[T_FLAGS], CLOUD)
            originals[t[T_K]] = (price, vendor)
        row[T_PRICE], row[T_VENDOR] = price, vendor
        out.append(tuple(row))
    return tuple(out)

"""The synthetic vendor's catalog: apps, tiers, prices, names and the dates that matter."""

# Names and messages are unicode on purpose (real contacts are), so look-alike letters are fine.
# ruff: noqa: RUF001

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache

# Licenses as of today per named size (SyntheticVendor measures each).
DEFAULT_TODAY = date(2026, 11, 15)
# medium: the 100k-license vendor `make bench` develops on (a tenth of large, minutes not tens).
SIZES: dict[str, int] = {"tiny": 80, "small": 800, "medium": 100_000, "large": 1_000_000}

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
# v2: a line sold after an edition upgrade trial started shows appEdition (Advanced once bought).
F_EDITIONED, F_ADVANCED = 128, 256
# v2 story features are decided by bits of a hash of the customer, not by the story's RNG, so
# every story that does not show one draws (and renders) exactly what it did before.
TWO_YEAR_PERCENT = 25  # of Data Center licenses: two-year terms billed Annual
LATE_START_PERCENT = 50  # of renewals due in a month's last 5 days: start after the month end
DRIFT_PERCENT = 10  # of renewals: a list price a few cents off (cent-level drift)
ZERO_LENGTH_PERCENT = 3  # of Cloud renewals: a paid line whose start equals its end
EDITION_TRIAL_PERCENT = 50  # of upgrade evaluations: an edition trial (the rest re-evaluate)
MIGRATION_PERCENT = 35  # of Timesheets Server / DC licenses that stop: moved to Cloud (CMT)
CROSS_SELL_PERCENT = 40  # of second apps on a Cloud site: bought at the first renewal
EDITION_PRICE_PERCENT = 150  # Advanced costs this much of Standard


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
def iso(day: int) -> str:
    return (EPOCH + timedelta(days=day)).isoformat()


@cache
def add_months(day: int, months: int) -> int:
    d = EPOCH + timedelta(days=day)
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return (date(year, month, min(d.day, last)) - EPOCH).days


def term_end(day: int, billing: int, years: int = 1) -> int:
    return add_months(day, 1 if billing == MONTHLY else 12 * years)


def days_to_month_end(day: int) -> int:
    """Days from `day` to the last day of its month (0 on the last day)."""
    d = EPOCH + timedelta(days=day)
    return (date(d.year + d.month // 12, d.month % 12 + 1, 1) - d).days - 1


def percent(bits: int, salt: int) -> int:
    """A number in 0..99 drawn from a customer's hash bits and a salt (no RNG state used)."""
    return mix64(bits ^ salt) % 100


def mix64(x: int) -> int:
    """Return a bijective 64-bit mix of x (splitmix64 finaliser), so derived ids never collide."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def as_uuid(hi: int, lo: int) -> str:
    h = f"{(hi & MASK64) << 64 | (lo & MASK64):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def tier_name(users: int) -> str:
    if users < 0:
        return "Unlimited Users"
    if users in STANDARD_TIERS:
        return f"{users} Users"
    return f"Per Unit Pricing ({users} Users)"


def list_price_cents(app: int, hosting: int, users: int, billing: int) -> int:
    if hosting != CLOUD:
        return ONPREM_ANNUAL_CENTS.get(users, 100_000) + 15_000 * app
    if users <= 10:
        return 0  # Cloud "10 Users" is a free tier: $0 transactions
    monthly = users * APP_SPECS[app][4]
    return monthly if billing == MONTHLY else monthly * 10


def sale_amounts(list_cents: int, flags: int, hosting: int) -> tuple[int, int]:
    """Return (purchase, vendor) cents for a list price after its discounts."""
    price = list_cents - sum(discount_cents(list_cents, flags).values())
    # Atlassian's cut: floor keeps vendorAmount strictly below a positive purchasePrice.
    return price, price * (85 if hosting == CLOUD else 75) // 100


def discount_cents(list_cents: int, flags: int) -> dict[str, int]:
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

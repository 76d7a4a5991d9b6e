"""Query-string parsing, validation and the table-driven record filters of the simulated API."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

# The live API caps every page at 50 and does not document its default page size; we serve full
# pages of 50 when `limit` is absent, so a client that never sends `limit` still pages correctly.
MAX_LIMIT = 50
DEFAULT_LIMIT = 50

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FIRST_INT = re.compile(r"\d+")


class ApiError(Exception):
    """An error the API answers with a JsonErrorsDoc body."""

    def __init__(self, status: int, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.path = path

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message}
        if self.path:
            error["path"] = self.path
        return {"errors": [error]}


Params = Mapping[str, list[str]]


def multi_params(items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Group repeated query parameters (`hosting=cloud&hosting=server`) into lists."""
    grouped: dict[str, list[str]] = {}
    for key, value in items:
        grouped.setdefault(key, []).append(value)
    return grouped


def single(params: Params, name: str) -> str | None:
    values = params.get(name)
    return values[-1] if values else None


def parse_date(params: Params, name: str) -> str | None:
    value = single(params, name)
    if value is None or value == "":
        return None
    if not _DATE.match(value):
        raise ApiError(400, f"Invalid date '{value}': expected YYYY-MM-DD.", name)
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"Invalid date '{value}': no such day.", name) from None
    return value


def parse_int(params: Params, name: str, default: int, minimum: int) -> int:
    value = single(params, name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, f"'{value}' is not an integer.", name) from None
    if number < minimum:
        raise ApiError(400, f"{name} must be at least {minimum}, got {number}.", name)
    return number


def parse_bool(params: Params, name: str, default: bool) -> bool:
    value = single(params, name)
    if value is None or value == "":
        return default
    if value.lower() not in ("true", "false"):
        raise ApiError(400, f"'{value}' is not a boolean (true or false).", name)
    return value.lower() == "true"


def parse_choice(
    params: Params, name: str, allowed: Iterable[str], default: str | None
) -> str | None:
    value = single(params, name)
    if value is None or value == "":
        return default
    allowed = tuple(allowed)
    if value not in allowed:
        raise ApiError(400, f"'{value}' is not one of {', '.join(allowed)}.", name)
    return value


def paging(params: Params) -> tuple[int, int]:
    """offset and limit; a limit above 50 is clamped to 50, as the live API does."""
    offset = parse_int(params, "offset", 0, 0)
    limit = parse_int(params, "limit", DEFAULT_LIMIT, 1)
    return offset, min(limit, MAX_LIMIT)


def parse_accept(params: Params) -> None:
    accept = parse_choice(params, "accept", ("json", "csv"), "json")
    if accept == "csv":
        raise ApiError(400, "The simulator serves accept=json only.", "accept")


def _get(record: Mapping[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _lower(dotted: str) -> Callable[[Mapping[str, Any]], set[str]]:
    """Display value to filter key: `Data Center` is `datacenter`."""

    def keys(record: Mapping[str, Any]) -> set[str]:
        value = _get(record, dotted)
        return {str(value).lower().replace(" ", "")} if value is not None else set()

    return keys


def _exact(dotted: str) -> Callable[[Mapping[str, Any]], set[str]]:
    def keys(record: Mapping[str, Any]) -> set[str]:
        value = _get(record, dotted)
        return {str(value)} if value is not None else set()

    return keys


def _tier(dotted: str) -> Callable[[Mapping[str, Any]], set[str]]:
    """Tier filters are integers; tiers are text (`100 Users`, `Per Unit Pricing (593 Users)`)."""

    def keys(record: Mapping[str, Any]) -> set[str]:
        match = _FIRST_INT.search(str(_get(record, dotted) or ""))
        return {match.group()} if match else set()

    return keys


def _partner(dotted: str) -> Callable[[Mapping[str, Any]], set[str]]:
    def keys(record: Mapping[str, Any]) -> set[str]:
        partner = _get(record, dotted)
        return {str(partner).lower()} if partner else {"direct"}

    return keys


def _license_type(record: Mapping[str, Any]) -> set[str]:
    keys = _lower("licenseType")(record)
    if "evaluation" in keys:
        upgrade = bool(record.get("upgradeEvaluationStartDate"))
        keys.add("upgrade_evaluation" if upgrade else "net_new_evaluation")
    return keys


@dataclass(frozen=True)
class EnumFilter:
    """A multi-value filter: allowed lowercase keys (None = free text) and the record's keys."""

    allowed: frozenset[str] | None
    keys: Callable[[Mapping[str, Any]], set[str]]


HOSTING = frozenset({"cloud", "datacenter", "server"})
APP_EDITION = frozenset({"Standard", "Advanced"})
PARTNER = frozenset({"direct", "expert", "reseller"})


@dataclass(frozen=True)
class Entity:
    """How one kind of record is filtered: one row of the filter table."""

    name: str
    items_key: str
    date_of: Callable[[Mapping[str, Any]], str | None]
    enums: dict[str, EnumFilter]
    text_fields: tuple[str, ...]
    # (boolean parameter, its default, the value that drops records, which records it drops)
    exclusions: tuple[tuple[str, bool, bool, Callable[[Mapping[str, Any]], bool]], ...] = ()
    has_last_updated: bool = True
    has_date_type: bool = False


ENTITIES: dict[str, Entity] = {
    "licenses": Entity(
        name="licenses",
        items_key="licenses",
        date_of=lambda r: r.get("maintenanceStartDate"),
        enums={
            "hosting": EnumFilter(HOSTING, _lower("hosting")),
            "licenseType": EnumFilter(
                frozenset(
                    (
                        "academic",
                        "commercial",
                        "community",
                        "demonstration",
                        "evaluation",
                        "net_new_evaluation",
                        "upgrade_evaluation",
                        "open_source",
                        "classroom",
                        "free",
                        "legacy_free",
                    )
                ),
                _license_type,
            ),
            "status": EnumFilter(frozenset({"active", "cancelled", "inactive"}), _lower("status")),
            "partnerType": EnumFilter(PARTNER, _partner("partnerDetails.partnerType")),
            "tier": EnumFilter(None, _tier("tier")),
            "appEdition": EnumFilter(APP_EDITION, _exact("appEdition")),
        },
        text_fields=(
            "addonLicenseId",
            "licenseId",
            "appEntitlementId",
            "appEntitlementNumber",
            "cloudSiteHostname",
            "contactDetails.company",
        ),
        # includeAtlassianLicenses: Atlassian's own licenses are left out unless asked for.
        exclusions=(
            (
                "includeAtlassianLicenses",
                False,
                False,
                lambda r: r.get("licenseSourceType") == "Atlassian",
            ),
        ),
        has_date_type=True,
    ),
    "transactions": Entity(
        name="transactions",
        items_key="transactions",
        date_of=lambda r: _get(r, "purchaseDetails.saleDate"),
        enums={
            "hosting": EnumFilter(HOSTING, _lower("purchaseDetails.hosting")),
            "saleType": EnumFilter(
                frozenset({"new", "refund", "renewal", "upgrade", "downgrade"}),
                _lower("purchaseDetails.saleType"),
            ),
            "licenseType": EnumFilter(None, _lower("purchaseDetails.licenseType")),
            "partnerType": EnumFilter(PARTNER, _partner("partnerDetails.partnerType")),
            "tier": EnumFilter(None, _tier("purchaseDetails.tier")),
            "appEdition": EnumFilter(APP_EDITION, _exact("appEdition")),
            "paymentStatus": EnumFilter(
                frozenset({"paid", "open", "uncollectible", "refunded"}), _lower("paymentStatus")
            ),
            "billingPeriod": EnumFilter(
                frozenset({"monthly", "annual"}), _lower("purchaseDetails.billingPeriod")
            ),
        },
        text_fields=(
            "transactionId",
            "licenseId",
            "addonLicenseId",
            "appEntitlementId",
            "appEntitlementNumber",
            "customerDetails.company",
        ),
        exclusions=(
            # $0 rows have been included since 2023-06; excludeZeroTransactions=true drops them.
            (
                "excludeZeroTransactions",
                False,
                True,
                lambda r: _get(r, "purchaseDetails.purchasePrice") == 0,
            ),
            # Manual invoices are excluded unless includeManualInvoice=true.
            ("includeManualInvoice", False, False, lambda r: r.get("isInvoiceManual") is True),
        ),
    ),
    "feedback": Entity(
        name="feedback",
        items_key="feedback",
        date_of=lambda r: r.get("date"),
        enums={
            "hosting": EnumFilter(HOSTING, _lower("hosting")),
            "type": EnumFilter(
                frozenset({"disable", "uninstall", "unsubscribe"}), _lower("feedbackType")
            ),
            "reason": EnumFilter(None, _exact("reasonKey")),
            "appEdition": EnumFilter(APP_EDITION, _exact("appEdition")),
        },
        text_fields=("licenseId", "appEntitlementNumber", "message", "email", "fullName"),
        has_last_updated=False,
    ),
    "marketing_attribution": Entity(
        name="marketing_attribution",
        items_key="marketingAttribution",
        # eventTimestamp is the one timestamp in the API; filters compare its date part.
        date_of=lambda r: (r.get("eventTimestamp") or "")[:10] or None,
        enums={},
        text_fields=("addonLicenseId", "appEntitlementNumber", "channel", "campaignName"),
        has_last_updated=False,
    ),
    "events": Entity(
        name="events",
        items_key="events",
        date_of=lambda r: r.get("eventDate"),
        enums={
            "hosting": EnumFilter(HOSTING, _lower("hosting")),
            "appEdition": EnumFilter(APP_EDITION, _exact("appEdition")),
        },
        text_fields=(
            "transactionId",
            "licenseDetails.licenseId",
            "licenseDetails.appEntitlementId",
            "licenseDetails.appEntitlementNumber",
        ),
    ),
}


@dataclass
class RecordFilter:
    """One request's filters over one entity, parsed and validated up front."""

    entity: Entity
    addon_keys: set[str] | None = None
    enums: dict[str, set[str]] = field(default_factory=dict)
    start: str | None = None
    end: str | None = None
    date_type: str = "start"
    last_updated: str | None = None
    text: str | None = None
    flags: dict[str, bool] = field(default_factory=dict)
    sticky_ids: frozenset[str] = frozenset()

    @classmethod
    def parse(
        cls,
        entity_name: str,
        params: Params,
        product_filter: str,
        product_to_addon: Mapping[str, str],
        sticky_ids: frozenset[str] = frozenset(),
    ) -> RecordFilter:
        """Validate the query; `product_filter` is `addon` on v2 and `productId` on v3."""
        entity = ENTITIES[entity_name]
        result = cls(entity=entity, sticky_ids=sticky_ids)
        products = params.get(product_filter)
        if products:
            if product_filter == "productId":
                result.addon_keys = {product_to_addon.get(p, f"?{p}") for p in products}
            else:
                result.addon_keys = set(products)
        for name, spec in entity.enums.items():
            values = params.get(name)
            if values:
                result.enums[name] = _enum_values(name, values, spec.allowed)
        result.start = parse_date(params, "startDate")
        result.end = parse_date(params, "endDate")
        if entity.has_date_type:
            result.date_type = parse_choice(params, "dateType", ("start", "end"), "start") or ""
        if entity.has_last_updated:
            result.last_updated = parse_date(params, "lastUpdated")
        text = single(params, "text")
        result.text = text.lower() if text else None
        for name, default, _, _ in entity.exclusions:
            result.flags[name] = parse_bool(params, name, default)
        return result

    def _date_ok(self, record: Mapping[str, Any]) -> bool:
        if self.start is None and self.end is None:
            return True
        # MP-557: some old licenses come back in every export whatever the date filter says.
        if self.sticky_ids and record.get("addonLicenseId") in self.sticky_ids:
            return True
        if self.date_type == "end":
            # dateType=end means the maintenance period overlaps the window, not "ended within".
            begins = record.get("maintenanceStartDate")
            ends = record.get("maintenanceEndDate")
            if self.end is not None and (begins is None or begins > self.end):
                return False
            return not (self.start is not None and ends is not None and ends < self.start)
        day = self.entity.date_of(record)
        if day is None:
            return False
        if self.start is not None and day < self.start:
            return False
        return not (self.end is not None and day > self.end)

    def matches(self, record: Mapping[str, Any]) -> bool:
        if self.addon_keys is not None and record.get("addonKey") not in self.addon_keys:
            return False
        for name, wanted in self.enums.items():
            if not (self.entity.enums[name].keys(record) & wanted):
                return False
        if self.last_updated is not None and (record.get("lastUpdated") or "") < self.last_updated:
            return False
        for name, default, drop_when, dropped in self.entity.exclusions:
            if self.flags.get(name, default) == drop_when and dropped(record):
                return False
        if self.text is not None and not any(
            self.text in str(_get(record, f) or "").lower() for f in self.entity.text_fields
        ):
            return False
        return self._date_ok(record)

    def date_window(self) -> tuple[date | None, date | None]:
        """startDate and endDate as dates (None when absent)."""
        return (
            date.fromisoformat(self.start) if self.start else None,
            date.fromisoformat(self.end) if self.end else None,
        )

    def updated_since(self) -> date | None:
        """lastUpdated as a date (None when absent)."""
        return date.fromisoformat(self.last_updated) if self.last_updated else None

    def apply(self, records: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        if self.start is not None and self.end is not None and self.start > self.end:
            # The live API answers an inverted window with an empty result, not an error.
            return iter(())
        return (r for r in records if self.matches(r))


def _enum_values(name: str, values: list[str], allowed: frozenset[str] | None) -> set[str]:
    result: set[str] = set()
    for value in values:
        if name == "tier":
            for part in value.split(","):
                if not part.strip().isdigit():
                    raise ApiError(400, f"'{value}' is not an integer tier.", name)
        elif allowed is not None and value not in allowed:
            parts = value.split(",")
            if len(parts) > 1 and all(p in allowed for p in parts):
                # The comma form (`hosting=cloud,server`) is silently mis-parsed live: it is
                # kept as one value that matches no record, so the filter returns nothing.
                result.add(value)
                continue
            raise ApiError(400, f"'{value}' is not one of {', '.join(sorted(allowed))}.", name)
        result.add(value if allowed is APP_EDITION or allowed is None else value.lower())
    return result

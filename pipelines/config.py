"""`[sources.marketplace]` read and validated once, before a run touches the warehouse."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelines.errors import UserError
from pipelines.marketplace import settings
from pipelines.marketplace.client import MarketplaceClient, RetryPolicy
from pipelines.marketplace.helpers import parse_date

SECTION = "sources.marketplace"


@dataclass(frozen=True)
class SourceConfig:
    """`[sources.marketplace]` as resolved by dlt (env vars beat .dlt/*.toml)."""

    vendor_id: str
    base_url: str
    api_version: str
    start_date: str
    lookback_days: int
    email: str = field(repr=False)
    api_token: str = field(repr=False)
    export_poll_seconds: float = settings.EXPORT_POLL_INITIAL
    export_deadline_seconds: float = settings.EXPORT_DEADLINE_SECONDS

    def __repr__(self) -> str:
        return (
            f"SourceConfig(vendor_id={self.vendor_id!r}, base_url={self.base_url!r}, "
            f"api_version={self.api_version!r}, email={self.email!r}, api_token='***')"
        )

    def client(self, retry: RetryPolicy | None = None) -> MarketplaceClient:
        return MarketplaceClient(
            base_url=self.base_url,
            email=self.email,
            api_token=self.api_token,
            vendor_id=self.vendor_id,
            api_version=self.api_version,
            retry=retry,
        )

    def source_arguments(self) -> dict[str, Any]:
        """The keyword arguments of the `marketplace` source these settings stand for."""
        return {
            "vendor_id": self.vendor_id,
            "email": self.email,
            "api_token": self.api_token,
            "base_url": self.base_url,
            "api_version": self.api_version,
            "start_date": self.start_date,
            "lookback_days": self.lookback_days,
            "export_poll_seconds": self.export_poll_seconds,
            "export_deadline_seconds": self.export_deadline_seconds,
        }


def _value(name: str, default: Any = None) -> Any:
    import dlt

    found: Any = dlt.config.get(f"{SECTION}.{name}")
    return default if found is None or found == "" else found


def _secret(name: str) -> str:
    import dlt

    found: Any = dlt.secrets.get(f"{SECTION}.{name}")
    if not found:
        raise UserError(
            f"{name} is not set: put it in .dlt/secrets.toml under [sources.marketplace] "
            f"or set SOURCES__MARKETPLACE__{name.upper()}."
        )
    return str(found)


def read_config() -> SourceConfig:
    """Read and validate the settings; every default comes from marketplace/settings.py."""
    vendor_id = _value("vendor_id")
    if vendor_id is None:
        raise UserError("vendor_id is not set: add it under [sources.marketplace].")
    api_version = str(_value("api_version", settings.DEFAULT_API_VERSION)).lower()
    if api_version not in settings.API_VERSIONS:
        raise UserError(f"api_version must be v2 or v3, not {api_version!r}.")
    start_date = str(_value("start_date", settings.DEFAULT_START_DATE))
    parse_date(start_date, "start_date")
    try:
        lookback_days = int(_value("lookback_days", settings.DEFAULT_LOOKBACK_DAYS))
    except (TypeError, ValueError):
        raise UserError("lookback_days must be a whole number of days.") from None
    if lookback_days < 0:
        raise UserError("lookback_days must not be negative.")
    base_url = _value("base_url")
    return SourceConfig(
        vendor_id=str(vendor_id),
        base_url=settings.base_url_for(api_version, str(base_url) if base_url else None),
        api_version=api_version,
        start_date=start_date,
        lookback_days=lookback_days,
        email=_secret("email"),
        api_token=_secret("api_token"),
        export_poll_seconds=float(_value("export_poll_seconds", settings.EXPORT_POLL_INITIAL)),
        export_deadline_seconds=float(
            _value("export_deadline_seconds", settings.EXPORT_DEADLINE_SECONDS)
        ),
    )

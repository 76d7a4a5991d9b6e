"""`[sources.marketplace]` read and validated once, before a run touches the warehouse."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.errors import UserError
from pipelines.marketplace import settings
from pipelines.marketplace.client import MarketplaceClient, RetryPolicy
from pipelines.marketplace.helpers import apply_pii_policy, past_date

SECTION = "sources.marketplace"
log = logging.getLogger("pipelines.marketplace")


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
    pii: str = settings.DEFAULT_PII
    pii_salt: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return (
            f"SourceConfig(vendor_id={self.vendor_id!r}, base_url={self.base_url!r}, "
            f"api_version={self.api_version!r}, email={self.email!r}, api_token='***', "
            f"pii={self.pii!r})"
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
            "pii": self.pii,
            "pii_salt": self.pii_salt,
        }


def _value(name: str, default: Any = None) -> Any:
    import dlt

    found: Any = dlt.config.get(f"{SECTION}.{name}")
    return default if found is None or found == "" else found


def _secret(name: str) -> str:
    import dlt

    found: Any = dlt.secrets.get(f"{SECTION}.{name}")
    if not found:
        if not settings_file().exists():
            raise UserError(f"{name} is not set: {_where_to_set(name)}.")
        raise UserError(
            f"{name} is not set: put it in .dlt/secrets.toml under [sources.marketplace] "
            f"or set SOURCES__MARKETPLACE__{name.upper()}."
        )
    return str(found)


def _optional_secret(name: str) -> str | None:
    import dlt

    found: Any = dlt.secrets.get(f"{SECTION}.{name}")
    return str(found) if found else None


def settings_file() -> Path:
    """Where dlt reads config.toml: `.dlt/` in the working folder (or $DLT_PROJECT_DIR)."""
    import dlt

    return Path(dlt.current.run_context().settings_dir).resolve() / "config.toml"


def _where_to_set(name: str) -> str:
    """How to set a missing setting; names the folder when it has no .dlt/config.toml at all,
    which is what a run started from another folder meets."""
    found = settings_file()
    variable = f"SOURCES__MARKETPLACE__{name.upper()}"
    if not found.exists():
        return (
            f"there is no {found} (mpac reads .dlt/ in the folder it runs in): run it from the "
            f"project folder, or set {variable}"
        )
    return f"add it to {found} under [sources.marketplace] or set {variable}"


def toml_error(error: BaseException) -> UserError:
    """One sentence for a .dlt/*.toml that does not parse: the file and, when tomlkit says,
    the line (never the text around it, which may hold a secret)."""
    paths = [Path(path) for path in getattr(error, "full_paths", [])]
    name = getattr(error, "file_name", "a settings file")
    found = next((path for path in paths if path.exists()), None)
    where = re.search(r"line (\d+) col(?:umn)? (\d+)", str(error))
    at = f" at line {where.group(1)}, column {where.group(2)}" if where else ""
    return UserError(
        f"{found.resolve() if found else name} is not valid TOML{at}: fix it and run again."
    )


def read_config() -> SourceConfig:
    """Read and validate the settings; every default comes from marketplace/settings.py."""
    from dlt.common.configuration.providers.toml import TomlProviderReadException

    try:
        return _read_config()
    except TomlProviderReadException as error:
        raise toml_error(error) from None


def _read_config() -> SourceConfig:
    if not settings_file().exists():
        log.warning("no %s: the settings come from environment variables only", settings_file())
    vendor_id = _value("vendor_id")
    if vendor_id is None:
        raise UserError(f"vendor_id is not set: {_where_to_set('vendor_id')}.")
    api_version = str(_value("api_version", settings.DEFAULT_API_VERSION)).lower()
    if api_version not in settings.API_VERSIONS:
        raise UserError(f"api_version must be v2 or v3, not {api_version!r}.")
    start_date = str(_value("start_date", settings.DEFAULT_START_DATE))
    past_date(start_date, "start_date")
    try:
        lookback_days = int(_value("lookback_days", settings.DEFAULT_LOOKBACK_DAYS))
    except (TypeError, ValueError):
        raise UserError("lookback_days must be a whole number of days.") from None
    if lookback_days < 0:
        raise UserError("lookback_days must not be negative.")
    pii = str(_value("pii", settings.DEFAULT_PII)).strip().lower()
    pii_salt = _optional_secret("pii_salt")
    apply_pii_policy({}, pii, pii_salt)  # the policy's own checks: a known mode, a salt to hash
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
        pii=pii,
        pii_salt=pii_salt if pii == "hash" else None,
    )

"""`[sources.marketplace]` read and validated once, before a run touches the warehouse."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.errors import UserError
from pipelines.marketplace import settings
from pipelines.marketplace.client import MarketplaceClient, RetryPolicy
from pipelines.marketplace.helpers import apply_pii_policy, past_date
from pipelines.warehouse import PIPELINE_NAME

SECTION = "sources.marketplace"
# Named vendors: [sources.marketplace.vendors.<name>], each setting falling back to SECTION's.
VENDORS_SECTION = f"{SECTION}.vendors"
# The vendor of the top-level vendor_id (the one-vendor configuration every warehouse began with).
DEFAULT_VENDOR = "default"
_VENDOR_ENV = re.compile(r"^SOURCES__MARKETPLACE__VENDORS__([A-Za-z0-9_]+)__[A-Za-z0-9_]+$")
_NAME = re.compile(r"^[a-z0-9_]+$")
# Vendor ids are numeric on the live API; kept to safe characters since they go into SQL scopes.
_VENDOR_ID = re.compile(r"^[A-Za-z0-9_-]+$")
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
    name: str = DEFAULT_VENDOR

    @property
    def pipeline_name(self) -> str:
        """One dlt pipeline per vendor, all writing the same dataset: each keeps its own cursors
        and export ledger. The top-level vendor keeps the name every warehouse began with, so an
        upgrade keeps its state."""
        return PIPELINE_NAME if self.name == DEFAULT_VENDOR else f"{PIPELINE_NAME}__{self.name}"

    def __repr__(self) -> str:
        return (
            f"SourceConfig(name={self.name!r}, vendor_id={self.vendor_id!r}, "
            f"base_url={self.base_url!r}, "
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


def _sections(vendor: str | None) -> tuple[str, ...]:
    """Where a setting is looked up: the vendor's own section first, then [sources.marketplace]."""
    return (f"{VENDORS_SECTION}.{vendor}", SECTION) if vendor else (SECTION,)


def _lookup(accessor: Any, name: str, vendor: str | None) -> Any:
    for section in _sections(vendor):
        found = accessor.get(f"{section}.{name}")
        if found is not None and found != "":
            return found
    return None


def _value(name: str, default: Any = None, vendor: str | None = None) -> Any:
    import dlt

    found = _lookup(dlt.config, name, vendor)
    return default if found is None else found


def _secret(name: str, vendor: str | None = None) -> str:
    import dlt

    found: Any = _lookup(dlt.secrets, name, vendor)
    if not found:
        if not settings_file().exists():
            raise UserError(f"{name} is not set: {_where_to_set(name)}.")
        section = f"{VENDORS_SECTION}.{vendor}" if vendor else SECTION
        raise UserError(
            f"{name} is not set: put it in .dlt/secrets.toml under [{section}] "
            f"or set {_variable(section, name)}."
        )
    return str(found)


def _variable(section: str, name: str) -> str:
    return "__".join([*section.upper().split("."), name.upper()])


def _optional_secret(name: str, vendor: str | None = None) -> str | None:
    import dlt

    found: Any = _lookup(dlt.secrets, name, vendor)
    return str(found) if found else None


def vendor_names() -> list[str]:
    """The named vendors: the tables under [sources.marketplace.vendors] in any settings file,
    and SOURCES__MARKETPLACE__VENDORS__<NAME>__... environment variables (lower-cased, as dlt
    looks them up)."""
    import dlt

    names: set[str] = set()
    for accessor in (dlt.config, dlt.secrets):
        for provider in accessor.config_providers:
            found, _ = provider.get_value("vendors", Any, None, *SECTION.split("."))
            if isinstance(found, dict):
                names.update(str(name) for name in found)
    names.update(m.group(1).lower() for m in map(_VENDOR_ENV.match, os.environ) if m)
    for name in names:
        if not _NAME.match(name) or name == DEFAULT_VENDOR:
            raise UserError(
                f"vendor name {name!r} is not allowed: use lower-case letters, digits and _ "
                f"(and not {DEFAULT_VENDOR!r}, the name of the top-level vendor_id)."
            )
    return sorted(names)


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
    """The one configured vendor's settings (several configured: name one, read_vendors)."""
    vendors = read_vendors()
    if len(vendors) > 1:
        raise UserError(
            f"{len(vendors)} vendors are configured ({', '.join(v.name for v in vendors)}): "
            "pick one with --vendor NAME."
        )
    return vendors[0]


def read_vendors(only: str | None = None) -> list[SourceConfig]:
    """Every configured vendor (or the one named `only`: a name or a vendor id), validated;
    every default comes from marketplace/settings.py.

    The top-level vendor_id is the vendor named "default"; each [sources.marketplace.vendors.X]
    is vendor X, its settings falling back to [sources.marketplace]'s.
    """
    from dlt.common.configuration.providers.toml import TomlProviderReadException

    try:
        if not settings_file().exists():
            log.warning("no %s: the settings come from environment variables only", settings_file())
        names = vendor_names()
        top = _value("vendor_id")
        if top is None and not names:
            raise UserError(f"vendor_id is not set: {_where_to_set('vendor_id')}.")
        chosen = ([DEFAULT_VENDOR] if top is not None else []) + names
        ids = {name: _vendor_id(name) for name in chosen}
        repeated = sorted({i for i in ids.values() if list(ids.values()).count(i) > 1})
        if repeated:
            raise UserError(
                f"vendor id {repeated[0]} is configured twice: each vendor once, under one name."
            )
        if only is not None:
            match = [name for name in chosen if only in (name, ids[name])]
            if not match:
                raise UserError(
                    f"no vendor {only!r} is configured: choose from "
                    f"{', '.join(f'{name} ({ids[name]})' for name in chosen)}."
                )
            chosen = match
        return [_read_vendor(name) for name in chosen]
    except TomlProviderReadException as error:
        raise toml_error(error) from None


def legacy_owner_id() -> str | None:
    """The vendor id that rows loaded before vendors were recorded belong to: the top-level
    vendor_id (the one-vendor configuration they were loaded with), else the only named vendor's;
    None when that cannot be told (nothing, or several named vendors, configured)."""
    from dlt.common.configuration.providers.toml import TomlProviderReadException

    try:
        if _value("vendor_id") is not None:
            return _vendor_id(DEFAULT_VENDOR)
        names = vendor_names()
        return _vendor_id(names[0]) if len(names) == 1 else None
    except TomlProviderReadException as error:
        raise toml_error(error) from None


def vendor_id_of(name: str) -> str | None:
    """The vendor id of a vendor named in the settings (no secrets read), or None."""
    from dlt.common.configuration.providers.toml import TomlProviderReadException

    try:
        if name == DEFAULT_VENDOR:
            return _vendor_id(name) if _value("vendor_id") is not None else None
        return _vendor_id(name) if name in vendor_names() else None
    except TomlProviderReadException as error:
        raise toml_error(error) from None


def _vendor_id(name: str) -> str:
    """A named vendor must set its own vendor_id: inheriting the top-level one would load the
    same vendor twice."""
    import dlt

    if name == DEFAULT_VENDOR:
        found = _value("vendor_id")
    else:
        found = dlt.config.get(f"{VENDORS_SECTION}.{name}.vendor_id")
        if found is None or found == "":
            section = f"{VENDORS_SECTION}.{name}"
            raise UserError(
                f"vendor {name} has no vendor_id: add it under [{section}] "
                f"or set {_variable(section, 'vendor_id')}."
            )
    vendor_id = str(found).strip()
    if not _VENDOR_ID.match(vendor_id):
        raise UserError(f"vendor_id {vendor_id!r} is not a vendor id (digits, as in the URL).")
    return vendor_id


def _read_vendor(name: str) -> SourceConfig:
    vendor = None if name == DEFAULT_VENDOR else name

    def value(key: str, default: Any = None) -> Any:
        return _value(key, default, vendor)

    vendor_id = _vendor_id(name)
    api_version = str(value("api_version", settings.DEFAULT_API_VERSION)).lower()
    if api_version not in settings.API_VERSIONS:
        raise UserError(f"api_version must be v2 or v3, not {api_version!r}.")
    start_date = str(value("start_date", settings.DEFAULT_START_DATE))
    past_date(start_date, "start_date")
    try:
        lookback_days = int(value("lookback_days", settings.DEFAULT_LOOKBACK_DAYS))
    except (TypeError, ValueError):
        raise UserError("lookback_days must be a whole number of days.") from None
    if lookback_days < 0:
        raise UserError("lookback_days must not be negative.")
    pii = str(value("pii", settings.DEFAULT_PII)).strip().lower()
    pii_salt = _optional_secret("pii_salt", vendor)
    apply_pii_policy({}, pii, pii_salt)  # the policy's own checks: a known mode, a salt to hash
    base_url = value("base_url")
    return SourceConfig(
        name=name,
        vendor_id=vendor_id,
        base_url=settings.base_url_for(api_version, str(base_url) if base_url else None),
        api_version=api_version,
        start_date=start_date,
        lookback_days=lookback_days,
        email=_secret("email", vendor),
        api_token=_secret("api_token", vendor),
        export_poll_seconds=float(value("export_poll_seconds", settings.EXPORT_POLL_INITIAL)),
        export_deadline_seconds=float(
            value("export_deadline_seconds", settings.EXPORT_DEADLINE_SECONDS)
        ),
        pii=pii,
        pii_salt=pii_salt if pii == "hash" else None,
    )

"""Async exports: initiate, persist the id at once, poll to a deadline, re-initiate FAILED."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from pipelines.errors import UserError
from pipelines.marketplace import settings
from pipelines.marketplace.client import ExportHandle, MarketplaceClient, jitter

log = logging.getLogger("pipelines.marketplace")

LEDGER_FILE = "exports.json"


class ExportLedger:
    """Export ids by request, in a small JSON file in the pipeline's working folder.

    dlt's own state is written only when extraction ends, which is too late: a run killed while
    waiting must find the id it already has, or it would start the export again. Each change is
    written at once (write then rename, so a kill never leaves half a file). The runner clears
    the file after a successful load; until then a rerun resumes the same exports.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        # Bulk backfills download the next export in a thread: one writer at a time.
        self._lock = threading.RLock()
        self.entries: dict[str, dict[str, Any]] = {}
        if path is not None and path.exists():
            try:
                self.entries = json.loads(path.read_text())
            except (OSError, ValueError):
                # A damaged ledger only costs re-initiating exports; never fail a run on it.
                self.entries = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, **entry: Any) -> None:
        with self._lock:
            self.entries[key] = {**self.entries.get(key, {}), **entry}
            self._save()

    def drop(self, key: str) -> None:
        with self._lock:
            if self.entries.pop(key, None) is not None:
                self._save()

    def clear(self) -> None:
        self.entries = {}
        if self.path is not None and self.path.exists():
            self.path.unlink()

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_suffix(".tmp")
        scratch.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
        os.replace(scratch, self.path)


def export_key(path: str, params: Mapping[str, Any]) -> str:
    """Identical filters mean the same export (the live API even returns the same id)."""
    return f"{path}?{urlencode(sorted(params.items()), doseq=True)}"


@dataclass
class ExportRunner:
    """The one export routine that every exported resource goes through."""

    client: MarketplaceClient
    ledger: ExportLedger
    poll_initial: float = settings.EXPORT_POLL_INITIAL
    poll_max: float = settings.EXPORT_POLL_MAX
    deadline_seconds: float = settings.EXPORT_DEADLINE_SECONDS
    max_reinitiations: int = settings.EXPORT_MAX_REINITIATIONS
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    # Export ids this run has already announced (initiated or resumed).
    _known: set[str] = field(default_factory=set, repr=False)

    def start(self, path: str, params: Mapping[str, Any], what: str) -> None:
        """Initiate (or find the saved) export now, so that Atlassian prepares all the windows
        of a backfill at once while we download them one by one."""
        key = export_key(path, params)
        if self._resume(path, key, what) is None:
            self._initiate(path, params, key, what)

    def records(self, path: str, params: Mapping[str, Any], what: str) -> Iterator[dict[str, Any]]:
        """Every record of the export for `params`, resuming a saved export id if there is one."""
        key = export_key(path, params)
        handle = self.completed(path, params, what)
        count = 0
        start_bytes = self.client.bytes_downloaded
        for record in self.client.stream_export(handle):
            count += 1
            if count % settings.PROGRESS_EVERY == 0:
                log.info(
                    "%s: %d records (%s) downloaded so far",
                    what,
                    count,
                    megabytes(self.client.bytes_downloaded - start_bytes),
                )
            yield record
        self._downloaded(key, handle, what, f"{count} records", start_bytes, records=count)

    def body(self, path: str, params: Mapping[str, Any], what: str, target: Path) -> str:
        """The export's body, as sent, written to `target` (a download of any size costs no
        memory), and the digest of its bytes (client.body_digest)."""
        key = export_key(path, params)
        handle = self.completed(path, params, what)
        start_bytes = self.client.bytes_downloaded
        digest = self.client.download_export(handle, target)
        self._downloaded(key, handle, what, "to a file", start_bytes)
        return digest

    def completed(self, path: str, params: Mapping[str, Any], what: str) -> ExportHandle:
        """The handle of the export once COMPLETED: resumed or initiated, polled to the
        deadline, initiated again (a bounded number of times) when it FAILED or was lost."""
        key = export_key(path, params)
        failures = 0
        deadline = self.clock() + self.deadline_seconds
        while True:
            handle = self._resume(path, key, what) or self._initiate(path, params, key, what)
            status = self._wait(handle, what, deadline)
            if status == "COMPLETED":
                return handle
            # FAILED, or an id the API no longer knows: start the export again, a bounded
            # number of times.
            self.ledger.drop(key)
            failures += 1
            if failures > self.max_reinitiations:
                raise UserError(
                    f"the {what} export failed {failures} times on Atlassian's side; "
                    "try again later."
                )
            log.warning("%s: export %s %s; initiating it again", what, handle.id, status or "lost")

    def _downloaded(
        self, key: str, handle: ExportHandle, what: str, how: str, start_bytes: int, **extra: Any
    ) -> None:
        log.info(
            "%s: export %s downloaded, %s (%s)",
            what,
            handle.id,
            how,
            megabytes(self.client.bytes_downloaded - start_bytes),
        )
        self.ledger.put(key, status="DOWNLOADED", **extra)

    def _resume(self, path: str, key: str, what: str) -> ExportHandle | None:
        entry = self.ledger.get(key)
        if not entry or not entry.get("id"):
            return None
        initiated = dt.datetime.fromisoformat(entry.get("initiated_at") or "1970-01-01T00:00Z")
        age = dt.datetime.now(dt.UTC) - initiated
        made_on, today = entry.get("api_day"), self._api_day()
        if age > dt.timedelta(hours=settings.EXPORT_RESUME_MAX_AGE_HOURS) or (
            made_on and today and made_on != today
        ):
            # An old export describes old data (and may be gone), and one made on an earlier
            # API day lacks that day's late attribution, which a run that landed nothing (and so
            # kept the ledger) would otherwise read again: start a fresh one.
            self.ledger.drop(key)
            return None
        if entry["id"] not in self._known:
            log.info("%s: resuming export %s saved by an earlier run", what, entry["id"])
            self._known.add(entry["id"])
        return self.client.export_handle(path, entry["id"], entry.get("links"))

    def _api_day(self) -> str | None:
        """The API's day by its Date header, once any response has said it."""
        day = self.client.api_day
        return day.isoformat() if day is not None else None

    def _initiate(self, path: str, params: Mapping[str, Any], key: str, what: str) -> ExportHandle:
        handle = self.client.initiate_export(path, params)
        # Persisted before the first poll: a run killed from here on resumes this id.
        self.ledger.put(
            key,
            id=handle.id,
            what=what,
            status="QUEUED",
            initiated_at=dt.datetime.now(dt.UTC).isoformat(),
            api_day=self._api_day(),
        )
        self._known.add(handle.id)
        log.info("%s: export %s initiated", what, handle.id)
        return handle

    def _wait(self, handle: ExportHandle, what: str, deadline: float) -> str | None:
        """Poll with backoff until the export settles; past the deadline a clear error (the
        id stays saved, so the next run picks the wait up where this one left it)."""
        interval = self.poll_initial
        last: str | None = ""
        while True:
            status = self.client.export_status(handle)
            if status != last:
                log.info("%s: export %s %s", what, handle.id, status or "unknown")
                key = next(
                    (k for k, v in list(self.ledger.entries.items()) if v.get("id") == handle.id),
                    None,
                )
                if key and status:
                    self.ledger.put(key, status=status)
                last = status
            if status in ("COMPLETED", "FAILED", None):
                return status
            if self.clock() + interval > deadline:
                raise UserError(
                    f"the {what} export {handle.id} is still {status} after "
                    f"{self.deadline_seconds:.0f} s; run again later to resume waiting for it."
                )
            self.sleep(jitter(interval))
            interval = min(interval * 2, self.poll_max)


def megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"

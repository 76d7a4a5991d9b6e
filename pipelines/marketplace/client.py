"""HTTP client for the Marketplace reporting API: auth, one retry policy, paging, async exports."""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import ijson
import orjson
import tenacity
from tenacity.wait import wait_base

from pipelines.errors import UserError
from pipelines.marketplace import settings

log = logging.getLogger("pipelines.marketplace")

Params = Mapping[str, str | int | Sequence[str]]


class RetryableError(Exception):
    """A response worth retrying: 429, 5xx, or a body that is not the JSON we expect."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class NotFoundError(Exception):
    """A 403/404; what it means depends on the call (wrong vendor, expired export id)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


# Transport failures (timeouts, dropped connections, bodies cut short) are retried exactly like
# a 5xx: the API gives no way to tell a transient outage from a slow one.
RETRYABLE_EXCEPTIONS = (RetryableError, httpx.TransportError, ijson.JSONError)
# ...except a connection that cannot even be opened (refused, a name that does not resolve):
# that is a wrong base_url or no network, and 7 retries only cost 30-45 s before saying so.
NOT_RETRIED = (httpx.ConnectError,)


def unreachable(base_url: str, error: BaseException) -> UserError:
    """The one sentence for a host that cannot be reached, naming it (never the path or query,
    which carry the vendor id, nor any credential)."""
    host = urlsplit(base_url).netloc or base_url
    text = str(error).lower()
    if "name or service not known" in text or "nodename" in text or "name resolution" in text:
        reason = "the name does not resolve"
    elif "refused" in text:
        reason = "connection refused"
    else:
        reason = "no connection"
    return UserError(
        f"cannot reach the Marketplace API at {host} ({reason}): check base_url in "
        "[sources.marketplace] and the network."
    )


def api_day_of(header: str | None) -> dt.date | None:
    """The UTC day of an HTTP Date header, or None when there is none or it does not parse."""
    if not header:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return moment.date()
    return moment.astimezone(dt.UTC).date()


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class WaitRetryAfterOrBackoff(wait_base):
    """Honour the server's Retry-After when it sends one; else exponential backoff, full jitter."""

    def __init__(self, initial: float, maximum: float, retry_after_cap: float) -> None:
        self.backoff = tenacity.wait_random_exponential(multiplier=initial, max=maximum)
        self.retry_after_cap = retry_after_cap

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, RetryableError) and error.retry_after is not None:
            return min(error.retry_after, self.retry_after_cap)
        return float(self.backoff(retry_state))


@dataclass(frozen=True)
class RetryPolicy:
    """The one retry policy of every API call; `sleep` is injectable so tests take no time."""

    attempts: int = settings.RETRY_ATTEMPTS
    budget_seconds: float = settings.RETRY_BUDGET_SECONDS
    initial_wait: float = settings.RETRY_INITIAL_WAIT
    max_wait: float = settings.RETRY_MAX_WAIT
    retry_after_cap: float = settings.RETRY_AFTER_CAP
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)

    def retrying(self, what: str) -> tenacity.Retrying:
        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "%s: %s; retry %d in %.1f s", what, describe(error), state.attempt_number, wait
            )

        return tenacity.Retrying(
            # stop_before_delay: never start a wait that would overrun the budget.
            stop=tenacity.stop_after_attempt(self.attempts)
            | tenacity.stop_before_delay(self.budget_seconds),
            wait=WaitRetryAfterOrBackoff(self.initial_wait, self.max_wait, self.retry_after_cap),
            retry=tenacity.retry_if_exception_type(RETRYABLE_EXCEPTIONS)
            & tenacity.retry_if_not_exception_type(NOT_RETRIED),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )


def describe(error: BaseException | None) -> str:
    """A short, secret-free description of a failure (httpx messages carry the URL only)."""
    if isinstance(error, RetryableError):
        return error.reason
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    if isinstance(error, httpx.TransportError):
        return f"connection failed ({type(error).__name__})"
    if isinstance(error, ijson.JSONError):
        return "response body cut short or not JSON"
    return type(error).__name__ if error else "unknown error"


def join_link(base_url: str, href: str, api_prefix: str) -> str:
    """Absolute URL of a `_links` href, which the API sends without host (and on v3 sometimes
    without `/rest/3`). Links to another host are refused: they would receive our credentials."""
    base = urlsplit(base_url)
    link = urlsplit(href)
    if link.scheme or link.netloc:
        if (link.scheme, link.netloc) != (base.scheme, base.netloc):
            raise UserError(f"the API sent a paging link to another host ({link.netloc}).")
        return href
    path = href if href.startswith("/") else f"/{href}"
    base_path = base.path.rstrip("/")
    if base_path and path.startswith(f"{base_path}/"):
        path = path[len(base_path) :]
    if not path.startswith(f"{api_prefix}/"):
        path = f"{api_prefix}{path}"
    return f"{base.scheme}://{base.netloc}{base_path}{path}"


@dataclass(frozen=True)
class ExportHandle:
    """Where to poll and download one async export; `id` is what we persist to resume."""

    id: str
    status_url: str
    download_url: str


class MarketplaceClient:
    """Calls the reporting API of one vendor with HTTP Basic auth (email + API token)."""

    def __init__(
        self,
        *,
        base_url: str,
        email: str,
        api_token: str,
        vendor_id: str,
        api_version: str = "v2",
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if api_version not in settings.API_VERSIONS:
            raise UserError(f"api_version must be v2 or v3, not {api_version!r}.")
        if not str(vendor_id).strip():
            raise UserError("vendor_id is not set: add it under [sources.marketplace].")
        if not email or not api_token:
            raise UserError("email and api_token are not set: see .dlt/example.secrets.toml.")
        self.base_url = base_url.rstrip("/")
        self.vendor_id = str(vendor_id).strip()
        self.api_version = api_version
        self.api_prefix = "/rest/2" if api_version == "v2" else "/rest/3"
        self.retry = retry or RetryPolicy()
        self._developer_id: str | None = None
        # httpx keeps the credentials in the auth object and the header only; neither is logged
        # (httpx logs method, URL and status) and our repr below leaves them out.
        self._http = httpx.Client(
            auth=httpx.BasicAuth(email, api_token),
            timeout=httpx.Timeout(settings.READ_TIMEOUT, connect=settings.CONNECT_TIMEOUT),
            headers={"Accept": "application/json"},
            transport=transport,
            follow_redirects=False,
        )
        self.email = email
        # The latest day the API's clock showed, from the Date headers (None until a response).
        self.api_day: dt.date | None = None
        # Bytes of export bodies read so far: long downloads report MB beside their records.
        self.bytes_downloaded = 0

    def __repr__(self) -> str:
        return (
            f"MarketplaceClient(base_url={self.base_url!r}, vendor_id={self.vendor_id!r}, "
            f"api_version={self.api_version!r}, api_token='***')"
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MarketplaceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _note_date(self, header: str | None) -> None:
        """Keep the API's own day (the Date header, UTC): the load day that caps as_of_date and
        the cursors, whatever our clock says (the simulator's travels in time)."""
        day = api_day_of(header)
        if day is not None and (self.api_day is None or day > self.api_day):
            self.api_day = day

    # ---- addressing -------------------------------------------------------------------------

    @property
    def reporting_root(self) -> str:
        """URL of `.../reporting` for this vendor (v3 resolves the developer space once)."""
        if self.api_version == "v2":
            return f"{self.base_url}/rest/2/vendors/{self.vendor_id}/reporting"
        return f"{self.base_url}/rest/3/reporting/developer-space/{self.developer_id}"

    @property
    def developer_id(self) -> str:
        if self._developer_id is None:
            url = f"{self.base_url}/rest/3/developer-space/vendor/{self.vendor_id}"
            body = self.get_json(url, what="developer space lookup")
            developer_id = body.get("developerId") if isinstance(body, dict) else None
            if not developer_id:
                raise self._vendor_error()
            self._developer_id = str(developer_id)
        return self._developer_id

    def url(self, path: str) -> str:
        return f"{self.reporting_root}/{path.lstrip('/')}"

    def _vendor_error(self) -> UserError:
        return UserError(
            f"vendor {self.vendor_id} was not found or is not yours: check vendor_id "
            "and that the account owns it."
        )

    # ---- one request, retried ---------------------------------------------------------------

    def _check(self, response: httpx.Response) -> None:
        self._note_date(response.headers.get("Date"))
        status = response.status_code
        if status == 401:
            raise UserError("credentials rejected: check email and api_token.")
        if status in (403, 404):
            raise NotFoundError(status)
        if status == 429 or status >= 500:
            raise RetryableError(
                f"HTTP {status}", parse_retry_after(response.headers.get("Retry-After"))
            )
        if status == 400:
            raise UserError(f"the API rejected a request: {api_message(response)}.")
        if status >= 300:
            raise UserError(f"the API answered HTTP {status} to {response.request.url.path}.")

    def _send(self, method: str, url: str, params: Params | None) -> Any:
        response = self._http.request(method, url, params=params)
        self._check(response)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as error:
            raise RetryableError("response body cut short or not JSON") from error

    def request_json(
        self, method: str, url: str, params: Params | None = None, *, what: str = "request"
    ) -> Any:
        """One call under the retry policy; 403/404 mean a wrong vendor unless the caller
        catches NotFoundError first (see `export_status`)."""
        with self._gave_up(
            lambda cause: f"the Marketplace API kept failing ({cause}) on {what}; try again later."
        ):
            for attempt in self.retry.retrying(what):
                with attempt:
                    return self._send(method, url, params)
        raise AssertionError("unreachable: tenacity either returns or raises")

    @contextlib.contextmanager
    def _gave_up(self, sentence: Callable[[str], str]) -> Iterator[None]:
        """The retry policy's end as one UserError: a host that cannot be reached at all says
        so (`unreachable`); retries used up, `sentence` of the last failure's description."""
        try:
            yield
        except NOT_RETRIED as error:
            raise unreachable(self.base_url, error) from None
        except RETRYABLE_EXCEPTIONS as error:
            raise UserError(sentence(describe(error))) from None

    def get_json(self, url: str, params: Params | None = None, *, what: str = "request") -> Any:
        try:
            return self.request_json("GET", url, params, what=what)
        except NotFoundError:
            raise self._vendor_error() from None

    # ---- list endpoints ---------------------------------------------------------------------

    def paginate(
        self, path: str, items_key: str, params: Params | None = None, *, what: str = ""
    ) -> Iterator[dict[str, Any]]:
        """Every item of a list endpoint, following `_links.next` until it is absent."""
        what = what or path
        url: str | None = self.url(path)
        query: dict[str, Any] | None = {**(params or {}), "offset": 0, "limit": settings.PAGE_SIZE}
        pages = 0
        rows = 0
        while url:
            body = self.get_json(url, query, what=f"{what} page {pages + 1}")
            if not isinstance(body, dict):
                raise UserError(f"the API sent an unexpected body for {what}.")
            items = body.get(items_key) or []
            pages += 1
            rows += len(items)
            yield from items
            href = ((body.get("_links") or {}).get("next") or {}).get("href")
            # The next link carries the whole query (filters, offset); don't send ours twice.
            url = join_link(self.base_url, href, self.api_prefix) if href else None
            query = None
            if pages % 100 == 0:
                log.info("%s: %d pages, %d rows so far", what, pages, rows)
        log.info("%s: %d rows in %d pages", what, rows, pages)

    # ---- async exports ----------------------------------------------------------------------

    def initiate_export(self, path: str, params: Params) -> ExportHandle:
        """POST `<path>/async/export`; the filters go in the query string, the body is empty."""
        body = self.request_json("POST", self.url(f"{path}/async/export"), params, what=path)
        export_id = ((body or {}).get("export") or {}).get("id")
        if not export_id:
            raise UserError(f"the API did not return an export id for {path}.")
        return self.export_handle(path, str(export_id), (body or {}).get("_links") or {})

    def export_handle(
        self, path: str, export_id: str, links: Mapping[str, Any] | None = None
    ) -> ExportHandle:
        """Status and download URLs: from the initiate links when given, else the documented
        paths (marketing attribution uses the generic `reporting/async/export/{id}`)."""
        base = "" if path == "marketing-attribution" else f"{path}/"
        status_url = self.url(f"{base}async/export/{export_id}/status")
        download_url = self.url(f"{base}async/export/{export_id}")
        links = links or {}
        if href := (links.get("status") or {}).get("href"):
            status_url = join_link(self.base_url, href, self.api_prefix)
        if href := (links.get("download") or {}).get("href"):
            download_url = join_link(self.base_url, href, self.api_prefix)
        return ExportHandle(export_id, status_url, download_url)

    def export_status(self, handle: ExportHandle) -> str | None:
        """QUEUED | IN_PROGRESS | COMPLETED | FAILED, or None when the id is unknown (expired)."""
        try:
            body = self.request_json("GET", handle.status_url, what=f"export {handle.id} status")
        except NotFoundError:
            return None
        return str(((body or {}).get("export") or {}).get("status") or "").upper() or None

    def stream_export(self, handle: ExportHandle) -> Iterator[dict[str, Any]]:
        """The records of a COMPLETED export, parsed as they arrive (memory stays flat).

        A download that breaks off is retried under the same policy; the records already
        yielded are skipped on the next attempt (a completed export does not change).
        """
        try:
            yield from self._stream(handle.download_url, f"export {handle.id} download", True)
        except NotFoundError:
            raise UserError(f"export {handle.id} vanished before it could be downloaded.") from None

    def download_export(self, handle: ExportHandle, target: Path) -> str:
        """The body of a COMPLETED export written to `target` as it arrives (retried from its
        start under the same policy; a body that does not end its JSON array is cut short),
        and the digest of its bytes."""
        try:
            return self._download(handle.download_url, target, f"export {handle.id} download")
        except NotFoundError:
            raise UserError(f"export {handle.id} vanished before it could be downloaded.") from None

    def download_sync_export(self, path: str, params: Params, target: Path, what: str) -> str:
        """The body of a synchronous `.../export` written whole to `target`, as sent, and the
        digest of its bytes (`body_digest`). A retried download starts the file over, so the
        file holds one response, never records twice; parse it with `body_records`."""
        url = str(httpx.URL(self.url(f"{path}/export"), params=params))
        try:
            return self._download(url, target, what)
        except NotFoundError:
            raise self._vendor_error() from None

    def _download(self, url: str, target: Path, what: str) -> str:
        with self._gave_up(
            lambda cause: f"the {what} kept failing ({cause}); run again to resume."
        ):
            for attempt in self.retry.retrying(what):
                with attempt, self._http.stream("GET", url) as response:
                    self._check(response)
                    digest = body_digest()
                    tail = b""
                    with target.open("wb") as out:
                        for chunk in response.iter_bytes(1 << 20):
                            self.bytes_downloaded += len(chunk)
                            out.write(chunk)
                            digest.update(chunk)
                            tail = (tail + chunk)[-64:]
                    if not tail.rstrip().endswith(b"]"):
                        raise RetryableError("response body cut short or not a JSON array")
                    return digest.hexdigest()
        raise AssertionError("unreachable: tenacity either returns or raises")

    def stream_sync_export(self, path: str, params: Params, what: str) -> Iterator[dict[str, Any]]:
        """Every record of a synchronous `.../export` endpoint in one streamed response.

        Such a response is computed afresh on each attempt, so a retried download starts over
        and yields records again: the caller must tolerate (deduplicate) repeats.
        """
        url = str(httpx.URL(self.url(f"{path}/export"), params=params))
        try:
            yield from self._stream(url, what, False)
        except NotFoundError:
            raise self._vendor_error() from None

    def _stream(self, url: str, what: str, resume_by_count: bool) -> Iterator[dict[str, Any]]:
        yielded = 0
        with self._gave_up(
            lambda cause: f"the {what} kept failing ({cause}); run again to resume."
        ):
            for attempt in self.retry.retrying(what):
                with attempt:
                    seen = 0
                    for item in self._parse_download(url):
                        seen += 1
                        if resume_by_count and seen <= yielded:
                            continue
                        yielded += 1
                        yield item

    def _parse_download(self, url: str) -> Iterator[dict[str, Any]]:
        with self._http.stream("GET", url) as response:
            self._check(response)
            yield from parse_chunks(self._counted(response.iter_bytes()))

    def _counted(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.bytes_downloaded += len(chunk)
            yield chunk


def body_digest() -> Any:
    """What identifies an export body's bytes: equal digests, equal bytes (a change detector,
    not a security measure: SHA-1 hashes ~0.9 GB/s here, SHA-256 ~0.5)."""
    return hashlib.sha1(usedforsecurity=False)


def parse_chunks(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The records of an export body, parsed as its chunks arrive (memory stays flat).

    Licenses and transactions come as a top-level array; marketing attribution as
    {"marketingAttribution": [...]} per the spec but as an array live: accept both. A body
    cut short raises ijson's IncompleteJSONError at its end.
    """
    done = ijson.sendable_list()
    parser: Any = None
    for chunk in chunks:
        if parser is None:
            head = chunk.lstrip()
            if not head:
                continue
            prefix = "item" if head.startswith(b"[") else "marketingAttribution.item"
            # use_float: ijson would hand out Decimals, which dlt types as decimal.
            parser = ijson.items_coro(done, prefix, use_float=True)
        parser.send(chunk)
        if done:
            items = list(done)
            del done[:]
            yield from items
    if parser is None:
        raise RetryableError("empty export download")
    parser.close()  # raises IncompleteJSONError on a body cut short: retried
    yield from list(done)


def body_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of an export body saved by `download_sync_export`, parsed exactly as a
    streamed one is (`parse_chunks`), so the same bytes give the same records."""
    with path.open("rb") as body:
        yield from parse_chunks(iter(lambda: body.read(1 << 20), b""))


def api_message(response: httpx.Response) -> str:
    """The first message of a JsonErrorsDoc body, else the status; never echoes the request."""
    try:
        errors = orjson.loads(response.content).get("errors") or []
        message = str(errors[0].get("message") or "").strip()
    except (orjson.JSONDecodeError, AttributeError, IndexError, TypeError):
        message = ""
    return message[:200] or f"HTTP {response.status_code}"


def jitter(seconds: float) -> float:
    """Poll intervals get +-20% jitter so many exports don't poll in lock step."""
    return seconds * random.uniform(0.8, 1.2)

"""The simulated Marketplace reporting API (v2 and v3) as a Starlette app, plus `mpac simulate`."""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hmac
import itertools
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipelines.errors import UserError
from pipelines.simulator.exports import ExportJob, ExportKind, ExportRegistry
from pipelines.simulator.faults import FaultConfig, FaultInjector, parse_faults
from pipelines.simulator.queries import (
    ENTITIES,
    ApiError,
    RecordFilter,
    multi_params,
    paging,
    parse_accept,
    parse_bool,
    parse_choice,
    parse_date,
    parse_int,
)

DEFAULT_EMAIL = "simulator@example.com"
DEFAULT_API_TOKEN = "sim-api-token"
SIZES = ("tiny", "small", "large")
METRIC_NAMES = ("churn", "renewal", "conversion")
EXPECTED_TABLES = (
    "churn",
    "renewal",
    "conversion",
    "mrr",
    "mrr_movements",
    "evaluations",
    "renewal_opportunities",
)
# Records per streamed chunk: big enough that the per-chunk thread hop is noise.
_CHUNK_RECORDS = 500
# Filtered lists kept for paging (see SimulatorState.page).
_LIST_CACHE_SIZE = 8
_LIST_CACHE_RECORDS = 300_000

_QUERY_TEMPLATES = {
    "licenses": "{?addon*,productId*,startDate,endDate,dateType,text,tier*,licenseType*,"
    "partnerType*,hosting*,status*,withDataInsights,includeAtlassianLicenses,lastUpdated,"
    "sortBy,order,offset,limit}",
    "transactions": "{?addon*,productId*,startDate,endDate,text,tier*,saleType*,partnerType*,"
    "hosting*,lastUpdated,excludeZeroTransactions,includeManualInvoice,sortBy,order,offset,limit}",
    "feedback": "{?addon*,productId*,type*,reason*,hosting*,startDate,endDate,text,offset,limit}",
    "events": "{?addon*,productId*,hosting*,lastUpdated,text,startDate,endDate,sortBy,order,"
    "offset,limit}",
    "marketing_attribution": "{?addon*,productId*,startDate,endDate,text,accept}",
}


@dataclass(frozen=True)
class Api:
    """What differs between the two generations for one request."""

    generation: int
    # Relative hrefs: v2 links start /rest/2/..., v3 links leave out /rest/3 as the live API does.
    link_base: str
    product_filter: str


class SimulatorState:
    """Everything one running simulator holds: the vendor, faults, exports and caches."""

    def __init__(
        self,
        vendor: Any,
        faults: FaultInjector | None = None,
        email: str = DEFAULT_EMAIL,
        api_token: str = DEFAULT_API_TOKEN,
        seed: int | None = None,
        size: str | int | None = None,
    ) -> None:
        self.vendor = vendor
        self.faults = faults or FaultInjector()
        self.exports = ExportRegistry(self.faults)
        self.email = email
        self.api_token = api_token
        self.seed = seed
        self.size = size
        self.product_of = {app.addon_key: app.product_id for app in vendor.apps}
        self.addon_of = {app.product_id: app.addon_key for app in vendor.apps}
        self.addon_names = {app.addon_key: app.name for app in vendor.apps}
        self._expected: tuple[date, Any] | None = None
        self._lists: OrderedDict[tuple[object, ...], list[Mapping[str, Any]]] = OrderedDict()
        # The vendor draws its stories lazily when an iterator starts or today moves; that step
        # must not run twice at once (exports stream from several worker threads). Rendering
        # after it only reads, so streams run in parallel.
        self.lock = threading.RLock()
        self._expected_lock = threading.Lock()
        self._cache_lock = threading.Lock()

    def advance(self, days: int) -> date:
        with self.lock:
            self.vendor.advance(days)
            return self.vendor.today

    def records(
        self, kind: str, as_of: date | None = None, with_data_insights: bool = False
    ) -> Iterable[Mapping[str, Any]]:
        """The vendor's records of one kind as of a day (default: the simulated today)."""
        if kind.startswith("events:"):
            from pipelines.simulator import metrics

            return metrics.details_events(self.expected(), kind.removeprefix("events:"))
        with self.lock:
            as_of = as_of or self.vendor.today
            if kind == "licenses":
                records = self.vendor.licenses(as_of=as_of, with_data_insights=with_data_insights)
            else:
                records = getattr(self.vendor, kind)(as_of=as_of)
            # Run the generator to its first record while holding the lock: that is when the
            # vendor draws whatever it has not drawn yet.
            iterator = iter(records)
            first = list(itertools.islice(iterator, 1))
        return itertools.chain(first, iterator)

    def expected(self) -> Any:
        """The ground-truth metric tables, computed once per simulated day.

        as_of is METRICS.md's default, the latest lastUpdated in the data (which can trail the
        simulated today by a day), so a warehouse built with default dbt vars reconciles to zero.
        """
        from pipelines.simulator import metrics

        with self._expected_lock:
            today = self.vendor.today
            if self._expected is None or self._expected[0] != today:
                tables = metrics.compute_metrics(
                    self.records("licenses", today, with_data_insights=True),
                    self.records("transactions", today),
                )
                self._expected = (today, tables)
            return self._expected[1]

    def page(
        self,
        kind: str,
        record_filter: RecordFilter,
        key: tuple[object, ...],
        insights: bool,
        offset: int,
        limit: int,
    ) -> tuple[list[Mapping[str, Any]], int]:
        """One page of a filtered list and the total match count.

        Small results are cached so walking N pages costs one filter pass, not N; a result
        larger than _LIST_CACHE_RECORDS is recounted per page rather than held in memory.
        """
        full_key = (kind, self.vendor.today, *key)
        with self._cache_lock:
            cached = self._lists.get(full_key)
            if cached is not None:
                self._lists.move_to_end(full_key)
                return cached[offset : offset + limit], len(cached)
        kept: list[Mapping[str, Any]] | None = []
        page: list[Mapping[str, Any]] = []
        total = 0
        for record in record_filter.apply(self.records(kind, with_data_insights=insights)):
            if offset <= total < offset + limit:
                page.append(record)
            if kept is not None:
                kept.append(record)
                if len(kept) > _LIST_CACHE_RECORDS:
                    kept = None
            total += 1
        if kept is not None:
            with self._cache_lock:
                self._lists[full_key] = kept
                while len(self._lists) > _LIST_CACHE_SIZE or (
                    sum(map(len, self._lists.values())) > _LIST_CACHE_RECORDS
                ):
                    self._lists.popitem(last=False)
        return page, total


# ---------------------------------------------------------------- responses


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def error_response(status: int, message: str, path: str | None = None) -> Response:
    return json_response(ApiError(status, message, path).body(), status)


def stream_array(records: Iterable[Mapping[str, Any]]) -> StreamingResponse:
    """A top-level JSON array sent in chunks: no Content-Length, never one body in memory."""

    def chunks() -> Iterator[bytes]:
        # The brackets ride on the first and last batch, so every chunk carries records and a
        # truncation fault always cuts through one.
        iterator = iter(records)

        def pull() -> list[Mapping[str, Any]]:
            return list(itertools.islice(iterator, _CHUNK_RECORDS))

        batch = pull()
        prefix = b"["
        while True:
            following = pull() if batch else []
            body = prefix + b",".join(orjson.dumps(r) for r in batch)
            if not following:
                yield body + b"]"
                return
            yield body
            prefix, batch = b",", following

    return StreamingResponse(chunks(), media_type="application/json")


def _decorate(api: Api, state: SimulatorState) -> Callable[[Mapping[str, Any]], Mapping[str, Any]]:
    if api.generation == 2:
        return lambda record: record
    return lambda record: {**record, "productId": state.product_of.get(record.get("addonKey"))}


def _href(path: str, items: Iterable[tuple[str, str]]) -> str:
    query = urlencode(list(items))
    return f"{path}?{query}" if query else path


def _link_template(template: str) -> dict[str, Any]:
    # The spec's LinkTemplate carries `template`; HAL clients read `href` + `templated`.
    return {"href": template, "template": template, "templated": True}


def _without_paging(request: Request) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.query_params.multi_items() if k not in ("offset", "limit")]


# ---------------------------------------------------------------- request context


def _api(request: Request) -> Api:
    state: SimulatorState = request.app.state.sim
    vendor = state.vendor
    params = request.path_params
    if "vendor_id" in params:
        if params["vendor_id"] != str(vendor.vendor_id):
            raise ApiError(404, f"Vendor {params['vendor_id']} was not found.")
        return Api(2, f"/rest/2/vendors/{vendor.vendor_id}/reporting", "addon")
    if params.get("developer_id") != str(vendor.developer_id):
        raise ApiError(404, f"Developer space {params.get('developer_id')} was not found.")
    return Api(3, f"/reporting/developer-space/{vendor.developer_id}", "productId")


def _state(request: Request) -> SimulatorState:
    return request.app.state.sim


def _filter(
    request: Request, api: Api, entity: str, params: Mapping[str, list[str]]
) -> RecordFilter:
    state = _state(request)
    sticky = (
        getattr(state.vendor, "sticky_license_ids", frozenset())
        if entity == "licenses"
        else frozenset()
    )
    return RecordFilter.parse(entity, params, api.product_filter, state.addon_of, sticky)


def _insights(params: Mapping[str, list[str]], entity: str) -> bool:
    return entity == "licenses" and parse_bool(params, "withDataInsights", False)


# ---------------------------------------------------------------- list and export handlers

# (path under the base, entity of the filter table, kind of records)
_LISTS = (
    ("licenses", "licenses", "licenses"),
    ("sales/transactions", "transactions", "transactions"),
    ("feedback/details", "feedback", "feedback"),
    *((f"sales/metrics/{m}/details", "events", f"events:{m}") for m in METRIC_NAMES),
)


def make_list_handler(
    suffix: str, entity: str, kind: str
) -> Callable[[Request], Awaitable[Response]]:
    """One paging routine for every list endpoint."""

    async def handler(request: Request) -> Response:
        api = _api(request)
        state = _state(request)
        params = multi_params(request.query_params.multi_items())
        offset, limit = paging(params)
        record_filter = _filter(request, api, entity, params)
        insights = _insights(params, entity)
        key = (api.generation, *sorted(_without_paging(request)))
        page, total = await run_in_threadpool(
            state.page, kind, record_filter, key, insights, offset, limit
        )
        path = f"{api.link_base}/{suffix}"
        kept = _without_paging(request)
        links: dict[str, Any] = {
            "self": {"href": _href(path, request.query_params.multi_items())},
            "query": _link_template(path + _QUERY_TEMPLATES[entity]),
            "export": [{"href": _href(f"{path}/export", kept)}],
        }
        if offset + limit < total:
            links["next"] = {
                "href": _href(path, [*kept, ("offset", str(offset + limit)), ("limit", str(limit))])
            }
        if offset > 0:
            previous = max(0, offset - limit)
            links["prev"] = {
                "href": _href(path, [*kept, ("offset", str(previous)), ("limit", str(limit))])
            }
        decorate = _decorate(api, state)
        body: dict[str, Any] = {
            "_links": links,
            ENTITIES[entity].items_key: [decorate(r) for r in page],
        }
        if api.generation == 3:
            body["totalCount"] = total
        return json_response(body)

    return handler


def make_export_handler(entity: str, kind: str) -> Callable[[Request], Awaitable[Response]]:
    """Sync export: every filtered record as one streamed top-level array; paging is ignored."""

    async def handler(request: Request) -> Response:
        api = _api(request)
        state = _state(request)
        params = multi_params(request.query_params.multi_items())
        parse_accept(params)
        record_filter = _filter(request, api, entity, params)
        records = state.records(kind, with_data_insights=_insights(params, entity))
        return stream_array(map(_decorate(api, state), record_filter.apply(records)))

    return handler


# ---------------------------------------------------------------- async exports

# kind -> (initiate path, status/download path prefix)
_ASYNC: dict[ExportKind, tuple[str, str]] = {
    "licenses": ("licenses/async/export", "licenses/async/export"),
    "transactions": ("sales/transactions/async/export", "sales/transactions/async/export"),
    # Marketing attribution is polled and downloaded through the generic async/export path.
    "marketing_attribution": ("marketing-attribution/async/export", "async/export"),
}


def _export_links(
    api: Api, job: ExportJob, initiate_query: list[tuple[str, str]]
) -> dict[str, Any]:
    initiate, prefix = _ASYNC[job.kind]
    base = f"{api.link_base}/{prefix}/{job.id}"
    return {
        "self": {"href": f"{base}/status"},
        "query": {"href": _href(f"{api.link_base}/{initiate}", initiate_query)},
        "status": {"href": f"{base}/status"},
        "download": {"href": base},
    }


def make_initiate_handler(kind: ExportKind) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        api = _api(request)
        state = _state(request)
        params = multi_params(request.query_params.multi_items())
        parse_accept(params)
        _filter(request, api, kind, params)
        _insights(params, kind)
        job = state.exports.initiate(kind, api.generation, params, state.vendor.today)
        links = _export_links(api, job, request.query_params.multi_items())
        links["self"] = {"href": links["query"]["href"]}
        return json_response({"_links": links, "export": {"id": job.id}})

    return handler


def _job(request: Request, kind: ExportKind) -> ExportJob:
    job = _state(request).exports.get(kind, request.path_params["export_id"])
    if job is None:
        raise ApiError(404, f"Export {request.path_params['export_id']} was not found.")
    return job


def make_status_handler(kind: ExportKind) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        api = _api(request)
        job = _job(request, kind)
        status = job.poll()
        links = _export_links(api, job, [(k, v) for k, vs in job.params.items() for v in vs])
        del links["status"]
        return json_response({"_links": links, "export": {"id": job.id, "status": status}})

    return handler


def make_download_handler(kind: ExportKind) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        api = _api(request)
        state = _state(request)
        job = _job(request, kind)
        if job.status == "FAILED":
            raise ApiError(404, "Export failed; initiate the export again.")
        if job.status != "COMPLETED":
            raise ApiError(404, "Export is being processed")
        record_filter = _filter(request, api, kind, job.params)
        records = state.records(kind, job.as_of, _insights(job.params, kind))
        return stream_array(map(_decorate(api, state), record_filter.apply(records)))

    return handler


# ---------------------------------------------------------------- metrics


def make_metric_handler(metric: str) -> Callable[[Request], Awaitable[Response]]:
    """Aggregates take aggregation, startDate, endDate (and groupBy); the rest is ignored live."""

    async def handler(request: Request) -> Response:
        from pipelines.simulator import metrics

        api = _api(request)
        state = _state(request)
        params = multi_params(request.query_params.multi_items())
        aggregation = parse_choice(params, "aggregation", ("week", "month"), "week")
        start, end = parse_date(params, "startDate"), parse_date(params, "endDate")
        group_by = None
        if metric == "conversion":
            group_by = parse_choice(params, "groupBy", ("conversionType",), None)
        body = metrics.aggregate_payload(
            await run_in_threadpool(state.expected),
            metric,
            aggregation=aggregation or "week",
            start=date.fromisoformat(start) if start else None,
            end=date.fromisoformat(end) if end else None,
            group_by=group_by,
            addon_names=state.addon_names,
        )
        path = f"{api.link_base}/sales/metrics/{metric}"
        return json_response(
            {"_links": {"self": {"href": _href(path, request.query_params.multi_items())}}, **body}
        )

    return handler


# ---------------------------------------------------------------- index and lookup


async def links_index(request: Request) -> Response:
    api = _api(request)
    base = api.link_base
    tpl = _QUERY_TEMPLATES
    links = {
        "self": {"href": base if api.generation == 2 else f"{base}/"},
        "licenses": _link_template(f"{base}/licenses{tpl['licenses']}"),
        "licensesExport": [_link_template(f"{base}/licenses/export{tpl['licenses']}")],
        "transactions": _link_template(f"{base}/sales/transactions{tpl['transactions']}"),
        "transactionsExport": [
            _link_template(f"{base}/sales/transactions/export{tpl['transactions']}")
        ],
        "feedbackLinks": [_link_template(f"{base}/feedback/details{tpl['feedback']}")],
        "cloudChurn": [
            _link_template(f"{base}/sales/metrics/churn{{?aggregation,startDate,endDate}}")
        ],
        "cloudRenewals": [
            _link_template(f"{base}/sales/metrics/renewal{{?aggregation,startDate,endDate}}")
        ],
        "cloudConversions": [
            _link_template(
                f"{base}/sales/metrics/conversion{{?aggregation,startDate,endDate,groupBy}}"
            )
        ],
    }
    return json_response({"_links": links})


async def developer_lookup(request: Request) -> Response:
    vendor = _state(request).vendor
    if request.path_params["vendor_id"] != str(vendor.vendor_id):
        raise ApiError(404, f"Vendor {request.path_params['vendor_id']} was not found.")
    return json_response({"developerId": vendor.developer_id})


async def not_found(request: Request) -> Response:
    return error_response(404, "Not found.")


# ---------------------------------------------------------------- admin (no auth, local only)


def _local_only(request: Request) -> None:
    host = request.client.host if request.client else ""
    if host not in ("127.0.0.1", "::1", "localhost", "testclient"):
        raise ApiError(403, "The admin endpoints answer 127.0.0.1 only.")


async def admin_advance(request: Request) -> Response:
    _local_only(request)
    days = parse_int(multi_params(request.query_params.multi_items()), "days", 1, 0)
    today = _state(request).advance(days)
    return json_response({"today": today.isoformat()})


async def admin_state(request: Request) -> Response:
    _local_only(request)
    return json_response(state_summary(_state(request)))


def state_summary(state: SimulatorState) -> dict[str, Any]:
    vendor = state.vendor
    counts = vendor.counts() if hasattr(vendor, "counts") else {}
    return {
        "today": vendor.today.isoformat(),
        "vendor_id": str(vendor.vendor_id),
        "developer_id": str(vendor.developer_id),
        "seed": state.seed,
        "size": state.size,
        "counts": counts,
        "requests": dict(state.faults.counters),
        "faults": dataclasses.asdict(state.faults.config),
        "exports": {job.id: job.status for job in state.exports.jobs.values()},
    }


async def admin_faults(request: Request) -> Response:
    _local_only(request)
    try:
        config = parse_faults((await request.body()).decode() or None)
    except UserError as error:
        raise ApiError(400, str(error)) from None
    _state(request).faults.reconfigure(config)
    return json_response(dataclasses.asdict(config))


async def admin_ground_truth(request: Request) -> Response:
    _local_only(request)
    kind = request.path_params["kind"]
    if kind not in ("licenses", "transactions", "feedback", "marketing_attribution"):
        raise ApiError(404, f"No ground truth named {kind}.")
    state = _state(request)
    return stream_array(state.records(kind, with_data_insights=True))


async def admin_expected(request: Request) -> Response:
    _local_only(request)
    table = request.path_params["table"]
    if table not in EXPECTED_TABLES:
        raise ApiError(404, f"No expected table named {table}.")
    tables = await run_in_threadpool(_state(request).expected)
    return stream_array(getattr(tables, table))


# ---------------------------------------------------------------- app


def _routes() -> list[Route]:
    routes: list[Route] = [
        Route("/admin/advance", admin_advance, methods=["POST"]),
        Route("/admin/state", admin_state),
        Route("/admin/faults", admin_faults, methods=["PUT"]),
        Route("/admin/ground-truth/{kind}", admin_ground_truth),
        Route("/admin/expected/{table}", admin_expected),
        Route("/rest/3/developer-space/vendor/{vendor_id}", developer_lookup),
    ]
    for base in (
        "/rest/2/vendors/{vendor_id}/reporting",
        "/rest/3/reporting/developer-space/{developer_id}",
    ):
        routes += [Route(base, links_index), Route(f"{base}/", links_index)]
        for suffix, entity, kind in _LISTS:
            routes.append(Route(f"{base}/{suffix}", make_list_handler(suffix, entity, kind)))
            routes.append(Route(f"{base}/{suffix}/export", make_export_handler(entity, kind)))
        for kind, (initiate, prefix) in _ASYNC.items():
            routes += [
                Route(f"{base}/{initiate}", make_initiate_handler(kind), methods=["POST"]),
                Route(f"{base}/{prefix}/{{export_id}}/status", make_status_handler(kind)),
                Route(f"{base}/{prefix}/{{export_id}}", make_download_handler(kind)),
            ]
        for metric in METRIC_NAMES:
            routes.append(Route(f"{base}/sales/metrics/{metric}", make_metric_handler(metric)))
    routes.append(Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "DELETE"]))
    return routes


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return json_response(exc.body(), exc.status)


def create_app(state: SimulatorState) -> ASGIApp:
    """The ASGI app: routes, JsonErrorsDoc errors, and the auth + fault layer on /rest paths."""
    app = Starlette(routes=_routes(), exception_handlers={ApiError: _api_error})
    app.state.sim = state
    return RestGate(app, state)


class _Truncated(Exception):
    """Raised through the app to stop rendering a body that a fault cut short."""


class RestGate:
    """Faults and HTTP Basic auth for /rest paths; /admin is never faulted nor authenticated."""

    def __init__(self, app: ASGIApp, state: SimulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/rest/"):
            await self.app(scope, receive, send)
            return
        faults = self.state.faults
        kind = faults.draw()
        faults.count("requests")
        if faults.config.latency_ms:
            await asyncio.sleep(faults.config.latency_ms / 1000)
        counted = self._counting(send)
        if kind == "429":
            retry = str(faults.config.retry_after_seconds)
            response = error_response(429, "Rate limit exceeded; retry later.")
            response.headers["Retry-After"] = retry
            await response(scope, receive, counted)
            return
        if kind == "5xx":
            status = faults.server_error_status()
            message = "The server is temporarily unable to service your request."
            await error_response(status, message)(scope, receive, counted)
            return
        if kind == "drop":
            await _close_connection(receive)
            return
        if not self._authorized(scope):
            response = error_response(401, "Client must be authenticated to access this resource.")
            response.headers["WWW-Authenticate"] = 'Basic realm="Marketplace"'
            await response(scope, receive, counted)
            return
        if kind == "truncate":
            counted = _truncating(counted, receive, faults.truncate_at_chunk())
        try:
            await self.app(scope, receive, counted)
        except BaseException as error:
            if not _is_truncation(error):
                raise

    def _counting(self, send: Send) -> Send:
        faults = self.state.faults

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                faults.count(f"status_{message['status']}")
            await send(message)

        return counted

    def _authorized(self, scope: Scope) -> bool:
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            email, _, token = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        # Constant-time comparisons: the simulator is a model of a real auth check.
        return hmac.compare_digest(email, self.state.email) & hmac.compare_digest(
            token, self.state.api_token
        )


def _is_truncation(error: BaseException) -> bool:
    if isinstance(error, _Truncated):
        return True
    if isinstance(error, BaseExceptionGroup):
        return all(_is_truncation(e) for e in error.exceptions)
    return False


async def _close_connection(receive: Receive) -> None:
    """Close the socket with no (more) response, as a proxy dropping the connection would.

    ASGI has no "close" message, so we reach the server's transport through uvicorn's receive
    callable, then wait until uvicorn has noticed, so it does not log a half-sent response.
    """
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise _Truncated("no transport to close")
    transport.close()
    for _ in range(200):
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0.005)


def _truncating(send: Send, receive: Receive, whole_chunks: int) -> Send:
    """Send `whole_chunks` body chunks, then half of the next one, then close the connection.

    One chunk is held back so the cut always lands inside the body, never after its end.
    """
    held: bytes | None = None
    sent = 0
    passthrough = False

    async def cut(body: bytes) -> None:
        if len(body) > 1:
            half = body[: len(body) // 2]
            await send({"type": "http.response.body", "body": half, "more_body": True})
        await _close_connection(receive)
        raise _Truncated

    async def truncated(message: Message) -> None:
        nonlocal held, sent, passthrough
        if message["type"] == "http.response.start":
            # Only successful bodies are cut; an error answer arrives whole.
            passthrough = message["status"] != 200
            await send(message)
            return
        if passthrough or message["type"] != "http.response.body":
            await send(message)
            return
        body = message.get("body", b"")
        if body:
            if held is not None:
                if sent >= whole_chunks:
                    await cut(held)
                await send({"type": "http.response.body", "body": held, "more_body": True})
                sent += 1
            held = body
        if not message.get("more_body", False):
            await cut(held or b"")

    return truncated


# ---------------------------------------------------------------- mpac simulate


def build_state(
    seed: int = 42,
    size: str | int = "small",
    faults: FaultConfig | str | dict[str, Any] | None = None,
    email: str = DEFAULT_EMAIL,
    api_token: str = DEFAULT_API_TOKEN,
    today: date | None = None,
) -> SimulatorState:
    """Build the vendor and the state a server runs on; bad arguments raise UserError."""
    from pipelines.simulator.vendor import SyntheticVendor

    size = parse_size(size)
    config = parse_faults(faults)
    vendor = SyntheticVendor(seed=seed, size=size, today=today)
    return SimulatorState(vendor, FaultInjector(config), email, api_token, seed=seed, size=size)


def parse_size(size: str | int) -> str | int:
    """tiny, small, large, or a number of licenses."""
    if isinstance(size, int) or size in SIZES:
        return size
    if not size.isdigit():
        raise UserError(f"Unknown vendor size {size!r}: use tiny, small, large or a number.")
    return int(size)


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise UserError(f"Port {port} on {host} is in use: pick another with --port.") from None


def serve(
    port: int = 8787,
    seed: int = 42,
    size: str = "small",
    faults: str = "none",
    email: str = DEFAULT_EMAIL,
    api_token: str = DEFAULT_API_TOKEN,
) -> None:
    """Run the simulator in the foreground until interrupted (`mpac simulate`)."""
    import uvicorn
    from rich.console import Console

    # soft_wrap: URLs are for copying, so they must never be broken across lines.
    console = Console(soft_wrap=True)
    host = "127.0.0.1"
    if not 0 < port < 65536:
        raise UserError(f"Port {port} is not a TCP port (1-65535).")
    parse_size(size)
    parse_faults(faults)
    _check_port_free(host, port)
    started = time.perf_counter()
    with console.status(f"Building the {size} synthetic vendor (seed {seed})..."):
        state = build_state(seed, size, faults, email, api_token)
    console.print(f"Vendor built in {time.perf_counter() - started:.1f} s: {state.vendor.counts()}")
    vendor = state.vendor
    root = f"http://{host}:{port}"
    console.print(f"v2 base:  {root}/rest/2/vendors/{vendor.vendor_id}/reporting")
    console.print(f"v3 base:  {root}/rest/3/reporting/developer-space/{vendor.developer_id}")
    console.print(f"auth:     HTTP Basic, user {email}, API token {api_token}")
    console.print(f"admin:    {root}/admin/state  (today {vendor.today}, faults: {faults})")
    config = uvicorn.Config(create_app(state), host=host, port=port, log_level="info")
    uvicorn.Server(config).run()

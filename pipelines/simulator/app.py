"""The simulated Marketplace reporting API (v2 and v3): its Starlette routes and handlers."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from pipelines.errors import UserError
from pipelines.simulator.exports import ExportJob, ExportKind
from pipelines.simulator.faults import parse_faults
from pipelines.simulator.gate import ACCOUNT_SCOPE_KEY, RestGate
from pipelines.simulator.ground_truth.tables import METRICS
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
from pipelines.simulator.responses import (
    array_chunks,
    error_response,
    json_response,
    stream_array,
    stream_chunks,
)
from pipelines.simulator.state import SimulatorState, state_summary, sticky_ids

EXPECTED_TABLES = (
    "churn",
    "renewal",
    "conversion",
    "mrr",
    "mrr_movements",
    "evaluations",
    "renewal_opportunities",
    # contract v2, named after the marts
    "customers",
    "customer_mrr",
    "customer_kpis",
    "retention_cohorts",
    "retention_cohorts_by_hosting",
    "churn_events",
    "renewal_book",
)

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


def _decorate(api: Api, state: SimulatorState) -> Callable[[Mapping[str, Any]], Mapping[str, Any]]:
    if api.generation == 2:
        return lambda record: record
    # A record without an addonKey gets productId null.
    return lambda record: {**record, "productId": state.product_of.get(record.get("addonKey", ""))}


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
    vendor = _state(request).vendor
    if "vendor_id" in request.path_params:
        return Api(2, f"/rest/2/vendors/{vendor.vendor_id}/reporting", "addon")
    return Api(3, f"/reporting/developer-space/{vendor.developer_id}", "productId")


def _state(request: Request) -> SimulatorState:
    """The vendor a request is about: by the vendor id or developer space in its path (404 for
    one unknown, or not owned by the account calling, as the live API answers); the admin
    endpoints take `?vendor=<vendor id>`, default the first vendor served."""
    states: list[SimulatorState] = request.app.state.sims
    params = request.path_params
    if "vendor_id" in params:
        wanted, field, what = params["vendor_id"], "vendor_id", "Vendor"
    elif "developer_id" in params:
        wanted, field, what = params["developer_id"], "developer_id", "Developer space"
    elif "vendor" in request.query_params:
        wanted, field, what = request.query_params["vendor"], "vendor_id", "Vendor"
    else:
        return states[0]
    account = request.scope.get(ACCOUNT_SCOPE_KEY)
    for state in states:
        if str(getattr(state.vendor, field)) != wanted:
            continue
        if account is None or account == (state.email, state.api_token):
            return state
    raise ApiError(404, f"{what} {wanted} was not found.")


def _filter(
    request: Request, api: Api, entity: str, params: Mapping[str, list[str]]
) -> RecordFilter:
    state = _state(request)
    sticky = sticky_ids(state.vendor) if entity == "licenses" else frozenset()
    return RecordFilter.parse(entity, params, api.product_filter, state.addon_of, sticky)


def _insights(params: Mapping[str, list[str]], entity: str) -> bool:
    return entity == "licenses" and parse_bool(params, "withDataInsights", False)


# ---------------------------------------------------------------- list and export handlers

# (path under the base, entity of the filter table, kind of records)
_LISTS = (
    ("licenses", "licenses", "licenses"),
    ("sales/transactions", "transactions", "transactions"),
    ("feedback/details", "feedback", "feedback"),
    *((f"sales/metrics/{m}/details", "events", f"events:{m}") for m in METRICS),
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
        insights = _insights(params, entity)
        today = state.vendor.today
        # The same query on the same simulated day is the same body: rendered once.
        key = ("export", kind, api.generation, today, *sorted(request.query_params.multi_items()))
        decorate = _decorate(api, state)
        return stream_chunks(
            state.bodies.serve(
                key,
                lambda: array_chunks(
                    map(decorate, state.records(kind, today, insights, record_filter))
                ),
            )
        )

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
        insights = _insights(job.params, kind)
        decorate = _decorate(api, state)
        # A job's content is fixed at initiation (as_of, params, generation): rendered once.
        return stream_chunks(
            state.bodies.serve(
                ("job", job.id),
                lambda: array_chunks(
                    map(decorate, state.records(kind, job.as_of, insights, record_filter))
                ),
            )
        )

    return handler


# ---------------------------------------------------------------- metrics


def make_metric_handler(metric: str) -> Callable[[Request], Awaitable[Response]]:
    """Aggregates take aggregation, startDate, endDate (and groupBy); the rest is ignored live."""

    async def handler(request: Request) -> Response:
        api = _api(request)
        state = _state(request)
        params = multi_params(request.query_params.multi_items())
        aggregation = parse_choice(params, "aggregation", ("week", "month"), "week")
        start, end = parse_date(params, "startDate"), parse_date(params, "endDate")
        group_by = None
        if metric == "conversion":
            group_by = parse_choice(params, "groupBy", ("conversionType",), None)
        # Computed once per simulated day and query (SimulatorState.aggregate).
        body = await run_in_threadpool(
            state.aggregate,
            metric,
            aggregation or "week",
            date.fromisoformat(start) if start else None,
            date.fromisoformat(end) if end else None,
            group_by,
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
    return json_response({"developerId": _state(request).vendor.developer_id})


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
    # One host, one clock: every vendor served moves on together.
    first, *others = request.app.state.sims
    for other in others:
        other.advance(days)
    today = first.advance(days)
    return json_response({"today": today.isoformat()})


async def admin_state(request: Request) -> Response:
    _local_only(request)
    summary = state_summary(_state(request))
    summary["vendors"] = [str(state.vendor.vendor_id) for state in request.app.state.sims]
    return json_response(summary)


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
        for metric in METRICS:
            routes.append(Route(f"{base}/sales/metrics/{metric}", make_metric_handler(metric)))
    routes.append(Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "DELETE"]))
    return routes


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return json_response(exc.body(), exc.status)


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    # uvicorn re-raises SIGTERM once it has shut down, so exit handlers never run: the bodies'
    # scratch folders go here.
    for state in app.state.sims:
        state.bodies.close()


def create_app(state: SimulatorState, *more: SimulatorState) -> ASGIApp:
    """The ASGI app: routes, JsonErrorsDoc errors, and the auth + fault layer on /rest paths.

    `more` are further vendors served by the same host (an agency's accounts, say): each has
    its own vendor id, developer space, data and credentials; they share the clock and faults.
    Each renders and caches its own export bodies (SimulatorState.bodies).
    """
    states = [state, *more]
    for field in ("vendor_id", "developer_id"):
        ids = [str(getattr(one.vendor, field)) for one in states]
        if len(set(ids)) < len(ids):
            raise UserError(f"Two simulated vendors have the same {field}: use other seeds.")
    app = Starlette(routes=_routes(), exception_handlers={ApiError: _api_error}, lifespan=_lifespan)
    app.state.sim = state
    app.state.sims = states
    return RestGate(app, state, *more)

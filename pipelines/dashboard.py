"""`mpac dashboard`: the marts as one self-contained, offline HTML file of plotly charts."""

from __future__ import annotations

import html
import json
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from pipelines.completeness import as_of_date, complete_expression, incomplete_months, relations
from pipelines.errors import UserError
from pipelines.warehouse import open_marts

if TYPE_CHECKING:
    from pipelines.destinations import Destination

Row = dict[str, Any]
Figure = dict[str, Any]
ALL_APPS = "__all__"
# Months shown before the as_of month when a chart opens (zoom out to see the whole history).
DEFAULT_WINDOW_MONTHS = 24
MOVEMENTS = (
    ("new_mrr", "New", "#2ca02c"),
    ("expansion_mrr", "Expansion", "#98df8a"),
    ("reactivation_mrr", "Reactivation", "#17becf"),
    ("contraction_mrr", "Contraction", "#ff9896"),
    ("churned_mrr", "Churn", "#d62728"),
)


@dataclass(frozen=True)
class Chart:
    """One chart, declared once: where its data comes from and how it is drawn.

    Attributes:
        key: Stable id, used in the page (`data-chart`) and the tests.
        title: Shown above the chart.
        sources: Candidate relations (`schema.table`), the first that exists is used; a mart
            that is renamed keeps working, and a mart that does not exist yet skips the chart.
        columns: Columns the query needs from that relation (a missing one skips the chart too).
        query: SQL over `{source}`. Per-app charts return an `app` column: the app key, or null
            on the rows pooled over all apps (grouping sets). `{complete}` becomes
            `bool_and(is_complete)` when the relation has `is_complete`, else null.
        draw: Builds the plotly figure from the rows of one app (or of all apps).
        per_app: Whether the app filter applies.
        monthly: Whether x is a month axis on which incomplete months are shaded.
    """

    key: str
    title: str
    sources: tuple[str, ...]
    columns: tuple[str, ...]
    query: str
    draw: Callable[[list[Row]], Figure]
    per_app: bool = True
    monthly: bool = True


# ---- figures ---------------------------------------------------------------------------------


def _months(rows: Iterable[Row]) -> list[str]:
    return sorted({str(row["month"]) for row in rows})


def _series(rows: list[Row], x: str, y: str, **where: Any) -> tuple[list[Any], list[Any]]:
    chosen = [r for r in rows if all(r.get(k) == v for k, v in where.items())]
    chosen.sort(key=lambda r: str(r[x]))
    return [str(r[x]) for r in chosen], [r[y] for r in chosen]


def _draw_mrr(rows: list[Row]) -> Figure:
    months, mrr = _series(rows, "month", "mrr")
    _, arr = _series(rows, "month", "arr")
    return {
        "data": [
            {"type": "scatter", "mode": "lines", "name": "MRR", "x": months, "y": mrr},
            {
                "type": "scatter",
                "mode": "lines",
                "name": "ARR",
                "x": months,
                "y": arr,
                "yaxis": "y2",
                "line": {"dash": "dot"},
            },
        ],
        "layout": {
            "yaxis": {"title": {"text": "MRR (USD)"}, "rangemode": "tozero"},
            # ARR is MRR x 12: matching ranges keep the two lines on top of each other.
            "yaxis2": {
                "title": {"text": "ARR (USD)"},
                "overlaying": "y",
                "side": "right",
                "rangemode": "tozero",
                "showgrid": False,
            },
        },
    }


def _draw_movements(rows: list[Row]) -> Figure:
    data: list[dict[str, Any]] = []
    for column, label, colour in MOVEMENTS:
        months, values = _series(rows, "month", column)
        data.append(
            {"type": "bar", "name": label, "x": months, "y": values, "marker": {"color": colour}}
        )
    months, net = _series(rows, "month", "net_new_mrr")
    data.append(
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": "Net new MRR",
            "x": months,
            "y": net,
            "line": {"color": "#333"},
        }
    )
    return {"data": data, "layout": {"barmode": "relative", "yaxis": {"title": {"text": "USD"}}}}


def _draw_rates_by(segment: str, rate: str, label: str) -> Callable[[list[Row]], Figure]:
    def draw(rows: list[Row]) -> Figure:
        data = []
        for value in sorted({str(row[segment]) for row in rows}):
            months, rates = _series(rows, "month", rate, **{segment: value})
            data.append(
                {"type": "scatter", "mode": "lines+markers", "name": value, "x": months, "y": rates}
            )
        return {
            "data": data,
            "layout": {"yaxis": {"title": {"text": label}, "tickformat": ".0%"}},
        }

    return draw


def _draw_quick_ratio(rows: list[Row]) -> Figure:
    months, ratio = _series(rows, "month", "quick_ratio")
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "Quick ratio",
                "x": months,
                "y": ratio,
            }
        ],
        "layout": {
            # Log scale: a month whose only loss is a cent of price drift has a ratio in the
            # millions, which on a linear axis flattens every other month to zero.
            "yaxis": {"title": {"text": "(new + expansion + reactivation) / lost"}, "type": "log"},
            "shapes": [
                {
                    "type": "line",
                    "xref": "paper",
                    "x0": 0,
                    "x1": 1,
                    "y0": 1,
                    "y1": 1,
                    "line": {"dash": "dash", "color": "#999"},
                }
            ],
        },
    }


def _draw_cohorts(measure: str) -> Callable[[list[Row]], Figure]:
    def draw(rows: list[Row]) -> Figure:
        cohorts = sorted({str(row["cohort_month"]) for row in rows})
        since = sorted({int(row["months_since"]) for row in rows})
        cells = {(str(r["cohort_month"]), int(r["months_since"])): r[measure] for r in rows}
        z = [[cells.get((cohort, k)) for k in since] for cohort in cohorts]
        return {
            "data": [
                {
                    "type": "heatmap",
                    "x": since,
                    "y": cohorts,
                    "z": z,
                    # Red (lost) through yellow to green (kept or grown).
                    "colorscale": [[0, "#d73027"], [0.5, "#fee08b"], [1, "#1a9850"]],
                    "zmin": 0,
                    "zmax": 1.5 if measure == "nrr" else 1,
                    "hovertemplate": "cohort %{y}<br>month %{x}<br>%{z:.0%}<extra></extra>",
                    "colorbar": {"tickformat": ".0%"},
                }
            ],
            "layout": {
                "xaxis": {"title": {"text": "months since the cohort's first MRR"}},
                "yaxis": {"type": "category", "autorange": "reversed"},
            },
        }

    return draw


def _draw_renewals_due(rows: list[Row]) -> Figure:
    data = []
    for status in ("pending", "due"):
        weeks, arr = _series(rows, "week", "arr_at_stake", status=status)
        data.append({"type": "bar", "name": status, "x": weeks, "y": arr})
    return {
        "data": data,
        "layout": {
            "barmode": "stack",
            "yaxis": {"title": {"text": "ARR at stake (USD)"}},
        },
    }


def _draw_reconciliation(rows: list[Row]) -> Figure:
    rows = sorted(rows, key=lambda r: str(r["metric"]))
    compared = sum(int(r["compared"]) for r in rows)
    differing = sum(int(r["differing"]) for r in rows)
    status = (
        f"all {compared:,} figures match Atlassian's"
        if differing == 0
        else f"{differing:,} of {compared:,} figures differ from Atlassian's"
    )
    return {
        "data": [
            {
                "type": "table",
                "header": {
                    "values": [
                        "metric",
                        "figures compared",
                        "matched",
                        "differing",
                        "largest difference",
                        "last differing month",
                    ],
                    "fill": {"color": "#eee"},
                },
                "cells": {
                    "values": [
                        [r["metric"] for r in rows],
                        [f"{int(r['compared']):,}" for r in rows],
                        [f"{int(r['compared']) - int(r['differing']):,}" for r in rows],
                        [f"{int(r['differing']):,}" for r in rows],
                        [f"{r['largest_difference'] or 0:,}" for r in rows],
                        [str(r["last_differing_month"] or "-") for r in rows],
                    ],
                    "fill": {
                        "color": [["#e8f5e9" if not r["differing"] else "#fff3e0" for r in rows]]
                    },
                },
            }
        ],
        "layout": {"height": 260, "title": {"text": f"Reconciliation: {status}"}},
        "status": "ok" if differing == 0 else "differs",
    }


# ---- the declarations ------------------------------------------------------------------------

_POOLED = "grouping sets ((month, addon_key{by}), (month{by}))"

CHARTS: tuple[Chart, ...] = (
    Chart(
        key="mrr",
        title="MRR and ARR (USD, all hostings)",
        sources=("marts.fct_mrr",),
        columns=("month", "addon_key", "mrr", "arr"),
        query=(
            "select month, addon_key as app, sum(mrr) as mrr, sum(arr) as arr,"
            " {complete} as is_complete from {source} group by " + _POOLED.format(by="")
        ),
        draw=_draw_mrr,
    ),
    Chart(
        key="mrr_movements",
        title="MRR movements (USD)",
        sources=("marts.fct_mrr",),
        columns=("month", "addon_key", "net_new_mrr", *(m[0] for m in MOVEMENTS)),
        query=(
            "select month, addon_key as app, "
            + ", ".join(f"sum({m[0]}) as {m[0]}" for m in MOVEMENTS)
            + ", sum(net_new_mrr) as net_new_mrr, {complete} as is_complete from {source}"
            " group by " + _POOLED.format(by="")
        ),
        draw=_draw_movements,
    ),
    Chart(
        key="churn",
        title="Churn rate by billing period (Cloud)",
        sources=("marts.fct_churn",),
        columns=(
            "month",
            "addon_key",
            "billing_period",
            "cancellations",
            "opportunities",
            "churn_rate",
        ),
        # One app: the mart's own rate; all apps: pooled over the apps' opportunities.
        query=(
            "select month, addon_key as app, billing_period, case when grouping(addon_key) = 0"
            " then any_value(churn_rate) else sum(cancellations) / nullif(sum(opportunities), 0)"
            " end as churn_rate, {complete} as is_complete from {source} group by "
            + _POOLED.format(by=", billing_period")
        ),
        draw=_draw_rates_by("billing_period", "churn_rate", "churn rate"),
    ),
    Chart(
        key="renewal",
        title="Renewal rate by billing period (Cloud)",
        sources=("marts.fct_renewal",),
        columns=(
            "month",
            "addon_key",
            "billing_period",
            "renewals",
            "opportunities",
            "renewal_rate",
        ),
        query=(
            "select month, addon_key as app, billing_period, case when grouping(addon_key) = 0"
            " then any_value(renewal_rate) else sum(renewals) / nullif(sum(opportunities), 0)"
            " end as renewal_rate, {complete} as is_complete from {source} group by "
            + _POOLED.format(by=", billing_period")
        ),
        draw=_draw_rates_by("billing_period", "renewal_rate", "renewal rate"),
    ),
    Chart(
        key="conversion",
        title="Conversion by evaluation cohort: Net New vs Upgrade (Cloud)",
        sources=("marts.fct_conversion",),
        columns=(
            "month",
            "addon_key",
            "conversion_type",
            "conversions",
            "evaluations",
            "conversion_rate",
        ),
        query=(
            "select month, addon_key as app, conversion_type, case when grouping(addon_key) = 0"
            " then any_value(conversion_rate) else sum(conversions) / nullif(sum(evaluations), 0)"
            " end as conversion_rate, {complete} as is_complete from {source} group by "
            + _POOLED.format(by=", conversion_type")
        ),
        draw=_draw_rates_by("conversion_type", "conversion_rate", "conversion rate"),
    ),
    Chart(
        key="quick_ratio",
        title="Quick ratio (metrics v2)",
        sources=("marts.fct_mrr",),
        columns=("month", "addon_key", "quick_ratio", *(m[0] for m in MOVEMENTS)),
        query=(
            "select month, addon_key as app, case when grouping(addon_key) = 0"
            " then any_value(quick_ratio) else"
            " sum(new_mrr + expansion_mrr + reactivation_mrr)"
            " / nullif(-sum(churned_mrr + contraction_mrr), 0) end as quick_ratio,"
            " {complete} as is_complete from {source} group by " + _POOLED.format(by="")
        ),
        draw=_draw_quick_ratio,
    ),
    Chart(
        key="nrr_cohorts",
        title="Net revenue retention by cohort (NRR, all apps, metrics v2)",
        sources=("marts.fct_retention_cohorts",),
        columns=("cohort_month", "months_since", "nrr"),
        query=(
            "select cohort_month, months_since, nrr from {source}"
            " where cohort_month >= (select max(cohort_month) from {source}) - interval 23 month"
            " and months_since <= 24"
        ),
        draw=_draw_cohorts("nrr"),
        per_app=False,
        monthly=False,
    ),
    Chart(
        key="grr_cohorts",
        title="Gross revenue retention by cohort (GRR, all apps, metrics v2)",
        sources=("marts.fct_retention_cohorts",),
        columns=("cohort_month", "months_since", "grr"),
        query=(
            "select cohort_month, months_since, grr from {source}"
            " where cohort_month >= (select max(cohort_month) from {source}) - interval 23 month"
            " and months_since <= 24"
        ),
        draw=_draw_cohorts("grr"),
        per_app=False,
        monthly=False,
    ),
    Chart(
        key="renewals_due",
        title="Renewals due in the next 90 days by week, ARR at stake (pending: grace not over)",
        sources=("marts.fct_renewal_book",),
        columns=("addon_key", "due_date", "arr_at_stake", "status"),
        query=(
            "select cast(date_trunc('week', due_date) as date) as week, addon_key as app,"
            " status, sum(arr_at_stake) as arr_at_stake from {source}"
            " group by grouping sets ((week, addon_key, status), (week, status))"
        ),
        draw=_draw_renewals_due,
        monthly=False,
    ),
    Chart(
        key="reconciliation",
        title="Reconciliation with Atlassian's own churn, renewal and conversion figures",
        sources=("marts.rpt_metric_reconciliation",),
        columns=(
            "metric",
            "month",
            "addon_key",
            "is_matched",
            "denominator_difference",
            "numerator_difference",
        ),
        query=(
            "select metric, addon_key as app, count(*) as compared,"
            " count(*) filter (not is_matched) as differing,"
            " max(greatest(abs(coalesce(denominator_difference, 0)),"
            " abs(coalesce(numerator_difference, 0)))) as largest_difference,"
            " max(month) filter (not is_matched) as last_differing_month"
            " from {source} group by grouping sets ((metric, addon_key), (metric))"
        ),
        draw=_draw_reconciliation,
        monthly=False,
    ),
)


# ---- reading the warehouse -------------------------------------------------------------------


@dataclass
class Panel:
    """A chart as it goes into the page: its figures per app, or why it is not shown."""

    chart: Chart
    figures: dict[str, Figure]
    skipped: str | None = None


def _plain(value: Any) -> Any:
    """JSON-ready: dates as ISO strings, decimals as floats."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _month_after(month: str) -> str:
    year, number = int(month[:4]), int(month[5:7])
    return f"{year + number // 12}-{number % 12 + 1:02d}-01"


def _mark_incomplete(figure: Figure, months: list[str]) -> None:
    """Shade the incomplete months and say so on the chart."""
    layout = figure.setdefault("layout", {})
    shapes = layout.setdefault("shapes", [])
    for month in months:
        shapes.append(
            {
                "type": "rect",
                "xref": "x",
                "yref": "paper",
                "x0": month,
                "x1": _month_after(month),
                "y0": 0,
                "y1": 1,
                "fillcolor": "#999",
                "opacity": 0.18,
                "line": {"width": 0},
                "layer": "below",
            }
        )
    if months:
        layout.setdefault("annotations", []).append(
            {
                "xref": "x",
                "yref": "paper",
                "x": months[0],
                "y": 1.0,
                "xanchor": "right",
                "yanchor": "top",
                "showarrow": False,
                "text": "incomplete",
                "font": {"color": "#666", "size": 11},
            }
        )


def _window(figure: Figure, months: list[str], as_of: date | None) -> None:
    if not months:
        return
    last = max(months)
    year, number = int(last[:4]), int(last[5:7]) - DEFAULT_WINDOW_MONTHS
    while number < 1:
        year, number = year - 1, number + 12
    first = max(min(months), f"{year}-{number:02d}-01")
    figure["layout"].setdefault("xaxis", {}).update(
        {"range": [first, _month_after(last)], "type": "date"}
    )


def build_panels(connection: duckdb.DuckDBPyConnection) -> tuple[list[Panel], date | None]:
    """Query every declared chart that the warehouse can feed; skip the rest with a reason."""
    known = relations(connection)
    as_of = as_of_date(connection, known)
    panels = []
    for chart in CHARTS:
        source = next((name for name in chart.sources if name in known), None)
        if source is None:
            panels.append(Panel(chart, {}, f"needs {' or '.join(chart.sources)}, not built yet"))
            continue
        missing = [c for c in chart.columns if c not in known[source]]
        if missing:
            panels.append(Panel(chart, {}, f"needs {', '.join(missing)} in {source}"))
            continue
        complete = complete_expression(known[source], aggregate=True)
        relation = connection.execute(chart.query.format(source=source, complete=complete))
        names = [d[0] for d in relation.description]
        rows = [
            {name: _plain(value) for name, value in zip(names, row, strict=True)}
            for row in relation.fetchall()
        ]
        if not rows:
            panels.append(Panel(chart, {}, f"{source} has no rows yet"))
            continue
        groups: dict[str, list[Row]] = {}
        for row in rows:
            app = row.get("app") if chart.per_app else None
            groups.setdefault(ALL_APPS if app is None else str(app), []).append(row)
        figures = {}
        for app, group in groups.items():
            figure = chart.draw(group)
            if chart.monthly:
                months = _months(group)
                _mark_incomplete(figure, incomplete_months(group, as_of))
                _window(figure, months, as_of)
            figures[app] = figure
        panels.append(Panel(chart, figures))
    return panels, as_of


def _apps(connection: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    try:
        return [
            (str(key), str(name or key))
            for key, name in connection.execute(
                "select addon_key, addon_name from marts.dim_apps order by addon_name, addon_key"
            ).fetchall()
        ]
    except duckdb.CatalogException:
        return []


def _script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element."""
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


def _plotly_js() -> str:
    return (resources.files("plotly") / "package_data" / "plotly.min.js").read_text("utf-8")


def render(connection: duckdb.DuckDBPyConnection, title: str) -> tuple[str, list[Panel]]:
    """The page as one string: data, plotly.js and the page's own script all inline."""
    panels, as_of = build_panels(connection)
    shown = [p for p in panels if p.skipped is None]
    skipped = [p for p in panels if p.skipped is not None]
    options = "".join(
        f'<option value="{html.escape(key)}">{html.escape(name)}</option>'
        for key, name in _apps(connection)
    )
    sections = "".join(
        f'<section class="panel"><h2>{html.escape(p.chart.title)}</h2>'
        + ("" if p.chart.per_app else '<p class="hint">all apps: the app filter does not apply</p>')
        + f'<div class="chart" id="chart-{p.chart.key}" data-chart="{p.chart.key}"></div></section>'
        for p in shown
    )
    notes = "".join(
        f'<li data-skipped="{p.chart.key}"><b>{html.escape(p.chart.title)}</b>: '
        f"{html.escape(str(p.skipped))}</li>"
        for p in skipped
    )
    reconciliation = next((p for p in shown if p.chart.key == "reconciliation"), None)
    status = "not available"
    if reconciliation is not None:
        status = str(reconciliation.figures[ALL_APPS]["layout"]["title"]["text"])
    template = string.Template(
        (resources.files("pipelines") / "templates" / "dashboard.html").read_text("utf-8")
    )
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = template.substitute(
        title=html.escape(title),
        as_of=html.escape(as_of.isoformat() if as_of else "unknown"),
        generated=generated,
        app_options=options,
        sections=sections,
        reconciliation_status=html.escape(status),
        skipped_notes=(
            f'<section class="skipped"><h2>Not shown yet</h2><ul>{notes}</ul></section>'
            if notes
            else ""
        ),
        figures=_script_json({p.chart.key: p.figures for p in shown}),
        all_apps=_script_json(ALL_APPS),
        plotly_js=_plotly_js(),
    )
    return page, panels


def default_output(warehouse: Path, vendor: str | None = None) -> Path:
    """The dashboard sits beside its warehouse: data/demo.duckdb -> data/demo.dashboard.html
    (data/demo.<vendor>.dashboard.html for one vendor of several)."""
    scope = f".{vendor}" if vendor else ""
    return warehouse.with_name(f"{warehouse.stem}{scope}.dashboard.html")


def write_dashboard(
    warehouse: Path,
    output: Path | None = None,
    vendor: str | None = None,
    destination: Destination | None = None,
) -> tuple[Path, list[Panel]]:
    """Render the dashboard of `warehouse` (of one vendor: see open_marts) into `output`,
    written whole then renamed."""
    output = (output or default_output(warehouse, vendor)).expanduser().resolve()
    with open_marts(warehouse, vendor, destination, reader="dashboard") as connection:
        if "marts.fct_mrr" not in relations(connection):
            raise UserError("the marts are not built yet: run `mpac transform` (or `mpac run`).")
        page, panels = render(connection, title=f"Marketplace dashboard: {warehouse.name}")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(output)
    return output, panels

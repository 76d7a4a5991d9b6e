"""Progress: bars for dlt's steps and dbt's nodes in a terminal, nothing in a log file."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import dlt
from dlt.common.runtime.collector import NullCollector
from rich.console import Console

from pipelines.progress import RichCollector, dbt_progress, dlt_collector


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=120), out


def test_dlt_steps_draw_bars_in_a_terminal(tmp_path: Path) -> None:
    console, out = terminal()
    collector = dlt_collector(console)
    assert isinstance(collector, RichCollector)
    pipeline = dlt.pipeline(
        pipeline_name="progress_test",
        pipelines_dir=str(tmp_path / "dlt"),
        destination=dlt.destinations.duckdb(str(tmp_path / "p.duckdb")),
        dataset_name="raw",
        progress=collector,
    )
    pipeline.run([{"id": i} for i in range(500)], table_name="things")
    drawn = out.getvalue()
    for step in ("extract", "normalize", "load"):
        assert step in drawn, f"no {step} bar"
    assert "things" in drawn


def test_outside_a_terminal_there_are_no_bars() -> None:
    console = Console(file=io.StringIO(), force_terminal=False)
    assert isinstance(dlt_collector(console), NullCollector)
    with dbt_progress(console) as callbacks:
        assert callbacks == []


def test_dbt_nodes_done_of_total() -> None:
    console, out = terminal()

    def event(name: str, **data: int) -> SimpleNamespace:
        return SimpleNamespace(info=SimpleNamespace(name=name), data=SimpleNamespace(**data))

    with dbt_progress(console) as callbacks:
        (callback,) = callbacks
        callback(event("LogStartLine", total=3))
        for _ in range(2):
            callback(event("NodeFinished"))
        console.file.flush()
    assert "2/3" in out.getvalue()

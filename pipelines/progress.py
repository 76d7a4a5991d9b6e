"""Progress bars on stderr when it is a terminal: dlt's extract/normalize/load and dbt's nodes.

In a log file the start and end lines of each step say enough; bars would be noise there, so
every helper here does nothing unless stderr is a terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from dlt.common.runtime.collector import Collector, NullCollector
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


def interactive(console: Console | None = None) -> bool:
    """Whether progress should be drawn: stderr (or the console given) is a terminal."""
    if console is not None:
        return console.is_terminal
    return sys.stderr.isatty()


def _bars(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


class RichCollector(Collector):
    """dlt's progress counters (rows per resource while extracting, files and items while
    normalizing, jobs while loading) as rich bars, one per counter."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bars: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        self.step = ""

    def update(
        self,
        name: str,
        inc: int = 1,
        total: int | None = None,
        inc_total: int | None = None,
        message: str | None = None,
        label: str | None = None,
    ) -> None:
        if self.bars is None:
            return
        key = f"{name}/{label}" if label else name
        if key not in self.tasks:
            description = f"{self.step.lower()} {name}" + (f" ({label})" if label else "")
            self.tasks[key] = self.bars.add_task(description, total=total)
        task = self.tasks[key]
        if inc_total:
            current = self.bars.tasks[task].total or 0
            self.bars.update(task, total=current + inc_total)
        self.bars.update(task, advance=inc)
        if message:
            self.bars.update(task, description=f"{self.step.lower()} {name}: {message}")

    def _start(self, step: str) -> None:
        self.step = step
        self.tasks = {}
        self.bars = _bars(self.console)
        self.bars.start()

    def _stop(self) -> None:
        if self.bars is not None:
            self.bars.stop()
        self.bars = None


def dlt_collector(console: Console | None = None) -> Collector:
    """A RichCollector in a terminal, else dlt's silent collector."""
    console = console or Console(stderr=True)
    return RichCollector(console) if interactive(console) else NullCollector()


@contextmanager
def dbt_progress(console: Console | None = None) -> Iterator[list[Callable[[Any], None]]]:
    """dbt callbacks that draw "nodes done of total" while `dbt build` runs (none outside a
    terminal). Use: `with dbt_progress() as callbacks: dbtRunner(callbacks=callbacks)`."""
    console = console or Console(stderr=True)
    if not interactive(console):
        yield []
        return
    bars = _bars(console)
    task = bars.add_task("dbt build: models and tests", total=None)

    def on_event(event: Any) -> None:
        name = event.info.name
        data = event.data
        if name == "LogStartLine" and getattr(data, "total", 0):
            # "3 of 120 START ...": the total of the nodes this build runs.
            bars.update(task, total=data.total)
        elif name == "NodeFinished":
            bars.update(task, advance=1)

    bars.start()
    try:
        yield [on_event]
    finally:
        bars.stop()

"""Log setup for the CLI: readable in a terminal, one line per record (text or JSON) in a file."""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

import structlog

from pipelines.errors import UserError

LogFormat = Literal["auto", "console", "text", "json"]
LOG_FORMATS: tuple[str, ...] = ("auto", "console", "text", "json")
# Every logger of the app sits under this one, so one handler covers the source, the runner,
# the digest and the dashboard, and dlt's and dbt's own loggers are left alone.
APP_LOGGER = "pipelines"

_HANDLER_NAME = "mpac"
# The format configure_logging chose last (None: logging not configured by the CLI).
CURRENT_FORMAT: str | None = None


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of the record (a test runner swaps it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def _one_line(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A file or a log shipper reads one record per line: escape newlines inside values."""
    for key, value in event_dict.items():
        if isinstance(value, str) and ("\n" in value or "\r" in value):
            event_dict[key] = value.replace("\r", "\\r").replace("\n", "\\n")
    return event_dict


def _renderer(chosen: str) -> list[Any]:
    if chosen == "json":
        return [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    if chosen == "text":
        # No padding and no colour: the width of a record is the width of what it says.
        return [
            structlog.processors.format_exc_info,
            _one_line,
            structlog.dev.ConsoleRenderer(colors=False, pad_event_to=0, pad_level=False),
        ]
    return [structlog.dev.ConsoleRenderer(colors=True, pad_event_to=0, pad_level=False)]


def resolve_format(log_format: str, stream: TextIO) -> str:
    """`auto` is `console` when the stream is a terminal, else `text`."""
    if log_format not in LOG_FORMATS:
        choices = ", ".join(LOG_FORMATS)
        raise UserError(f"--log-format must be one of {choices}, not {log_format!r}.")
    if log_format != "auto":
        return log_format
    isatty = getattr(stream, "isatty", None)
    return "console" if isatty is not None and isatty() else "text"


def configure_logging(
    log_format: str = "auto", stream: TextIO | None = None, level: int = logging.INFO
) -> str:
    """Send the app's log records (stdlib and structlog) to `stream` (default stderr).

    Args:
        log_format: `auto`, `console` (colours, short times), `text` (one line per record, ISO
            UTC timestamps, key=value pairs) or `json` (one JSON object per line).
        stream: Where records go; stderr by default.
        level: The app loggers' level.

    Returns:
        The format chosen (`auto` resolved).
    """
    stream = stream or sys.stderr
    chosen = resolve_format(log_format, stream)
    global CURRENT_FORMAT
    CURRENT_FORMAT = chosen
    timestamper = structlog.processors.TimeStamper(
        fmt="%H:%M:%S" if chosen == "console" else "iso", utc=chosen != "console"
    )
    shared: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *_renderer(chosen),
        ],
    )
    handler: logging.Handler = (
        _StderrHandler() if stream is sys.stderr else logging.StreamHandler(stream)
    )
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    # On the root logger, so that a library's warning (httpx, duckdb) is a record of the same
    # shape instead of a bare line; libraries stay at WARNING, the app logs from INFO.
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    logging.getLogger(APP_LOGGER).setLevel(level)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    return chosen


def get_logger(name: str) -> Any:
    """A structlog logger under the app's logger (`pipelines.<name>`)."""
    return structlog.get_logger(f"{APP_LOGGER}.{name}")


@dataclass
class RunRecord:
    """What the end line of a run reports; the caller fills `rows` in."""

    run_id: str
    rows: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@contextmanager
def logged_run(
    what: str, *, vendor: str, api_version: str, warehouse: str, logger: Any = None
) -> Iterator[RunRecord]:
    """A start line (vendor, API generation, warehouse, run id) and an end line (outcome, rows,
    seconds) around one run, so a log file shows where each run begins and how it ended."""
    log = logger or get_logger("run")
    record = RunRecord(run_id=uuid.uuid4().hex[:12])
    log.info(
        f"{what} started",
        run_id=record.run_id,
        vendor=vendor,
        api_version=api_version,
        warehouse=warehouse,
    )
    started = time.perf_counter()
    try:
        yield record
    except BaseException as error:
        outcome = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        # The CLI's error handler then need not say the same sentence again.
        error.logged = True  # type: ignore[attr-defined]
        log.error(
            f"{what} {outcome}",
            run_id=record.run_id,
            outcome=outcome,
            error=str(error) if isinstance(error, UserError) else type(error).__name__,
            rows=record.rows,
            seconds=round(time.perf_counter() - started, 1),
        )
        raise
    log.info(
        f"{what} finished",
        run_id=record.run_id,
        outcome="ok",
        rows=record.rows,
        seconds=round(time.perf_counter() - started, 1),
        **record.extra,
    )

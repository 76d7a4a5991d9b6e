"""Run `mpac` in a child process that SIGKILLs itself at a named point: deterministic crashes.

    python -m tests.killpoints [ACTION/]POINT[@N] -- run --warehouse w.duckdb

POINT names where (below); N (default 1) is which occurrence acts. ACTION is `kill` (default),
`pause` (print "paused" and block until stdin closes: a run caught in the act, for the lock
tests) or `fsize=BYTES` (from there on no file may grow past BYTES, as on a full disk). The
patches live here, in the test harness, not in the pipeline: nothing in the product reads an
environment variable to crash. A point never reached lets the run finish, so a test sees exit 0
instead of -9 and fails.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any

_seen: dict[str, int] = {}
_action = "kill"


def _die() -> None:
    if _action == "pause":
        print("paused", flush=True)
        sys.stdin.read()
    elif _action.startswith("fsize="):
        import resource

        limit = int(_action.removeprefix("fsize="))
        resource.setrlimit(
            resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1])
        )
    else:
        os.kill(os.getpid(), signal.SIGKILL)


def _count(point: str, nth: int) -> None:
    _seen[point] = _seen.get(point, 0) + 1
    if _seen[point] == nth:
        _die()


def _before(
    owner: Any, name: str, point: str, nth: int, when: Callable[..., bool] = lambda *a, **k: True
) -> None:
    original = getattr(owner, name)

    @wraps(original)
    def patched(*args: Any, **kwargs: Any) -> Any:
        if when(*args, **kwargs):
            _count(point, nth)
        return original(*args, **kwargs)

    setattr(owner, name, patched)


def _after(
    owner: Any, name: str, point: str, nth: int, when: Callable[..., bool] = lambda *a, **k: True
) -> None:
    original = getattr(owner, name)

    @wraps(original)
    def patched(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if when(*args, **kwargs):
            _count(point, nth)
        return result

    setattr(owner, name, patched)


def _each_item(owner: Any, name: str, point: str, nth: int) -> None:
    original = getattr(owner, name)

    @wraps(original)
    def patched(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for item in original(*args, **kwargs):
            yield item
            _count(point, nth)

    setattr(owner, name, patched)


def _copy_of(table: str) -> Callable[..., bool]:
    def matches(job: Any) -> bool:
        return bool(job.load_table_name == table)

    return matches


def _merge_into(table: str) -> Callable[..., bool]:
    # The merge follow-up's statements (scd2: retire, then insert) read the staging dataset;
    # the copy jobs (read_parquet) only write it.
    def matches(client: Any, sql: Any, *args: Any, **kwargs: Any) -> bool:
        text = str(sql)
        return (
            "_staging" in text
            and "read_parquet" not in text
            and f'"{table}"' in text
            and ("UPDATE" in text.upper() or "INSERT" in text.upper())
        )

    return matches


def install(point: str, nth: int) -> None:
    """Patch the code at `point` so that its `nth` occurrence kills this process."""
    from dlt.destinations.impl.duckdb.duck import DuckDbCopyJob
    from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient
    from dlt.normalize import normalize
    from dlt.pipeline.pipeline import Pipeline

    from pipelines.marketplace.client import MarketplaceClient

    kind, _, detail = point.partition(":")
    if kind == "export-poll":  # waiting for an async export to be ready
        _before(MarketplaceClient, "export_status", point, nth)
    elif kind == "download":  # in the middle of an export download, after N records
        _each_item(MarketplaceClient, "_parse_download", point, nth)
    elif kind == "paging":  # in the middle of a paged list endpoint, after N records
        _each_item(MarketplaceClient, "paginate", point, nth)
    elif kind == "normalize":  # files normalized, the package not yet committed
        _after(normalize, "w_normalize_files", point, nth)
    elif kind == "load-copy":  # a staging copy committed, dlt has not marked the job done
        _after(DuckDbCopyJob, "run", point, nth, _copy_of(detail))
    elif kind == "merge":  # a merge statement into `detail` committed, the rest not run
        _after(DuckDbSqlClient, "execute_sql", point, nth, _merge_into(detail))
    elif kind == "load":  # the load step begins
        _before(Pipeline, "load", point, nth)
    elif kind == "loaded":  # dlt has loaded and marked the package done
        _after(Pipeline, "load", point, nth)
    elif kind == "start":  # before anything
        _count(point, nth)
    elif kind == "dbt":  # dbt finished node `detail` (a model), the build goes on
        _dbt_node(point, nth, detail)
    else:
        raise SystemExit(f"unknown kill point {point!r}")


def _dbt_node(point: str, nth: int, node: str) -> None:
    from dbt.cli import main

    runner = main.dbtRunner
    original = runner.__init__

    def init(self: Any, *args: Any, callbacks: list[Any] | None = None, **kwargs: Any) -> None:
        def on_event(event: Any) -> None:
            if (
                event.info.name == "NodeFinished"
                and getattr(event.data.node_info, "node_name", "") == node
            ):
                _count(point, nth)

        original(self, *args, callbacks=[*(callbacks or []), on_event], **kwargs)

    runner.__init__ = init  # type: ignore[method-assign]


def main() -> None:
    spec, separator, *args = sys.argv[1:]
    assert separator == "--", "usage: python -m tests.killpoints POINT[@N] -- mpac-args..."
    global _action
    action, _, spec = spec.rpartition("/")
    _action = action or "kill"
    point, _, nth = spec.partition("@")
    from pipelines.cli import app

    install(point, int(nth or 1))
    app(args, prog_name="mpac")


if __name__ == "__main__":
    main()

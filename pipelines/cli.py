"""The `mpac` command line: simulate the API, run the pipeline, inspect the warehouse."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import typer
from rich.console import Console

from pipelines.errors import UserError

app = typer.Typer(
    name="mpac",
    help="Atlassian Marketplace reporting data into a DuckDB warehouse, with dbt marts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a UserError into one red line and a non-zero exit instead of a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as error:
            err_console.print(f"[bold red]error:[/] {error}", highlight=False)
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: state is saved only with a successful load.")
            sys.exit(130)

    return wrapper


@app.command()
@friendly_errors
def simulate(
    port: int = typer.Option(8787, help="Port on 127.0.0.1 to serve the simulated API on."),
    seed: int = typer.Option(42, help="Seed of the synthetic vendor (same seed, same data)."),
    size: str = typer.Option("small", help="Vendor size: tiny, small or large."),
    faults: str = typer.Option(
        "none", help="Fault profile: none, flaky (429s, 5xx, drops) or a JSON object of rates."
    ),
) -> None:
    """Serve a local Marketplace reporting API for a deterministic synthetic vendor."""
    from pipelines.simulator.server import serve

    try:
        serve(port=port, seed=seed, size=size, faults=faults)
    except KeyboardInterrupt:
        # uvicorn re-raises Ctrl-C after its graceful shutdown: for a server that is a clean stop.
        err_console.print("simulator stopped.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()

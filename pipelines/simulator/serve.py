"""`mpac simulate`: build a vendor and serve it with uvicorn in the foreground."""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence

from pipelines.errors import UserError
from pipelines.simulator.app import create_app
from pipelines.simulator.faults import parse_faults
from pipelines.simulator.state import (
    DEFAULT_API_TOKEN,
    DEFAULT_EMAIL,
    build_state,
    parse_size,
    vendor_counts,
)


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise UserError(f"Port {port} on {host} is in use: pick another with --port.") from None


def _seed_and_size(spec: str) -> tuple[int, str | int]:
    seed, _, size = spec.partition(":")
    if not seed.strip().isdigit():
        raise UserError(f"--more-vendor takes SEED:SIZE (such as 7:tiny), not {spec!r}.")
    return int(seed), parse_size(size.strip() or "tiny")


def serve(
    port: int = 8787,
    seed: int = 42,
    size: str = "small",
    faults: str = "none",
    email: str = DEFAULT_EMAIL,
    api_token: str = DEFAULT_API_TOKEN,
    more_vendors: Sequence[str] = (),
) -> None:
    """Run the simulator in the foreground until interrupted (`mpac simulate`).

    `more_vendors`: "SEED:SIZE" of further vendors the same host serves (one account owns
    them all here, as an agency's does)."""
    import uvicorn
    from rich.console import Console

    # soft_wrap: URLs are for copying, so they must never be broken across lines.
    console = Console(soft_wrap=True)
    host = "127.0.0.1"
    if not 0 < port < 65536:
        raise UserError(f"Port {port} is not a TCP port (1-65535).")
    parse_size(size)
    parse_faults(faults)
    extra = [_seed_and_size(spec) for spec in more_vendors]
    _check_port_free(host, port)
    started = time.perf_counter()
    with console.status(f"Building the {size} synthetic vendor (seed {seed})..."):
        state = build_state(seed, size, faults, email, api_token)
        more = [
            build_state(s, z, email=email, api_token=api_token, injector=state.faults)
            for s, z in extra
        ]
    root = f"http://{host}:{port}"
    for one in (state, *more):
        vendor = one.vendor
        console.print(
            f"Vendor {vendor.vendor_id} (seed {one.seed}, {one.size}): {vendor_counts(vendor)}"
        )
        console.print(f"v2 base:  {root}/rest/2/vendors/{vendor.vendor_id}/reporting")
        console.print(f"v3 base:  {root}/rest/3/reporting/developer-space/{vendor.developer_id}")
    console.print(f"built in {time.perf_counter() - started:.1f} s")
    console.print(f"auth:     HTTP Basic, user {email}, API token {api_token}")
    console.print(f"admin:    {root}/admin/state  (today {state.vendor.today}, faults: {faults})")
    config = uvicorn.Config(
        create_app(state, *more), host=host, port=port, log_level="info", date_header=False
    )
    uvicorn.Server(config).run()

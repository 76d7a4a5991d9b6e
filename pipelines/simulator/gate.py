"""The layer in front of the routes: HTTP Basic auth and the injected faults on /rest paths."""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import hmac
from datetime import UTC, datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipelines.simulator.responses import error_response
from pipelines.simulator.state import SimulatorState

# Where the gate leaves the authenticated account for the routes.
ACCOUNT_SCOPE_KEY = "mpac.account"


class _Truncated(Exception):
    """Raised through the app to stop rendering a body that a fault cut short."""


class RestGate:
    """Faults and HTTP Basic auth for /rest paths; /admin is never faulted nor authenticated."""

    def __init__(self, app: ASGIApp, state: SimulatorState, *more: SimulatorState) -> None:
        self.app = app
        # One host, one clock and one fault layer; several vendors' accounts may call it.
        self.state = state
        self.accounts = [(one.email, one.api_token) for one in (state, *more)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            send = self._dated(send)
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
        account = self._account(scope)
        if account is None:
            response = error_response(401, "Client must be authenticated to access this resource.")
            response.headers["WWW-Authenticate"] = 'Basic realm="Marketplace"'
            await response(scope, receive, counted)
            return
        # The routes check that the account owns the vendor it asks for.
        scope[ACCOUNT_SCOPE_KEY] = account
        if kind == "truncate":
            counted = _truncating(counted, receive, faults.truncate_at_chunk())
        try:
            await self.app(scope, receive, counted)
        except BaseException as error:
            if not _is_truncation(error):
                raise

    def _dated(self, send: Send) -> Send:
        """Every response carries the simulated clock in its Date header, as the live API's
        carries its own: the pipeline takes the load day from it, so time travel must move it
        (the servers are started with uvicorn's wall-clock Date header turned off)."""
        vendor = self.state.vendor

        async def dated(message: Message) -> None:
            if message["type"] == "http.response.start":
                now = datetime.now(UTC)
                moment = datetime.combine(vendor.today, now.time(), tzinfo=UTC)
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                headers.append((b"date", email.utils.format_datetime(moment, usegmt=True).encode()))
                message = {**message, "headers": headers}
            await send(message)

        return dated

    def _counting(self, send: Send) -> Send:
        faults = self.state.faults

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                faults.count(f"status_{message['status']}")
            await send(message)

        return counted

    def _account(self, scope: Scope) -> tuple[str, str] | None:
        """The (email, token) of a known account, or None: the request is not authenticated."""
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:
            email, _, token = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        for known_email, known_token in self.accounts:
            # Constant-time comparisons: the simulator is a model of a real auth check.
            if hmac.compare_digest(email, known_email) & hmac.compare_digest(token, known_token):
                return (known_email, known_token)
        return None


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

"""Post a message to a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat, ...)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import httpx

from pipelines.errors import UserError

NOTIFY_ENV = "MPAC_NOTIFY_URL"
# A chat post should take well under a second; a stuck endpoint must not hold a scheduled run.
TIMEOUT_SECONDS = 10.0


def notify_url(explicit: str | None = None) -> str | None:
    """--notify, else $MPAC_NOTIFY_URL, else `[notify] webhook_url` in .dlt/secrets.toml."""
    chosen = explicit or os.environ.get(NOTIFY_ENV)
    if not chosen:
        import dlt

        chosen = dlt.secrets.get("notify.webhook_url")
    return str(chosen) if chosen else None


def where(url: str) -> str:
    """The webhook's host only: its path holds the token, which must never be printed."""
    parts = urlsplit(url)
    return parts.hostname or "the webhook"


def post(url: str, text: str) -> None:
    """Send `text` as `{"text": ...}`; a refusal or an unreachable host is one UserError."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise UserError("the notify URL must start with https:// (or http:// for a local test).")
    try:
        response = httpx.post(url, json={"text": text}, timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError as error:
        raise UserError(
            f"could not reach the webhook at {where(url)} ({type(error).__name__})."
        ) from None
    if response.status_code >= 400:
        raise UserError(
            f"the webhook at {where(url)} refused the message (HTTP {response.status_code})."
        )

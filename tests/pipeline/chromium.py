"""Headless Chromium for the dashboard tests, driven over the DevTools protocol on a pipe (no
websocket library, no node): the DOM after scripts ran, a screenshot, and every request the
page made (Network events), while a proxy on 127.0.0.1 that answers nothing stands in for the
network so that nothing could be fetched anyway."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The flags measured to work here as root in a container; the user-data dir is new and empty
# each time so that no profile state leaks between runs.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@contextmanager
def dead_end_proxy() -> Iterator[int]:
    """A proxy on 127.0.0.1 that closes every connection unanswered: the network, as far as the
    browser can tell, is unreachable."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


class DevTools:
    """The DevTools protocol over --remote-debugging-pipe: NUL-terminated JSON on fds 3 and 4."""

    def __init__(self, process: subprocess.Popen[bytes], to_browser: int, from_browser: int):
        self.process = process
        self.writer = os.fdopen(to_browser, "wb", buffering=0)
        self.reader = os.fdopen(from_browser, "rb", buffering=0)
        self.buffer = b""
        self.events: list[dict[str, Any]] = []
        self.next_id = 0

    def _message(self) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            chunk = self.reader.read(1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return dict(json.loads(raw))

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.writer.write(json.dumps(message).encode() + b"\0")
        while True:
            reply = self._message()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            if "method" in reply:
                self.events.append(reply)

    def wait(self, session: str, expression: str, timeout: float) -> bool:
        """Poll a JS expression until it is truthy; False after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.send(
                "Runtime.evaluate",
                session,
                expression=f"Boolean({expression})",
                returnByValue=True,
            )["result"].get("value")
            if value:
                return True
            time.sleep(0.2)
        return False


@dataclass
class Rendered:
    dom: str
    requests: list[str] = field(default_factory=list)
    screenshot: Path | None = None


def render(
    chromium: str,
    page: Path,
    screenshot: Path | None = None,
    ready: str = "true",
    then: str | None = None,
    then_ready: str = "true",
    timeout: float = 60.0,
) -> Rendered:
    """Open `page` from the file system, wait until the JS expression `ready` is true, and
    return the DOM, the URLs of every request the page made other than its own file, and a
    full-page screenshot when asked for. `then` is a script run after that (a click, a choice
    in a filter), followed by a wait for `then_ready`; the DOM and screenshot come after it."""
    url = page.resolve().as_uri()
    with dead_end_proxy() as port, tempfile.TemporaryDirectory() as profile:
        to_read, to_browser = os.pipe()  # the browser reads commands on fd 3
        from_browser, to_write = os.pipe()  # and writes replies on fd 4

        def wire() -> None:
            # Copies first: one pipe end may itself be fd 3 or 4. Then the kept fds 3 and 4.
            reading, writing = os.dup(to_read), os.dup(to_write)
            os.dup2(reading, 3)
            os.dup2(writing, 4)

        process = subprocess.Popen(
            [
                chromium,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--proxy-server=http://127.0.0.1:{port}",
                "--proxy-bypass-list=<-loopback>",
                "--window-size=1400,1000",
                "about:blank",
            ],
            preexec_fn=wire,  # only dup, dup2: safe between fork and exec
            pass_fds=(3, 4),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_read)
        os.close(to_write)
        tools = DevTools(process, to_browser, from_browser)
        try:
            target = tools.send("Target.createTarget", url="about:blank")["targetId"]
            session = tools.send("Target.attachToTarget", targetId=target, flatten=True)[
                "sessionId"
            ]
            tools.send("Network.enable", session)
            tools.send("Page.enable", session)
            tools.send("Page.navigate", session, url=url)
            tools.wait(session, ready, timeout)
            if then is not None:
                tools.send("Runtime.evaluate", session, expression=then)
                tools.wait(session, then_ready, timeout)
            dom = tools.send(
                "Runtime.evaluate",
                session,
                expression="document.documentElement.outerHTML",
                returnByValue=True,
            )["result"]["value"]
            if screenshot is not None:
                metrics = tools.send("Page.getLayoutMetrics", session)
                size = metrics.get("cssContentSize") or metrics["contentSize"]
                shot = tools.send(
                    "Page.captureScreenshot",
                    session,
                    format="png",
                    captureBeyondViewport=True,
                    clip={
                        "x": 0,
                        "y": 0,
                        "width": size["width"],
                        "height": size["height"],
                        "scale": 1,
                    },
                )
                screenshot.write_bytes(base64.b64decode(shot["data"]))
            requests = [
                event["params"]["request"]["url"]
                for event in tools.events
                if event["method"] == "Network.requestWillBeSent"
                and event["params"]["request"]["url"] != url
                # Inline data (plotly draws heat maps as data: images) is not a request out.
                and not event["params"]["request"]["url"].startswith(("data:", "blob:", "about:"))
            ]
            return Rendered(dom=str(dom), requests=requests, screenshot=screenshot)
        finally:
            with suppress(RuntimeError, OSError):
                tools.send("Browser.close")
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            tools.writer.close()
            tools.reader.close()

"""A real headless Chromium, driven over the DevTools protocol: open a page, wait for its text, read it, screenshot it.

Debian's ``chromium-headless-shell`` (or ``chromium``) is started with a fresh profile and
``--remote-debugging-port=0``; the port it picks is read from ``DevToolsActivePort`` in the profile,
and one page target is driven through a websocket (``websockets``, which Prefect already needs).
Every wait is bounded, and the browser is ended by its own process group.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)


def find_browser() -> str | None:
    """The path of an installed Chromium (``.ci/run`` installs Debian's ``chromium-headless-shell``)."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


class Page:
    """One browser tab: navigate, evaluate JavaScript, wait for text, screenshot."""

    def __init__(self, socket) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    def call(self, method: str, **params) -> dict:
        """Send one DevTools command and return its result (events in between are skipped)."""
        msg_id = next(self._ids)
        self._socket.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self._socket.recv(timeout=60))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (awaited when it is a promise)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        """The page's visible text."""
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for(self, *texts: str, timeout_s: float = 60) -> str:
        """Poll until every one of ``texts`` is in the page's visible text; return that text.

        Raises:
            TimeoutError: naming the texts still missing and the start of what the page shows.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            shown = self.text()
            missing = [t for t in texts if t not in shown]
            if not missing:
                return shown
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never showed {missing} within {timeout_s:.0f} s; it shows: {shown[:600]!r}")
            time.sleep(0.5)

    def screenshot(self, path: Path) -> Path:
        """A PNG of the viewport, written to ``path``."""
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


@contextlib.contextmanager
def browser(width: int = 1600, height: int = 1000, timeout_s: float = 60) -> Iterator[Page]:
    """A headless Chromium with a fresh profile; yields its one page, ends the browser on exit.

    Raises:
        FileNotFoundError: no Chromium installed.
    """
    from websockets.sync.client import connect

    exe = find_browser()
    if exe is None:
        raise FileNotFoundError(f"no Chromium found (looked for {', '.join(BROWSERS)}); apt-get install {BROWSERS[0]}")
    profile = Path(tempfile.mkdtemp(prefix="ragtune-chromium-"))
    cmd = [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        port = _devtools_port(profile / "DevToolsActivePort", proc, timeout_s)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            target = next(t for t in json.load(resp) if t["type"] == "page")
        with connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=timeout_s) as socket:
            page = Page(socket)
            page.call("Page.enable")
            size = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
            page.call("Emulation.setDeviceMetricsOverride", **size)
            yield page
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


def _devtools_port(path: Path, proc: subprocess.Popen, timeout_s: float) -> int:
    """The DevTools port Chromium wrote to ``path`` (it picks a free one for ``--remote-debugging-port=0``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before opening its DevTools port")
        if path.is_file() and (lines := path.read_text().splitlines()):
            return int(lines[0])
        time.sleep(0.2)
    raise TimeoutError(f"Chromium did not open its DevTools port within {timeout_s:.0f} s")

"""Drive a real headless Chromium through the DevTools protocol (aiohttp's websocket client): open a
page, collect console errors, exceptions and every network request, run scripts in it.

    with Browser() as b:
        page = b.open("file:///tmp/report.html")
        page.evaluate("document.title")
        page.errors, page.requests
"""
from __future__ import annotations

import asyncio
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Any

import aiohttp

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)


class Page:
    def __init__(self, loop: asyncio.AbstractEventLoop, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._loop, self._ws = loop, ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self._events: dict[str, asyncio.Event] = {}
        self.errors: list[str] = []
        self.requests: list[str] = []

    async def _reader(self) -> None:
        async for msg in self._ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self._waiting:
                self._waiting.pop(data["id"]).set_result(data)
                continue
            method, params = data.get("method"), data.get("params", {})
            if method == "Runtime.exceptionThrown":
                self.errors.append(json.dumps(params["exceptionDetails"])[:500])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                self.errors.append(json.dumps(params.get("args"))[:500])
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                self.errors.append(params["entry"].get("text", "")[:500])
            elif method == "Network.requestWillBeSent":
                self.requests.append(params["request"]["url"])
            if method in self._events:
                self._events[method].set()

    async def _send(self, method: str, **params: Any) -> dict:
        n = next(self._ids)
        future = self._loop.create_future()
        self._waiting[n] = future
        await self._ws.send_str(json.dumps({"id": n, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def call(self, method: str, **params: Any) -> dict:
        return asyncio.run_coroutine_threadsafe(self._send(method, **params), self._loop).result(60)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def navigate(self, url: str, timeout: float = 60) -> None:
        event = asyncio.Event()

        async def arm() -> None:
            self._events["Page.loadEventFired"] = event
        asyncio.run_coroutine_threadsafe(arm(), self._loop).result(5)
        self.call("Page.navigate", url=url)
        asyncio.run_coroutine_threadsafe(asyncio.wait_for(event.wait(), timeout), self._loop).result(timeout + 5)


class Browser:
    """A headless Chromium for the duration of a ``with`` block (its own profile, loopback only)."""

    def __init__(self, width: int = 1300, height: int = 1000) -> None:
        if CHROMIUM is None:
            raise RuntimeError("no chromium on PATH (apt-get install chromium)")
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-")
        self._proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", f"--user-data-dir={self._profile.name}", f"--window-size={width},{height}",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.endpoint = self._devtools_endpoint()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._session: aiohttp.ClientSession | None = None

    def _devtools_endpoint(self) -> str:
        deadline = time.monotonic() + 30
        assert self._proc.stderr is not None
        while time.monotonic() < deadline:
            line = self._proc.stderr.readline()
            found = re.search(r"DevTools listening on ws://([\d.]+:\d+)/", line)
            if found:
                return found.group(1)
            if not line and self._proc.poll() is not None:
                break
        raise RuntimeError("chromium did not start its DevTools endpoint")

    def open(self, url: str) -> Page:
        async def connect() -> Page:
            self._session = aiohttp.ClientSession()
            async with self._session.get(f"http://{self.endpoint}/json/list") as response:
                targets = await response.json(content_type=None)
            target = next(t for t in targets if t.get("type") == "page")
            ws = await self._session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
            page = Page(self._loop, ws)
            asyncio.ensure_future(page._reader())
            for domain in ("Runtime", "Log", "Network", "Page"):
                await page._send(f"{domain}.enable")
            return page
        page = asyncio.run_coroutine_threadsafe(connect(), self._loop).result(60)
        page.navigate(url)
        return page

    def close(self) -> None:
        async def shut() -> None:
            if self._session is not None:
                await self._session.close()
        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._proc.kill()
        self._proc.wait(10)
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["CHROMIUM", "Browser", "Page"]

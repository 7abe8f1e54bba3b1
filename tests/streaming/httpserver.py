"""A local HTTP server for the remote-read tests: serves a folder with Range support (206), HEAD, and
optionally misbehaves: ``flaky`` drops the connection half-way through the body of the first request
of every distinct range; ``fail`` answers 503 forever for names containing it."""
from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass
class Log:
    """What the server saw: ``(name, start, end, completed)`` per GET."""

    gets: list[tuple[str, int, int, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, *entry) -> None:
        with self.lock:
            self.gets.append(entry)


def make_handler(root: Path, log: Log, flaky: bool, fail: str | None):
    seen: set[tuple[str, int, int]] = set()
    seen_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args) -> None:  # keep test output quiet
            pass

        def _target(self) -> Path | None:
            name = self.path.split("?", 1)[0].lstrip("/")
            path = (root / name).resolve()
            if root not in path.parents or not path.is_file():
                return None
            return path

        def do_HEAD(self) -> None:
            path = self._target()
            if path is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(path.stat().st_size))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()

        def do_GET(self) -> None:
            path = self._target()
            if path is None:
                self.send_error(404)
                return
            name = path.name
            if fail and fail in name:
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = path.read_bytes()
            size = len(data)
            match = _RANGE.match(self.headers.get("Range", ""))
            start, end = 0, size
            if match:
                start = int(match.group(1))
                end = min(int(match.group(2)) + 1, size) if match.group(2) else size
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            body = data[start:end]
            self.send_response(206 if match else 200)
            if match:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            with seen_lock:
                first = (name, start, end) not in seen
                seen.add((name, start, end))
            if flaky and first and len(body) > 1:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                log.add(name, start, end, False)
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)
                return
            self.wfile.write(body)
            log.add(name, start, end, True)

    return Handler


@contextlib.contextmanager
def serve(folder: str | os.PathLike[str], *, flaky: bool = False, fail: str | None = None) -> Iterator[tuple[str, Log]]:
    """Serve ``folder`` on 127.0.0.1 (random port) for the ``with`` block: yields ``(base URL, Log)``."""
    log = Log()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(Path(folder).resolve(), log, flaky, fail))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

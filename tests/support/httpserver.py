"""A local HTTP server for the remote-read tests: serves a folder with Range support (206), HEAD, and
optionally misbehaves: ``flaky`` drops the connection half-way through the body of the first request
of every distinct range; ``fail`` answers 503 forever for names containing it; ``slowdown`` answers
every GET with S3's ``503 SlowDown`` for that many seconds after the server starts; ``stall``
accepts every ranged GET of a name containing it and never answers; ``stall_mid`` sends the headers
and half the body of such a GET, then nothing more (both hold the connection open until the server
stops); ``latency`` waits that many seconds before answering any GET (time to first byte).

It runs in its own process (``python httpserver.py FOLDER LOG [--flaky] [--fail NAME]``, started by
:func:`serve`): a server thread inside the test process would hand its sockets to every DataLoader
worker forked during the test, which is not how a real remote server behaves.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class Log:
    """What the server saw: ``(name, start, end, completed)`` per GET, one JSON line each in a file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lock = threading.Lock()
        self._kept: list[tuple[str, int, int, bool]] | None = None

    def keep(self) -> None:
        """Read the log into memory (the server is done; its file is about to go away)."""
        self._kept = self.gets

    def add(self, *entry) -> None:
        with self.lock, open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()

    @property
    def gets(self) -> list[tuple[str, int, int, bool]]:
        if self._kept is not None:
            return list(self._kept)
        if not self.path.exists():
            return []
        return [tuple(json.loads(line)) for line in self.path.read_text().splitlines()]


_SLOWDOWN_BODY = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                  b'<Message>Please reduce your request rate.</Message></Error>')


def make_handler(root: Path, log: Log, flaky: bool, fail: str | None, slowdown_until: float = 0.0,
                 stall: str | None = None, stall_mid: str | None = None, latency: float = 0.0):
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
            self._validators(path)
            self.end_headers()

        def _validators(self, path: Path) -> None:
            """ETag and Last-Modified, as real servers send (nginx-style ETag: mtime and size)."""
            st = path.stat()
            self.send_header("ETag", f'"{st.st_mtime_ns:x}-{st.st_size:x}"')
            self.send_header("Last-Modified", self.date_time_string(int(st.st_mtime)))

        def do_GET(self) -> None:
            path = self._target()
            if path is None:
                self.send_error(404)
                return
            name = path.name
            if latency:
                time.sleep(latency)  # an object store's time to first byte
            if time.monotonic() < slowdown_until:
                self.send_response(503, "Slow Down")
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(_SLOWDOWN_BODY)))
                self.end_headers()
                self.wfile.write(_SLOWDOWN_BODY)
                log.add(name, -1, -1, False)
                return
            if stall and stall in name and "Range" in self.headers:
                log.add(name, -1, -1, False)
                time.sleep(3600)  # accepted, never answered
                return
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
            self._validators(path)
            self.end_headers()
            with seen_lock:
                first = (name, start, end) not in seen
                seen.add((name, start, end))
            if stall_mid and stall_mid in name and match and len(body) > 1:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                log.add(name, start, end, False)
                time.sleep(3600)  # half a body, then silence
                return
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
def serve(folder: str | os.PathLike[str], *, flaky: bool = False, fail: str | None = None,
          slowdown: float = 0.0, stall: str | None = None, stall_mid: str | None = None, latency: float = 0.0
          ) -> Iterator[tuple[str, Log]]:
    """Serve ``folder`` on 127.0.0.1 (random port) from a child process for the ``with`` block.

    Yields ``(base URL, Log)``; the log stays readable after the block.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "requests.jsonl"
        cmd = [sys.executable, __file__, str(folder), str(log_path)] + (["--flaky"] if flaky else []) + (
            ["--fail", fail] if fail else []) + (["--slowdown", str(slowdown)] if slowdown else []) + (
            ["--stall", stall] if stall else []) + (["--stall-mid", stall_mid] if stall_mid else []) + (
            ["--latency", str(latency)] if latency else [])
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        log = Log(log_path)
        try:
            port = int(proc.stdout.readline())
            yield f"http://127.0.0.1:{port}", log
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            proc.stdout.close()
            log.keep()


class _Server(ThreadingHTTPServer):
    # The stock backlog of 5 overflows when several DataLoader workers and their prefetch threads
    # connect at once on a loaded machine; a real server would not refuse them.
    request_queue_size = 128
    daemon_threads = True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("log")
    parser.add_argument("--flaky", action="store_true")
    parser.add_argument("--fail")
    parser.add_argument("--slowdown", type=float, default=0.0)
    parser.add_argument("--stall")
    parser.add_argument("--stall-mid")
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    handler = make_handler(Path(args.folder).resolve(), Log(args.log), args.flaky, args.fail,
                           time.monotonic() + args.slowdown, args.stall, args.stall_mid, args.latency)
    server = _Server(("127.0.0.1", 0), handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

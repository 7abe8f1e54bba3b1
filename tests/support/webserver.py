"""A local web server of images that misbehaves the ways the web does, for URL-list tests.

Runs in its own process on 127.0.0.1 (``python webserver.py LOG``, started by :func:`serve`). Paths
are ``/<behaviour>/<n>.jpg``; image ``n`` is a generated JPEG (the same bytes every time):

==============  =================================================================================
``ok``          200 with the image
``missing``     404
``gone``        410
``throttle``    429 with ``Retry-After: 1`` on the first request, then 200
``flaky``       503 on the first two requests, then 200
``reset``       the connection is closed without an answer on the first request, then 200
``slow``        waits 30 s before answering (past any test's timeout)
``redirect``    302 to ``/ok/<n>.jpg``
``loop``        302 to itself
``html``        200 with ``Content-Type: text/html`` and an error page
``big``         200 with a 5 MB body (past a small ``max_image_bytes``)
``noai``        200 with the image and ``X-Robots-Tag: noai``
``noimageai``   200 with the image and ``X-Robots-Tag: otherbot: noindex, noimageai``
``broken``      200 with a truncated JPEG
==============  =================================================================================

Every request is logged as one JSON line ``[path, status, user agent]`` to LOG, so tests count fetches.
"""
from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

BEHAVIOURS = ("ok", "missing", "gone", "throttle", "flaky", "reset", "slow", "redirect", "loop", "html", "big",
              "noai", "noimageai", "broken")


def image(n: int) -> bytes:
    """The generated JPEG of image ``n`` (64-160 px a side, random pixels)."""
    rng = np.random.default_rng(n)
    w, h = int(rng.integers(64, 160)), int(rng.integers(64, 160))
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def make_handler(log_path: str):
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args) -> None:
            pass

        def _log(self, status: int) -> None:
            with lock, open(log_path, "a") as f:
                f.write(json.dumps([self.path, status, self.headers.get("User-Agent", "")]) + "\n")

        def _send(self, status: int, body: bytes = b"", ctype: str = "image/jpeg", **headers: str) -> None:
            self._log(status)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = self.path.strip("/").split("/")
            if len(parts) != 2 or parts[0] not in BEHAVIOURS or not parts[1].endswith(".jpg"):
                self._send(404, b"no such page", "text/plain")
                return
            kind, n = parts[0], int(parts[1][:-4])
            with lock:
                seen[self.path] += 1
                count = seen[self.path]
            if kind == "missing":
                self._send(404, b"not found", "text/plain")
            elif kind == "gone":
                self._send(410, b"gone", "text/plain")
            elif kind == "throttle" and count == 1:
                self._send(429, b"slow down", "text/plain", Retry_After="1")
            elif kind == "flaky" and count <= 2:
                self._send(503, b"try later", "text/plain")
            elif kind == "reset" and count == 1:
                self._log(0)
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)
            elif kind == "slow":
                self._log(0)
                time.sleep(30)
            elif kind == "redirect":
                self._send(302, b"", "text/plain", Location=f"/ok/{n}.jpg")
            elif kind == "loop":
                self._send(302, b"", "text/plain", Location=self.path)
            elif kind == "html":
                self._send(200, b"<!DOCTYPE html><html><body>Image not found</body></html>", "text/html")
            elif kind == "big":
                self._send(200, b"\xff\xd8" + bytes(5 << 20))
            elif kind == "noai":
                self._send(200, image(n), X_Robots_Tag="noai")
            elif kind == "noimageai":
                self._send(200, image(n), X_Robots_Tag="otherbot: noindex, noimageai")
            elif kind == "broken":
                data = image(n)
                self._send(200, data[: len(data) // 2])
            else:
                self._send(200, image(n))

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True


def requests(log_path: str | Path) -> list[tuple[str, int, str]]:
    """``(path, status, user agent)`` of every request the server logged (status 0: none sent)."""
    path = Path(log_path)
    if not path.exists():
        return []
    return [tuple(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


@contextlib.contextmanager
def serve(log_path: str | Path) -> Iterator[str]:
    """Run the server in a child process for the ``with`` block; yields its base URL."""
    proc = subprocess.Popen([sys.executable, __file__, str(log_path)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()


def main() -> None:
    server = _Server(("127.0.0.1", 0), make_handler(sys.argv[1]))
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

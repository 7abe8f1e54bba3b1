"""The benchmark's latency proxy (benchmarks/latency_proxy.py, its own process): every request
through it arrives at least the added latency later, and bytes pass through unchanged, on new and
kept-alive connections."""
from __future__ import annotations

import http.client
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PROXY = Path(__file__).resolve().parents[1] / "benchmarks" / "latency_proxy.py"
BODY = bytes(range(256)) * 4096  # 1 MiB


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


def test_requests_through_the_proxy_wait_the_latency_and_get_the_same_bytes() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy = subprocess.Popen([sys.executable, str(PROXY), str(server.server_address[1]), "150"],
                             stdout=subprocess.PIPE, text=True)
    try:
        port = int(proxy.stdout.readline())
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(3):  # one kept-alive connection: each request waits again
            started = time.perf_counter()
            conn.request("GET", "/x")
            body = conn.getresponse().read()
            assert time.perf_counter() - started >= 0.15
            assert body == BODY
        conn.close()
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        server.shutdown()

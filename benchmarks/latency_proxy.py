"""A TCP proxy that adds an object store's latency in front of a local S3 server, in its own process.

    python benchmarks/latency_proxy.py UPSTREAM_PORT LATENCY_MS [--mbps N]   # prints its port

Every burst of bytes from a client (an HTTP request, on a new or a kept-alive connection) reaches
the upstream server ``LATENCY_MS`` later: each request's time to first byte grows by that much, as
it does on S3/GCS (20-100 ms), while requests in flight on several connections overlap, as they do
there. ``--mbps`` caps each connection's download rate. Listens on 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import asyncio
import time


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, bytes_per_s: float) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if delay:
                await asyncio.sleep(delay)
            if bytes_per_s:
                started = time.monotonic()
                writer.write(data)
                await writer.drain()
                owed = len(data) / bytes_per_s - (time.monotonic() - started)
                if owed > 0:
                    await asyncio.sleep(owed)
            else:
                writer.write(data)
                await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:  # noqa: BLE001 - the other side may be gone already
            pass


async def serve(upstream_port: int, latency_s: float, bytes_per_s: float, ready: asyncio.Future | None = None) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, server_w, latency_s, 0.0), _pipe(server_r, client_w, 0.0, bytes_per_s))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    if ready is not None:
        ready.set_result(port)
    async with server:
        await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("upstream_port", type=int)
    p.add_argument("latency_ms", type=float)
    p.add_argument("--mbps", type=float, default=0.0, help="per-connection download cap, megabits/s (0: none)")
    args = p.parse_args()
    asyncio.run(serve(args.upstream_port, args.latency_ms / 1000, args.mbps * 1e6 / 8))


if __name__ == "__main__":
    main()

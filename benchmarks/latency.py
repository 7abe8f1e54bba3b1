"""Object-store latency, measured: ImageNetStream from a local folder, from a local S3 server, and from
that server behind a proxy adding 50 ms and 100 ms to every request's time to first byte, at 0, 1
and 2 DataLoader workers; images per second and requests per image.

    python benchmarks/latency.py                   # ~2,000 generated images, 3 repetitions
    python benchmarks/latency.py --quick           # smoke run

The S3 server (moto) and the proxy each run in their own process, so their CPU is not the loader's
(they still share this machine's cores, which a real S3 does not). Every row runs in a fresh process
(benchmarks/measure.py). Writes its section of benchmarks/RESULTS.md (or --results).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import report  # noqa: E402
import workload  # noqa: E402

from imagenet_stream.storage import Store  # noqa: E402

BEGIN, END = "<!-- latency:begin -->", "<!-- latency:end -->"
_MOTO = ("from moto.server import ThreadedMotoServer; import logging, time; "
         "logging.getLogger('werkzeug').setLevel(logging.ERROR); "
         "s = ThreadedMotoServer(ip_address='127.0.0.1', port=0); s.start(); "
         "print(s.get_host_and_port()[1], flush=True); time.sleep(10 ** 6)")


def start(cmd: list[str]) -> tuple[subprocess.Popen, int]:
    """Start a server process that prints its port on a line of its own (other lines are skipped)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.strip().isdigit():
            return proc, int(line)
    raise RuntimeError(f"{cmd[:3]} exited without printing its port")


def upload(folder: str, endpoint: str) -> str:
    options = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint}}
    url = f"s3://bench-{uuid.uuid4().hex[:8]}/dataset"
    store = Store(url, options)
    store.fs.mkdir(url[len("s3://"):].split("/", 1)[0])
    for path in sorted(Path(folder).iterdir(), key=lambda p: (p.name == "index.json", p.name)):
        if path.is_file():
            store.put_file_atomic(path, path.name)
    return url


def measure(spec: dict[str, Any], work: Path) -> dict[str, Any]:
    path = work / f"spec-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, str(HERE / "measure.py"), str(path)], capture_output=True, text=True,
                          timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{spec}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--latencies", default="0,50,100", help="added milliseconds per request (0: none)")
    p.add_argument("--workers", default="0,1,2")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--options", default="{}", help="extra ImageNetStream options, JSON")
    p.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "imagenet-stream-bench"))
    p.add_argument("--results", default=str(HERE / "RESULTS.md"))
    p.add_argument("--quick", action="store_true", help="300 images, one repetition, 50 ms only, no results file")
    args = p.parse_args()
    if args.quick:
        args.count, args.reps, args.latencies, args.workers = 300, 1, "50", "0,2"
    work = Path(args.work)
    shards = workload.cached_shards(work, args.count)
    moto, moto_port = start([sys.executable, "-c", _MOTO])
    proxies: list[subprocess.Popen] = []
    rows: list[tuple[str, int, list[dict[str, Any]]]] = []
    try:
        endpoint = f"http://127.0.0.1:{moto_port}"
        url = upload(str(shards), endpoint)
        targets = [("local", None)]
        latencies = [int(x) for x in args.latencies.split(",")]
        if any(latencies) and 0 not in latencies:
            latencies.insert(0, 0)
        for ms in latencies:
            if ms == 0:
                targets.append(("S3", endpoint))
            # the proxy costs CPU on these shared cores (a real network does not): its row with no added
            # latency is the baseline of the latency rows, so their ratio is latency hiding alone
            proxy, port = start([sys.executable, str(HERE / "latency_proxy.py"), str(moto_port), str(ms)])
            proxies.append(proxy)
            targets.append((f"S3 via proxy + {ms} ms", f"http://127.0.0.1:{port}"))
        for name, where in targets:
            for workers in (int(x) for x in args.workers.split(",")):
                spec: dict[str, Any] = {"kind": "ours", "workers": workers, "batch_size": args.batch_size,
                                        "epochs": 2, "options": json.loads(args.options),
                                        "url": str(shards) if where is None else url}
                if where is not None:
                    spec["storage_options"] = {"key": "testing", "secret": "testing",
                                               "client_kwargs": {"endpoint_url": where}}
                runs = [measure(spec, work) for _ in range(args.reps)]
                rows.append((name, workers, runs))
                print(f"{name:>14} {workers} workers: " + ", ".join(f"{r['img_s']:.0f}" for r in runs) + " img/s",
                      flush=True)
    finally:
        for proc in [*proxies, moto]:
            proc.terminate()
            proc.wait(timeout=30)
    lines = table(rows, args)
    print("\n".join(lines))
    if not args.quick:
        report.replace_section(args.results, BEGIN, END, "\n".join(lines),
                               "\n## Object-store latency (`benchmarks/latency.py`)\n\n")


def table(rows: list[tuple[str, int, list[dict[str, Any]]]], args: argparse.Namespace) -> list[str]:
    base = {w: statistics.median(r["img_s"] for r in runs) for name, w, runs in rows if name == "S3"}
    proxied = {w: statistics.median(r["img_s"] for r in runs) for name, w, runs in rows
               if name == "S3 via proxy + 0 ms"}
    lines = [f"{args.count} generated images in shards of 250, batch {args.batch_size}, 2 epochs per run "
             f"(the steady rate inside epochs), median of {args.reps} runs (spread: min–max); options "
             f"{args.options}. Requests per image from `ds.stats()`.", "",
             "| source | workers | img/s | spread | vs S3 at the same workers | vs the proxy at 0 ms | "
             "requests / image | wait for bytes share |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, workers, runs in rows:
        rates = [r["img_s"] for r in runs]
        median = statistics.median(rates)
        stats = runs[-1].get("stats") or {}
        requests = stats.get("requests", 0) / max(1, stats.get("samples_yielded", 1))
        busy = sum(stats.get(k, 0) for k in ("iterate_ns", "outside_ns")) or 1
        ratio = f"{median / base[workers]:.2f}×" if workers in base and name.startswith("S3") else ""
        hiding = f"{median / proxied[workers]:.2f}×" if workers in proxied and "proxy" in name else ""
        lines.append(f"| {name} | {workers} | {median:.0f} | {min(rates):.0f}–{max(rates):.0f} | {ratio} | "
                     f"{hiding} | {requests:.3f} | {100 * stats.get('wait_ns', 0) / busy:.0f}% |")
    return lines


if __name__ == "__main__":
    main()

"""The sharder at scale: memory per record, worker memory, throughput and scratch disk, as N grows.

    python benchmarks/sharder_scale.py                       # N = 250k, 1M, 2M tiny images; ~25 min
    python benchmarks/sharder_scale.py --sizes 20000,100000  # quick
    python benchmarks/sharder_scale.py --realistic 1000      # only the throughput part

Two parts, each `imagenet-stream shard` run in its own process (the figures are its own):

1. **Throughput on realistic images** (the harness's generated ImageNet-like JPEGs, ~115 KB): the
   bare verify rate of one process (``verify_record`` on bytes in memory), then the sharder with
   ``--workers CORES`` on the same images as a folder tree and as a tar of per-synset tars. Target:
   the sharder >= 0.8 x (per-core verify rate x cores).
2. **Scale** (a tar of per-synset tars of N unique tiny JPEGs over >= 2,000 synsets, generated once
   and cached): peak RSS of the main process and of the workers (``VmHWM``), local scratch disk
   (``--tmp-dir``, sampled), wall time and images/s. The main process's growth per record is the
   slope of its peak over N. Target: <= 100 bytes per record; scratch <= a few shards per worker.

Writes its tables between the sharder-scale markers of benchmarks/RESULTS.md (``--results``).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import procstat  # noqa: E402
import report  # noqa: E402
import workload  # noqa: E402

from imagenet_stream.hierarchy import standard_space  # noqa: E402
from imagenet_stream.synthetic import tiny_jpeg  # noqa: E402

BEGIN, END = "<!-- sharder-scale:begin -->", "<!-- sharder-scale:end -->"


def _inner_tar(job: tuple[str, int, int]) -> bytes:
    wnid, count, seed = job
    rng = np.random.default_rng([seed, 11])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for n in range(count):
            data = tiny_jpeg(rng)
            info = tarfile.TarInfo(f"{wnid}_{n + 1}.JPEG")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tar_of_tars(path: Path, n: int, synsets: int, workers: int) -> Path:
    """``path``: ``n`` unique tiny JPEGs over ``synsets`` per-synset tars (cached once complete)."""
    if path.exists():
        return path
    wnids = standard_space("in21k").wnids[:synsets]
    per = [n // synsets + (1 if s < n % synsets else 0) for s in range(synsets)]
    tmp = path.with_suffix(".partial")
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as outer, ProcessPoolExecutor(workers) as pool:
        for wnid, data in zip(wnids, pool.map(_inner_tar, [(w, c, s) for s, (w, c) in enumerate(zip(wnids, per))],
                                            chunksize=8)):
            info = tarfile.TarInfo(f"{wnid}.tar")
            info.size = len(data)
            outer.addfile(info, io.BytesIO(data))
    tmp.rename(path)
    return path


def _folder_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def run_sharder(source: Path, out: Path, scratch: Path, workers: int, shard_size: int) -> dict:
    """One ``imagenet-stream shard`` run in a fresh process, sampled while it runs."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    cmd = [sys.executable, str(HERE / "shard_once.py"), str(source), str(out), "--workers", str(workers),
           "--shard-size", str(shard_size), "--tmp-dir", str(scratch)]
    env = {**os.environ, "SOURCE_DATE_EPOCH": "0"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = {"main": 0, "worker": 0, "scratch": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak["main"] = max(peak["main"], procstat.hwm(proc.pid))
            for child in procstat.descendants(proc.pid):
                peak["worker"] = max(peak["worker"], procstat.hwm(child))
            peak["scratch"] = max(peak["scratch"], _folder_bytes(scratch))
            done.wait(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    stdout, stderr = proc.communicate()
    done.set()
    thread.join()
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"the sharder failed:\n{stderr[-3000:]}")
    measured = json.loads(stdout.strip().splitlines()[-1])
    return {"seconds": seconds, "images_per_s": measured["seen"] / seconds, "kept": measured["kept"],
            "steady_per_s": measured["steady_per_s"] or measured["seen"] / max(measured["sharded_s"], 1e-9),
            "tasks_per_s": measured["seen"] / max(measured["sharded_s"], 1e-9), "listed_s": measured["listed_s"],
            "main_mb": peak["main"] / 1e6, "worker_mb": peak["worker"] / 1e6, "scratch_mb": peak["scratch"] / 1e6,
            "out_mb": _folder_bytes(out) / 1e6}


def baseline_mb() -> float:
    """Peak RSS of a process that imports what the sharder's CLI imports and does nothing."""
    code = ("import imagenet_stream.cli as c, imagenet_stream.sharding.coordinator, imagenet_stream.sharding.backends.local;"
            "c.build_parser(); import resource; print(open('/proc/self/status').read())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("VmHWM"))
    return int(line.split()[1]) * 1024 / 1e6


def bare_verify_rate(paths: list[str] | tuple[str, ...]) -> float:
    """Images per CPU-second of ``verify_record`` in one process, one pass over every image (the
    bytes read beforehand): exactly the verification the sharder does, without the sharder."""
    from imagenet_stream.sharding.records import SourceRecord
    from imagenet_stream.sharding.verify_image import VerifyConfig, verify_record

    blobs = [Path(p).read_bytes() for p in paths]
    config = VerifyConfig()
    start = time.process_time()
    for data in blobs:
        verify_record(SourceRecord(source="mem", wnid="n01440764", key="k", data=data), config)
    return len(blobs) / (time.process_time() - start)


def realistic(args: argparse.Namespace, cores: int) -> list[str]:
    root = Path(args.work) / workload.cache_name(args.realistic, 100)
    images = workload.generate(str(root), args.realistic, 100, workers=cores)
    verify = bare_verify_rate(images.paths)
    tar = Path(args.work) / f"realistic-{args.realistic}.tar"
    if not tar.exists():
        with tarfile.open(tar, "w") as outer:
            for wnid in images.classes():
                buf = io.BytesIO()
                with tarfile.open(fileobj=buf, mode="w") as inner:
                    for p, w in zip(images.paths, images.wnids):
                        if w == wnid:
                            inner.add(p, arcname=os.path.basename(p))
                info = tarfile.TarInfo(f"{wnid}.tar")
                info.size = buf.tell()
                buf.seek(0)
                outer.addfile(info, buf)
    rows = []
    for label, source in (("folder tree", Path(images.root)), ("tar of per-synset tars", tar)):
        r = run_sharder(source, Path(args.work) / "out-realistic", Path(args.work) / "scratch", cores, 100)
        ratio = r["steady_per_s"] / (verify * cores)
        rows.append(f"| {label} | {cores} | {r['steady_per_s']:.0f} | {r['images_per_s']:.0f} | {verify:.0f} | "
                    f"{ratio:.2f}× | {r['main_mb']:.0f} | {r['worker_mb']:.0f} | {r['scratch_mb']:.1f} |")
        print(rows[-1], flush=True)
    header = [f"Realistic images: {workload.describe(images)}; bare verify = `verify_record` (sha256 + the 1/8-scale "
              "draft check), one pass over every image's bytes in memory, per CPU-second of one process.", "",
              "Steady = the images of the shards finished after the first one, over the time from the first to "
              "the last (a long run's rate: no worker start-up, no tail); whole run = over the whole process, its "
              "start (imports, forkserver), listing and finalize included.", "",
              "| source layout | workers | sharder img/s (steady) | whole run img/s | bare verify img/s per core | "
              "steady / (verify × cores) (target ≥ 0.8×) | main peak MB | worker peak MB | scratch MB |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    return header + rows


def scale(args: argparse.Namespace, cores: int) -> list[str]:
    base = baseline_mb()
    rows, points = [], []
    for n in (int(x) for x in args.sizes.split(",")):
        source = tar_of_tars(Path(args.work) / f"tiny-{n}-{args.synsets}.tar", n, args.synsets, cores)
        r = run_sharder(source, Path(args.work) / "out-scale", Path(args.work) / "scratch", cores, 1000)
        points.append((n, r["main_mb"]))
        per_record = (r["main_mb"] - base) * 1e6 / n
        rows.append(f"| {n:,} | {args.synsets:,} | {r['seconds']:.0f} | {r['images_per_s']:.0f} | {r['main_mb']:.0f} | "
                    f"{per_record:.0f} | {r['worker_mb']:.0f} | {r['scratch_mb']:.0f} | {r['out_mb']:.0f} |")
        print(rows[-1], flush=True)
        shutil.rmtree(Path(args.work) / "out-scale", ignore_errors=True)
    slope = ""
    if len(points) >= 2:
        ns, mbs = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
        fit = np.polyfit(ns, mbs * 1e6, 1)[0]
        slope = (f"Main-process growth per record (least-squares slope of its peak over N): **{fit:.0f} bytes** "
                 f"(target ≤ 100).")
    header = [f"Tiny unique JPEGs (~600 bytes) in a tar of per-synset tars; `--workers {cores} --shard-size 1000`; "
              f"the imports alone peak at {base:.0f} MB.", "",
              "| images | synsets | wall s | img/s | main peak MB | (peak − imports) / image, bytes | worker peak MB "
              "| scratch peak MB | output MB |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    return header + rows + ["", slope]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="250000,1000000,2000000", help="N of the scale part (comma-separated)")
    p.add_argument("--synsets", type=int, default=2000)
    p.add_argument("--realistic", type=int, default=4000, help="images of the throughput part (0: skip it)")
    p.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "imagenet-stream-bench"))
    p.add_argument("--results", default=str(HERE / "RESULTS.md"))
    p.add_argument("--no-results", action="store_true", help="print only")
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    cores = os.cpu_count() or 1
    started = time.time()
    lines = [f"Command: `python benchmarks/sharder_scale.py --sizes {args.sizes} --realistic {args.realistic}`  ",
             f"Date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}  ", f"Machine: {cores} cores", ""]
    if args.realistic:
        lines += realistic(args, cores) + [""]
    if args.sizes:
        lines += scale(args, cores)
    lines += ["", f"Run time: {time.time() - started:.0f} s"]
    print("\n".join(lines))
    if not args.no_results:
        report.replace_section(args.results, BEGIN, END, "\n".join(lines),
                               "## Sharder at scale (`benchmarks/sharder_scale.py`)\n\n")


if __name__ == "__main__":
    main()

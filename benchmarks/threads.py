"""Threads instead of processes: ImageNetStream decoding on ``decode_threads`` threads inside the
training process (``num_workers=0``) against DataLoader worker processes, from a local folder:
images per second, CPU seconds per image and the peak RSS of the whole process tree; and each way
with ``batched=True`` (whole batches decoded into one tensor, no collate copy).

    python benchmarks/threads.py            # ~2,000 generated images, 3 repetitions
    python benchmarks/threads.py --quick    # smoke run

Every row runs in a fresh process (benchmarks/measure.py: one torch thread, as in a DataLoader
worker). Writes its section of benchmarks/RESULTS.md (or --results).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import report  # noqa: E402
import workload  # noqa: E402
from latency import measure  # noqa: E402

BEGIN, END = "<!-- threads:begin -->", "<!-- threads:end -->"
ROWS: tuple[tuple[str, int, dict[str, Any]], ...] = (
    ("num_workers=0", 0, {}), ("num_workers=0, decode_threads=2", 0, {"decode_threads": 2}),
    ("num_workers=2", 2, {}), ("num_workers=1, decode_threads=2", 1, {"decode_threads": 2}),
    ("num_workers=2, batched", 2, {"batched": True}),
    ("num_workers=0, decode_threads=2, batched", 0, {"decode_threads": 2, "batched": True}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "imagenet-stream-bench"))
    p.add_argument("--results", default=str(HERE / "RESULTS.md"))
    p.add_argument("--quick", action="store_true", help="300 images, one repetition, no results file")
    args = p.parse_args()
    if args.quick:
        args.count, args.reps = 300, 1
    work = Path(args.work)
    shards = workload.cached_shards(work, args.count)
    results: list[tuple[str, list[dict[str, Any]]]] = []
    for label, workers, options in ROWS:
        spec = {"kind": "ours", "workers": workers, "batch_size": args.batch_size, "epochs": 2, "url": str(shards),
                "options": options}
        runs = [measure(spec, work) for _ in range(args.reps)]
        results.append((label, runs))
        print(f"{label:>34}: " + ", ".join(f"{r['img_s']:.0f}" for r in runs) + " img/s", flush=True)
    lines = table(results, args)
    print("\n".join(lines))
    if not args.quick:
        report.replace_section(args.results, BEGIN, END, "\n".join(lines),
                               "\n## Threads instead of processes (`benchmarks/threads.py`)\n\n")


def table(results: list[tuple[str, list[dict[str, Any]]]], args: argparse.Namespace) -> list[str]:
    rate = {label: statistics.median(r["img_s"] for r in runs) for label, runs in results}
    rss = {label: statistics.median(r["peak_tree_rss"] for r in runs) for label, runs in results}
    base = "num_workers=2"
    lines = [f"{args.count} generated images (ImageNet-like sizes) in shards of 250, local folder, batch "
             f"{args.batch_size}, TrainTransform 224, 2 epochs per run; median of {args.reps} runs (spread "
             "min–max). Peak RSS: the whole process tree's, sampled every 50 ms. 2 cores.", "",
             f"| configuration | img/s | spread | vs {base} | CPU ms / image | peak tree RSS MB | RSS vs {base} |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for label, runs in results:
        rates = [r["img_s"] for r in runs]
        cpu = statistics.median(1000 / r["img_per_cpu_s"] for r in runs if r["img_per_cpu_s"])
        lines.append(f"| {label} | {rate[label]:.0f} | {min(rates):.0f}–{max(rates):.0f} | "
                     f"{rate[label] / rate[base]:.2f}× | {cpu:.2f} | {rss[label] / 2**20:.0f} | "
                     f"{rss[label] / rss[base]:.2f}× |")
    return lines


if __name__ == "__main__":
    main()

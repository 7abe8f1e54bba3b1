"""Measure one contender in a fresh process: ``python benchmarks/measure.py SPEC.json``; prints one JSON line.

A fresh process per contender keeps each one's memory figures its own (``VmHWM`` never goes down)
and starts every loader cold. Spec kinds:

* ``bare``: ``bare_limit`` (benchmarks/decode_limit.py) over ``images`` files' bytes for ``seconds``,
  for our ``TrainTransform``, the stock full-decode PIL path and the full decode alone.
* anything in :data:`loaders.BUILDERS`: import the contender's libraries (timed apart, ``import_s``),
  iterate the DataLoader for ``epochs`` epochs (persistent workers) and report time to first batch
  (from building the dataset to its first batch), throughput after the first batch, CPU seconds of the
  whole process tree, its peak RSS, and every process's RSS at the end of each epoch; then, with
  ``bare_images``, the bare limit again in this process (``bare``), so each contender has a limit
  measured right beside it (load from other processes drifts over a run).
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import procstat
import torch


def measure_bare(spec: dict[str, Any]) -> dict[str, Any]:
    from decode_limit import bare_limit

    jpegs = [Path(p).read_bytes() for p in spec["images"]]
    seconds = float(spec["seconds"])
    return {name: bare_limit(jpegs, seconds, name) for name in ("train", "naive", "decode")}


def _cpu(pids: list[int]) -> float:
    return sum(procstat.cpu_seconds(p) for p in pids)


def measure_loader(spec: dict[str, Any]) -> dict[str, Any]:
    """Iterate the contender for ``epochs`` epochs; every time is taken at a batch's arrival.

    ``img_s`` is the steady rate inside epochs (from each epoch's first batch to its last);
    ``img_s_overall`` also counts the restarts between epochs (a DataLoader refills its workers'
    pipeline at every epoch: about one batch per worker, a fixed cost that a real ImageNet epoch
    of 1.28 M images amortizes and a benchmark epoch of a few thousand does not).
    """
    from loaders import BUILDERS, LIBRARIES

    t_import = time.perf_counter()
    for module in LIBRARIES.get(spec["kind"], ()):
        importlib.import_module(module)
    import_s = time.perf_counter() - t_import
    me = os.getpid()
    epochs = int(spec["epochs"])
    with procstat.PeakSampler(me, interval=0.05) as sampler:
        rss_before = procstat.rss(me)
        start = time.perf_counter()
        loader, set_epoch = BUILDERS[spec["kind"]](spec)
        first_batch_s = None
        t_first = cpu_first = main_first = 0.0
        pids: list[int] = [me]
        worker_rss: list[list[int]] = []
        main_rss: list[int] = []
        per_epoch: list[tuple[int, int, float]] = []  # (images, images after the first batch, seconds between)
        for epoch in range(epochs):
            set_epoch(epoch)
            count = first_size = 0
            t0 = t1 = 0.0
            for images_batch, targets in loader:
                now = time.perf_counter()
                if images_batch.dtype != torch.uint8 or images_batch.shape[1:] != (3, 224, 224):
                    raise RuntimeError(f"{spec['kind']}: unexpected batch {images_batch.dtype} "
                                       f"{tuple(images_batch.shape)}")
                if first_batch_s is None:
                    t_first = now
                    first_batch_s = t_first - start
                    pids = procstat.tree(me)
                    cpu_first = _cpu(pids)
                    main_first = procstat.cpu_seconds(me)
                if count == 0:
                    t0, first_size = now, len(targets)
                count += len(targets)
                t1 = now
            per_epoch.append((count, count - first_size, t1 - t0))
            pids = procstat.tree(me)  # persistent workers: the same processes every epoch
            worker_rss.append([procstat.rss(p) for p in pids[1:]])
            main_rss.append(procstat.rss(me))
        t_end = time.perf_counter()
        cpu_end = _cpu(pids)
        main_end = procstat.cpu_seconds(me)
        hwm = {str(p): procstat.hwm(p) for p in pids}
        stats_of = getattr(getattr(loader, "dataset", None), "stats", None)
        stats = stats_of() if callable(stats_of) else None  # ImageNetStream's counters (requests, stage clocks)
        del loader
    if first_batch_s is None:
        raise RuntimeError(f"{spec['kind']}: the loader yielded no batch")
    bare = None
    if spec.get("bare_images"):  # after the loader: its memory figures stay its own
        from decode_limit import bare_limit

        bare = bare_limit([Path(p).read_bytes() for p in spec["bare_images"]], float(spec["bare_seconds"]))
    images = sum(e[0] for e in per_epoch)
    after_first = images - per_epoch[0][0] + per_epoch[0][1]
    inside = sum(e[1] for e in per_epoch)
    inside_s = sum(e[2] for e in per_epoch)
    return {
        "images": images,
        "epochs": epochs,
        "bare": bare,
        "first_batch_s": first_batch_s,
        "import_s": import_s,
        "img_s": inside / inside_s if inside_s > 0 else 0.0,
        "img_s_overall": after_first / (t_end - t_first) if t_end > t_first else 0.0,
        "cpu_s": cpu_end - cpu_first,
        "cpu_main_s": main_end - main_first,
        "wall_s": t_end - t_first,
        "img_per_cpu_s": after_first / (cpu_end - cpu_first) if cpu_end > cpu_first else 0.0,
        "epoch_images": [e[0] for e in per_epoch],
        "epoch_s": [e[2] for e in per_epoch],
        "processes": len(pids),
        "peak_tree_rss": sampler.peak,
        "rss_before": rss_before,
        "hwm": hwm,
        "main_rss": main_rss,
        "worker_rss": worker_rss,
        "stats": stats,
    }


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    torch.set_num_threads(1)  # one core per process, as DataLoader workers do
    result = measure_bare(spec) if spec["kind"] == "bare" else measure_loader(spec)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

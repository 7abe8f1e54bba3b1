"""Watch a stream while it trains: every ``every`` seconds, rank 0 logs the samples per second and
where the loader's time went since the last line (:mod:`.stage_times`), and writes them as
TensorBoard scalars when given a writer (or a ``log_dir`` and ``torch.utils.tensorboard`` imports).

    monitor = StreamMonitor(ds, every=60, log_dir="runs/exp1")
    for images, targets in monitor(loader):
        ...

A line reads ``stream: 2311 samples/s; wait for bytes 3%, decode 61%, transform 22%, other 6%,
collate and consumer 8%``: much *wait for bytes* means storage is the bottleneck (more prefetch, a
cache, more workers), *decode*/*transform* the CPU (more workers, a smaller crop), and *collate and
consumer* a main process or model slower than the workers.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from imagenet_stream.streaming.launch_env import detect_rank_world
from imagenet_stream.streaming.stage_times import STAGE_COUNTERS, breakdown

log = logging.getLogger("imagenet_stream.monitor")


class StreamMonitor:
    """Periodic throughput and stage breakdown of ``dataset`` (an ``ImageNetStream``)."""

    def __init__(self, dataset: Any, every: float = 60.0, *, writer: Any = None, log_dir: str | None = None,
                 logger: logging.Logger | None = None, tag: str = "imagenet_stream") -> None:
        self.dataset, self.every, self.tag = dataset, float(every), tag
        self.log = logger or log
        self.writer = writer if writer is not None else _tensorboard(log_dir)
        self.step = 0
        self._last_time = time.perf_counter()
        self._last_stats: Mapping[str, int] = dataset.stats()

    def __call__(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """Yield from ``iterable`` (a DataLoader), reporting every ``every`` seconds."""
        for batch in iterable:
            yield batch
            self.tick()

    def tick(self) -> dict[str, float] | None:
        """Count a step; report when ``every`` seconds passed since the last report (rank 0 only)."""
        self.step += 1
        now = time.perf_counter()
        if now - self._last_time < self.every:
            return None
        return self.report(now)

    def report(self, now: float | None = None) -> dict[str, float] | None:
        """Log (and write) the figures since the last report; None on ranks other than 0."""
        now = time.perf_counter() if now is None else now
        stats = self.dataset.stats()
        delta = {k: stats.get(k, 0) - self._last_stats.get(k, 0) for k in ("samples_yielded", *STAGE_COUNTERS)}
        figures = breakdown(delta, now - self._last_time)
        self._last_time, self._last_stats = now, stats
        if detect_rank_world()[0] != 0:
            return None
        rate = figures.pop("samples_per_second")
        total = sum(figures.values()) or 1.0
        shares = {name: value / total for name, value in figures.items()}
        self.log.info("stream: %.0f samples/s; %s", rate,
                      ", ".join(f"{name.replace('_', ' ')} {100 * share:.0f}%" for name, share in shares.items()))
        if self.writer is not None:
            self.writer.add_scalar(f"{self.tag}/samples_per_second", rate, self.step)
            for name, share in shares.items():
                self.writer.add_scalar(f"{self.tag}/share_{name}", share, self.step)
        return {"samples_per_second": rate, **shares}


def _tensorboard(log_dir: str | None) -> Any:
    if log_dir is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("StreamMonitor(log_dir=...) needs the tensorboard package (pip install tensorboard); "
                    "logging only")
        return None
    return SummaryWriter(log_dir)


__all__ = ["StreamMonitor"]

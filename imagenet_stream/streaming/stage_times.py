"""Where a stream's time goes: per-stage clocks kept as counters (nanoseconds, summed over the main
process and every DataLoader worker, like :meth:`ImageNetStream.stats`), and their breakdown.

Stages, measured inside each iterator:

* ``wait_ns``: waiting for shard bytes (the reader's queue was empty: storage is behind);
* ``decode_ns``: JPEG decoding (the region decoder, or Pillow);
* ``transform_ns``: the rest of the transform (resize, flip, conversion; a custom transform whole);
* ``iterate_ns``: all the time inside the iterator (the three above, plus locating samples in the
  plan, slicing bytes and substituting bad samples: "other");
* ``outside_ns``: between handing a sample out and being asked for the next one: the DataLoader's
  collate (and, with ``num_workers=0``, the training step itself).

``iterate_ns + outside_ns`` is each iterator's wall time from its first sample to its last.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Mapping

STAGE_COUNTERS = ("wait_ns", "decode_ns", "transform_ns", "iterate_ns", "outside_ns")

_local = threading.local()


def add_decode(ns: int) -> None:
    """Called by the decoders: ``ns`` spent decoding on this thread."""
    _local.decode = getattr(_local, "decode", 0) + ns


def decode_clock() -> int:
    """Nanoseconds this thread has spent decoding so far."""
    return getattr(_local, "decode", 0)


class DecodeTimer:
    """``with DecodeTimer(): ...``: the block's time counts as decoding on this thread."""

    __slots__ = ("_start",)

    def __enter__(self) -> None:
        self._start = time.perf_counter_ns()

    def __exit__(self, *exc: object) -> None:
        add_decode(time.perf_counter_ns() - self._start)


def breakdown(stats: Mapping[str, int], wall_seconds: float | None = None) -> dict[str, float]:
    """Seconds per stage from ``ds.stats()`` (``other`` = iterating minus the measured stages), and
    with ``wall_seconds`` (the consumer's own clock) the throughput in samples per second."""
    s = {name: stats.get(name, 0) / 1e9 for name in STAGE_COUNTERS}
    out = {"wait_for_bytes": s["wait_ns"], "decode": s["decode_ns"], "transform": s["transform_ns"],
           "other": max(0.0, s["iterate_ns"] - s["wait_ns"] - s["decode_ns"] - s["transform_ns"]),
           "collate_and_consumer": s["outside_ns"]}
    if wall_seconds:
        out["samples_per_second"] = stats.get("samples_yielded", 0) / wall_seconds
    return out


def format_breakdown(stats: Mapping[str, int], wall_seconds: float | None = None) -> str:
    """One line: each stage's share of the iterators' time (summed over workers) and its seconds."""
    parts = breakdown(stats, wall_seconds)
    rate = parts.pop("samples_per_second", None)
    total = sum(parts.values()) or 1.0
    line = ", ".join(f"{name.replace('_', ' ')} {100 * sec / total:.0f}% ({sec:.2f} s)" for name, sec in parts.items())
    return line + (f"; {rate:.1f} samples/s" if rate is not None else "")


__all__ = ["STAGE_COUNTERS", "DecodeTimer", "add_decode", "breakdown", "decode_clock", "format_breakdown"]

"""Streaming one epoch through a DataLoader with a progress bar (shared by ``bench`` and ``demo``)."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass
class EpochRun:
    """What streaming an epoch (or its first ``max_batches`` batches) measured."""

    images: int
    batches: int
    seconds: float
    first_batch_seconds: float | None
    first_batch: Any = None

    @property
    def images_per_second(self) -> float:
        return self.images / max(self.seconds, 1e-9)


def _shares(stats: Mapping[str, int]) -> str:
    """The stages' shares for a progress bar: ``wait 12% decode 61% ...``."""
    from imagenet_stream.streaming.stage_times import breakdown

    parts = breakdown(stats)
    total = sum(parts.values()) or 1.0
    short = {"wait_for_bytes": "wait", "decode": "decode", "transform": "tf", "other": "other",
             "collate_and_consumer": "out"}
    return " ".join(f"{short[k]} {100 * v / total:.0f}%" for k, v in parts.items())


def stream_epoch(loader: Any, *, max_batches: int | None = None, desc: str = "stream",
                 no_progress: bool = False, count: Callable[[Any], int] = lambda b: len(b[0]),
                 stats: Callable[[], Mapping[str, int]] | None = None) -> EpochRun:
    """Iterate ``loader`` (a DataLoader) for one epoch with a tqdm bar showing img/s (and, given the
    dataset's ``stats``, where its time goes, refreshed twice a second)."""
    from tqdm import tqdm

    total = len(loader) if max_batches is None else min(max_batches, len(loader))
    images = batches = 0
    first: tuple[float, Any] | None = None
    start = time.perf_counter()
    shown = start - 1.0  # the first batch shows the stages at once
    stages = ""
    with tqdm(total=total, desc=desc, unit="batch", file=sys.stderr, dynamic_ncols=True,
              disable=no_progress) as bar:
        for batch in loader:
            if batches == total:
                break
            images += count(batch)
            batches += 1
            if first is None:
                first = (time.perf_counter() - start, batch)
            bar.update(1)
            now = time.perf_counter()
            postfix = {"img_s": f"{images / max(now - start, 1e-9):.0f}"}
            if stats is not None and now - shown >= 0.5:
                shown, stages = now, _shares(stats())
            if stages:
                postfix["stages"] = stages
            bar.set_postfix(postfix)
    return EpochRun(images, batches, time.perf_counter() - start,
                    first[0] if first else None, first[1] if first else None)

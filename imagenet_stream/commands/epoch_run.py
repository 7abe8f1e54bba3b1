"""Streaming one epoch through a DataLoader with a progress bar (shared by ``bench`` and ``demo``)."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
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


def stream_epoch(loader: Any, *, max_batches: int | None = None, desc: str = "stream",
                 no_progress: bool = False, count: Callable[[Any], int] = lambda b: len(b[0])) -> EpochRun:
    """Iterate ``loader`` (a DataLoader) for one epoch with a tqdm bar showing img/s."""
    from tqdm import tqdm

    total = len(loader) if max_batches is None else min(max_batches, len(loader))
    images = batches = 0
    first: tuple[float, Any] | None = None
    start = time.perf_counter()
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
            bar.set_postfix(img_s=f"{images / max(time.perf_counter() - start, 1e-9):.0f}")
    return EpochRun(images, batches, time.perf_counter() - start,
                    first[0] if first else None, first[1] if first else None)

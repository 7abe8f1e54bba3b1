"""The epoch's global order: one sequence of the epoch's samples, the same on every rank. Pure.

Built from the per-shard counts of a :class:`~.sampleset.SampleSet`:

1. **Shard order**: ``default_rng([seed, epoch, 0]).permutation(num_shards)`` (manifest order
   without ``shuffle``). The *sequence* is the shards' drawn samples concatenated in that order.
2. **Windows**: every ``window`` consecutive shards of the sequence form a window.
3. **Chunks**: each window's positions are cut into chunks of ``chunk`` consecutive samples (its
   last one may be shorter), and the chunks are permuted within the window by
   ``default_rng([seed, epoch, 1, window])``. A chunk is one run of consecutive sequence positions:
   one contiguous in-shard range for each shard it touches (one, or two at a shard's end), read with
   one request each.

Order position ``q`` of an epoch of ``M`` samples maps to ``(shard, i)``: the ``i``-th drawn sample of
``shard``. :meth:`EpochOrder.locate` computes it for any positions in ``O(len + log shards)`` with a
small per-window table, so no process ever lists the epoch.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from imagenet_stream.errors import PlanError
from imagenet_stream.streaming.plan.world import check_int

_WINDOW_CACHE = 16


@dataclass(frozen=True)
class OrderSpec:
    """What fixes an epoch's order besides its counts (identical on every rank and worker)."""

    seed: int
    epoch: int
    shuffle: bool = True
    window: int = 64      # shards whose chunks are mixed together
    chunk: int = 16       # consecutive samples read together

    def __post_init__(self) -> None:
        check_int("seed", self.seed, 0)
        check_int("epoch", self.epoch, 0)
        check_int("shuffle_window", self.window, 1)
        check_int("chunk", self.chunk, 1)


class EpochOrder:
    """The global order of one epoch over shards contributing ``counts[s]`` samples each."""

    def __init__(self, counts: np.ndarray, spec: OrderSpec) -> None:
        counts = np.asarray(counts, dtype=np.int64)
        if counts.ndim != 1 or np.any(counts < 0):
            raise PlanError("counts must be a flat array of integers >= 0")
        self.spec = spec
        n = len(counts)
        self.shard_order = (np.random.default_rng([spec.seed, spec.epoch, 0]).permutation(n).astype(np.int64)
                            if spec.shuffle else np.arange(n, dtype=np.int64))
        self.seq_starts = np.concatenate([[0], np.cumsum(counts[self.shard_order])]).astype(np.int64)
        self.total = int(self.seq_starts[-1])
        self.window_starts = np.concatenate([self.seq_starts[:-1:spec.window], [self.total]]).astype(np.int64)
        if n == 0:
            self.window_starts = np.zeros(1, dtype=np.int64)
        self._windows: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def __len__(self) -> int:
        return self.total

    def _window(self, w: int) -> tuple[np.ndarray, np.ndarray]:
        """``(permutation of the window's chunks, start offset of each in permuted order + end)``."""
        found = self._windows.get(w)
        if found is not None:
            self._windows.move_to_end(w)
            return found
        size = int(self.window_starts[w + 1] - self.window_starts[w])
        c = self.spec.chunk
        k = -(-size // c)
        perm = np.random.default_rng([self.spec.seed, self.spec.epoch, 1, w]).permutation(k).astype(np.int64)
        sizes = np.full(k, c, dtype=np.int64)
        if k:
            sizes[-1] = size - (k - 1) * c
        cum = np.concatenate([[0], np.cumsum(sizes[perm])]).astype(np.int64)
        self._windows[w] = (perm, cum)
        while len(self._windows) > _WINDOW_CACHE:
            self._windows.popitem(last=False)
        return perm, cum

    def sequence_positions(self, positions: np.ndarray) -> np.ndarray:
        """Order positions -> sequence positions (the chunk permutation undone)."""
        q = np.asarray(positions, dtype=np.int64)
        if q.size and (int(q.min()) < 0 or int(q.max()) >= self.total):
            raise PlanError(f"order positions must lie in [0, {self.total})")
        if not self.spec.shuffle or q.size == 0:
            return q.copy()
        w = np.searchsorted(self.window_starts, q, side="right") - 1
        out = np.empty_like(q)
        for window in np.unique(w).tolist():
            mask = w == window
            perm, cum = self._window(window)
            offset = q[mask] - self.window_starts[window]
            j = np.searchsorted(cum, offset, side="right") - 1
            out[mask] = self.window_starts[window] + perm[j] * self.spec.chunk + (offset - cum[j])
        return out

    def locate(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(shard, i)`` of each order position: the ``i``-th drawn sample of ``shard``."""
        p = self.sequence_positions(positions)
        slot = np.searchsorted(self.seq_starts, p, side="right") - 1  # empty shards are skipped
        return self.shard_order[slot], p - self.seq_starts[slot]


__all__ = ["EpochOrder", "OrderSpec"]

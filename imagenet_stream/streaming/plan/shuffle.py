"""The two seeded permutations of an epoch: shard order (global) and within-window order (local).

Seeds follow the project convention ``numpy.random.default_rng([seed, epoch, ...])``:

* shard order: ``default_rng([seed, epoch, 0]).permutation(num_shards)`` — identical on every
  rank and worker;
* window ``k`` of worker ``w`` on rank ``r``: ``default_rng([seed, epoch, 1, r, w, k])``
  permutes that window's samples.

Windows: a worker's piece is a run-length sequence of *runs* — maximal stretches of the piece
lying inside one shard at consecutive positions (a wrap-around under ``partial="pad"`` also
starts a new run). Window ``k`` is runs ``[k*shuffle_window, (k+1)*shuffle_window)``. So every
window holds samples of at most ``shuffle_window`` runs, hence of at most ``shuffle_window``
distinct shards, each as one contiguous in-shard range: a reader buffers at most that much.
"""
from __future__ import annotations

import numpy as np


def shard_order(num_shards: int, *, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The epoch's shard order: a seeded permutation, or manifest order when not shuffling."""
    if not shuffle:
        return np.arange(num_shards, dtype=np.int64)
    return np.random.default_rng([seed, epoch, 0]).permutation(num_shards).astype(np.int64)


def window_bounds(run_starts: np.ndarray, length: int, shuffle_window: int) -> np.ndarray:
    """Offsets ``[0, ..., length]`` where windows of ``shuffle_window`` runs begin and end.

    ``run_starts`` is the sorted offsets (starting at 0) where each run of a piece begins.
    """
    if length == 0:
        return np.zeros(1, dtype=np.int64)
    starts = np.asarray(run_starts, dtype=np.int64)[::shuffle_window]
    return np.concatenate([starts, np.array([length], dtype=np.int64)])


def shuffle_windows(ids: np.ndarray, bounds: np.ndarray, *, seed: int, epoch: int,
                    rank: int, worker: int) -> np.ndarray:
    """Return a copy of ``ids`` with each window ``ids[bounds[k]:bounds[k+1]]`` permuted."""
    out = ids.copy()
    for k in range(len(bounds) - 1):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        rng = np.random.default_rng([seed, epoch, 1, rank, worker, k])
        out[lo:hi] = ids[lo:hi][rng.permutation(hi - lo)]
    return out

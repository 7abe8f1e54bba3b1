"""Global sample ids <-> (shard, index within shard), and grouping ids into byte-range runs.

A *global id* is a sample's position in the concatenation of all shards in manifest order:
shard ``s`` covers ids ``[cum[s], cum[s+1])`` with ``cum = [0, *cumsum(sample_counts)]``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from imagenet_stream.errors import PlanError


def counts_array(sample_counts: Sequence[int]) -> np.ndarray:
    """Validate ``sample_counts`` (non-negative integers) and return them as an int64 array."""
    values = list(sample_counts)
    if any(isinstance(v, (bool, np.bool_)) for v in values):
        raise PlanError(f"sample_counts must be integers, got {values!r}")
    array = np.asarray(values)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise PlanError(f"sample_counts must be a flat sequence of integers, got {values!r}")
    negative = np.flatnonzero(array < 0)
    if negative.size:
        first = int(negative[0])
        raise PlanError(f"sample_counts[{first}] must be >= 0, got {int(array[first])}")
    return array.astype(np.int64)


def shard_starts(counts: np.ndarray) -> np.ndarray:
    """``[0, *cumsum(counts)]``: shard ``s`` covers ``[starts[s], starts[s+1])``."""
    return np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(counts, dtype=np.int64)])


def locate(global_ids: np.ndarray, sample_counts: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Map global ids to ``(shard index, index within shard)``, both int64 arrays of ids' shape.

    Empty shards own no ids and are never returned. Ids outside ``[0, sum(sample_counts))``
    raise :class:`PlanError`.
    """
    starts = shard_starts(counts_array(sample_counts))
    ids = np.asarray(global_ids)
    if ids.size == 0:
        empty = np.zeros(ids.shape, dtype=np.int64)
        return empty, empty.copy()
    if not np.issubdtype(ids.dtype, np.integer):
        raise PlanError(f"global_ids must be integers, got dtype {ids.dtype}")
    ids = ids.astype(np.int64, copy=False)
    total = int(starts[-1])
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= total:
        bad = low if low < 0 else high
        raise PlanError(f"global id {bad} is outside [0, {total}) for these sample_counts")
    # side="right" skips empty shards (their start equals the next shard's start).
    shard = np.searchsorted(starts, ids, side="right").astype(np.int64) - 1
    return shard, ids - starts[shard]


def shard_runs(global_ids: np.ndarray, sample_counts: Sequence[int]) -> list[tuple[int, int, int]]:
    """Group ids into maximal runs ``(shard, start, stop)`` of consecutive in-shard indices.

    Runs come in the order the ids are used, so a reader can fetch one byte range per run and
    yield in order. Only ids that are adjacent in ``global_ids`` *and* consecutive within one
    shard share a run; sort a slice first (e.g. a shuffle window) to get its fewest runs.
    """
    ids = np.asarray(global_ids)
    if ids.ndim != 1:
        raise PlanError(f"global_ids must be one-dimensional, got shape {ids.shape}")
    shard, index = locate(ids, sample_counts)
    if shard.size == 0:
        return []
    breaks = np.flatnonzero((shard[1:] != shard[:-1]) | (index[1:] != index[:-1] + 1)) + 1
    firsts = np.concatenate([[0], breaks])
    lasts = np.concatenate([breaks, [shard.size]]) - 1
    return [(int(shard[f]), int(index[f]), int(index[l]) + 1) for f, l in zip(firsts, lasts)]

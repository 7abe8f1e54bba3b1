"""What a shard reader is told and what it yields: a shard's facts, the samples read (or missing in
their place), and how a shard's samples become tar byte ranges. Plain data, no I/O."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imagenet_stream.format import SideIndex


@dataclass(frozen=True)
class ShardInfo:
    """What the reader needs to know of one shard (from the manifest or discovered)."""

    name: str                    # object name under the store root
    num_samples: int
    bytes: int | None = None     # size of the tar, when known
    sha256: str | None = None    # of the tar, when known (verified by the cache)
    index: str | None = None     # side index object name
    index_bytes: int | None = None
    index_sha256: str | None = None
    data_store: int = 0          # which of the reader's stores holds the tar
    index_store: int = 0         # ... and its side index


@dataclass(frozen=True)
class RawSample:
    """One sample as fetched: where it is in the yield order and in the dataset, and its image bytes."""

    position: int                # index into the windows' concatenated order
    shard: int
    index: int                   # within the shard
    key: str
    label: int
    data: memoryview


@dataclass(frozen=True)
class MissingSample:
    """A sample of the yield order that could not be read (``reason``: ``"truncated"`` or ``"unreadable"``)."""

    position: int
    shard: int
    index: int
    reason: str


def byte_ranges(index: SideIndex, members: np.ndarray, merge_gap: int) -> list[tuple[np.ndarray, int, int]]:
    """Group sorted in-shard indices into ``(members, begin, end)`` tar byte ranges.

    Consecutive samples always share a range; two ranges are merged when the bytes between them
    are at most ``merge_gap`` (0: only adjacent samples share a request).
    """
    if members.size == 0:
        return []
    begins = index.offsets[members].astype(np.int64)
    ends = index.offsets[members + 1].astype(np.int64)
    breaks = np.flatnonzero(begins[1:] - ends[:-1] > merge_gap) + 1
    groups = np.split(np.arange(members.size), breaks)
    return [(members[g], int(begins[g[0]]), int(ends[g[-1]])) for g in groups]


__all__ = ["MissingSample", "RawSample", "ShardInfo", "byte_ranges"]

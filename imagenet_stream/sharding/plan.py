"""The shard plan: which listed record goes into which shard at which position. Pure: no I/O.

Fixed from ``(the listing, seed, options)`` alone, before any image is verified, so every worker
count, every backend and every resumed run computes the same plan:

1. Records whose wnid is outside the class space are left out (reported as ``unknown_class``).
2. The rest are put in *plan order* by ``default_rng([seed, 0]).permutation(n)``: classes mix.
3. Plan order is cut into consecutive shards of at most ``shard_size`` records and at most
   ``max_shard_bytes`` of *planned* tar bytes (from the listed source sizes; a converted image
   can change size, so the written shard may differ slightly); a record alone larger than the
   limit gets a shard of its own.
4. Keys are unique: a key already used earlier in plan order gets a ``-1``, ``-2``... suffix.

A shard task writes its planned records in plan order; a record rejected by verification just
leaves its shard shorter, so the assignment of every other record never moves.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from imagenet_stream.errors import ConfigError
from imagenet_stream.format import dedupe_key

#: Bumped whenever the algorithm changes, so old markers are never mistaken for the new plan.
PLAN_ALGORITHM = 1
#: Tar bytes a sample adds beyond its image: three headers, a .cls and a .msgpack member, padding.
SAMPLE_OVERHEAD = 3 * 512 + 512 + 1024
_BLOCK = 512
_RECORD = 20 * _BLOCK


def key_hash(key: str) -> int:
    """A 64-bit hash of a key (equal hashes are resolved by comparing the keys themselves)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")


#: The listing's "size unknown until read" marker (its sizes are uint32).
UNKNOWN = np.iinfo(np.uint32).max


def planned_bytes(sizes: np.ndarray) -> np.ndarray:
    """Estimated tar bytes of each sample from its source size (unknown sizes count as 0)."""
    sizes = np.asarray(sizes).astype(np.int64)
    known = np.where(sizes == UNKNOWN, 0, sizes)
    return -(-known // _BLOCK) * _BLOCK + SAMPLE_OVERHEAD


@dataclass(frozen=True, eq=False)
class ShardPlan:
    """``records[shard_starts[s]:shard_starts[s+1]]`` are shard ``s``'s listing indices, in order."""

    records: np.ndarray           # uint32 (or uint64): listing indices in plan order (kept records only)
    shard_starts: np.ndarray      # int64 [num_shards + 1]
    left_out: np.ndarray          # int64: listing indices outside the class space
    renamed: dict[int, str] = field(default_factory=dict)  # plan position -> its deduplicated key

    @property
    def num_shards(self) -> int:
        return len(self.shard_starts) - 1

    @property
    def num_records(self) -> int:
        return len(self.records)

    def shard(self, number: int) -> tuple[int, np.ndarray]:
        """``(first plan position, listing indices)`` of shard ``number``."""
        lo, hi = int(self.shard_starts[number]), int(self.shard_starts[number + 1])
        return lo, self.records[lo:hi]


def cut_shards(sizes_in_plan_order: np.ndarray, shard_size: int, max_shard_bytes: int) -> np.ndarray:
    """Shard start positions ``[0, ..., n]``: greedy, at most ``shard_size`` records and
    ``max_shard_bytes`` planned bytes per shard (a lone record over the limit still gets one).

    Works one shard's window at a time, so its memory is a shard's, not the listing's.
    """
    if shard_size < 1 or max_shard_bytes < 1:
        raise ConfigError(f"shard_size and max_shard_bytes must be >= 1, got {shard_size}, {max_shard_bytes}")
    sizes = sizes_in_plan_order
    n = len(sizes)
    budget = max_shard_bytes - 2 * _BLOCK  # the end-of-archive blocks
    starts = [0]
    lo = 0
    while lo < n:
        window = np.cumsum(planned_bytes(sizes[lo:lo + shard_size]))
        hi = lo + max(1, int(np.searchsorted(window, budget, side="right")))
        # the closed tar is padded to a whole record: step back while that padding overflows
        while hi - lo > 1 and -(-(int(window[hi - lo - 1]) + 2 * _BLOCK) // _RECORD) * _RECORD > max_shard_bytes:
            hi -= 1
        starts.append(hi)
        lo = hi
    return np.asarray(starts, dtype=np.int64)


def dedupe_keys(key_hashes: np.ndarray, records: np.ndarray, key_of: Callable[[int], str]) -> dict[int, str]:
    """New keys for the plan positions whose key is already taken earlier in plan order.

    ``key_hashes`` are in listing order, ``records`` the listing indices in plan order; ``key_of``
    (listing index -> key) is called only for records whose hash is shared. Memory: one sorted copy
    of the hashes.
    """
    n = len(records)
    if n < 2:
        return {}
    planned = np.sort(key_hashes[records])
    dup_values = np.unique(planned[1:][planned[1:] == planned[:-1]])
    if dup_values.size == 0:
        return {}
    shared = np.isin(key_hashes, dup_values)  # one byte a record
    positions = np.flatnonzero(shared[records])  # plan positions, ascending
    del shared

    def listed(h: int) -> bool:
        i = int(np.searchsorted(planned, np.uint64(h)))
        return i < n and int(planned[i]) == h

    taken_hashes = set()
    renamed: dict[int, str] = {}
    seen: dict[str, int] = {}
    for position in positions.tolist():
        key = key_of(int(records[position]))
        if key not in seen:
            seen[key] = position
            continue
        k = 1
        while True:
            candidate = dedupe_key(key, k)
            h = key_hash(candidate)
            if candidate not in seen and h not in taken_hashes and not listed(h):
                break
            k += 1
        seen[candidate] = position
        taken_hashes.add(h)
        renamed[position] = candidate
    return renamed


def make_plan(wnid_ids: np.ndarray, in_space: np.ndarray, sizes: np.ndarray, key_hashes: np.ndarray,
              key_of: Callable[[int], str], *, seed: int, shard_size: int, max_shard_bytes: int) -> ShardPlan:
    """The plan of a listing given as columns (see the module docstring).

    ``in_space[w]`` says whether wnid id ``w`` is in the class space; ``key_of(i)`` gives the key of
    listing record ``i``. Indices are uint32 when the listing has fewer than 2**32 records.
    """
    wnid_ids = np.asarray(wnid_ids)
    keep = np.asarray(in_space, dtype=bool)[wnid_ids] if wnid_ids.size else np.zeros(0, bool)
    index_type = np.uint32 if len(keep) < np.iinfo(np.uint32).max else np.uint64
    kept = np.flatnonzero(keep).astype(index_type)
    left_out = np.flatnonzero(~keep).astype(np.int64)
    del keep
    records = np.random.default_rng([seed, 0]).permutation(kept)
    del kept
    starts = cut_shards(np.asarray(sizes)[records], shard_size, max_shard_bytes)
    renamed = dedupe_keys(np.asarray(key_hashes), records, key_of)
    records.setflags(write=False)
    return ShardPlan(records=records, shard_starts=starts, left_out=left_out, renamed=renamed)


__all__ = ["PLAN_ALGORITHM", "SAMPLE_OVERHEAD", "ShardPlan", "cut_shards", "dedupe_keys", "key_hash", "make_plan",
           "planned_bytes"]

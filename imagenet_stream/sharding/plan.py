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

from ..errors import ConfigError
from ..shards import dedupe_key

#: Bumped whenever the algorithm changes, so old markers are never mistaken for the new plan.
PLAN_ALGORITHM = 1
#: Tar bytes a sample adds beyond its image: three headers, a .cls and a .msgpack member, padding.
SAMPLE_OVERHEAD = 3 * 512 + 512 + 1024
_BLOCK = 512
_RECORD = 20 * _BLOCK


def key_hash(key: str) -> int:
    """A 64-bit hash of a key (equal hashes are resolved by comparing the keys themselves)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")


def planned_bytes(sizes: np.ndarray) -> np.ndarray:
    """Estimated tar bytes of each sample from its source size (unknown sizes count as 0)."""
    sizes = np.asarray(sizes, dtype=np.uint64)
    known = np.where(sizes == np.iinfo(np.uint64).max, 0, sizes).astype(np.int64)
    return -(-known // _BLOCK) * _BLOCK + SAMPLE_OVERHEAD


@dataclass(frozen=True, eq=False)
class ShardPlan:
    """``records[shard_starts[s]:shard_starts[s+1]]`` are shard ``s``'s listing indices, in order."""

    records: np.ndarray           # int64: listing indices in plan order (kept records only)
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
    ``max_shard_bytes`` planned bytes per shard (a lone record over the limit still gets one)."""
    if shard_size < 1 or max_shard_bytes < 1:
        raise ConfigError(f"shard_size and max_shard_bytes must be >= 1, got {shard_size}, {max_shard_bytes}")
    n = len(sizes_in_plan_order)
    budget = max_shard_bytes - 2 * _BLOCK  # the end-of-archive blocks
    cum = np.concatenate([np.zeros(1, np.int64), np.cumsum(planned_bytes(sizes_in_plan_order))])
    starts = [0]
    lo = 0
    while lo < n:
        by_bytes = int(np.searchsorted(cum, cum[lo] + budget, side="right")) - 1
        hi = min(lo + shard_size, max(by_bytes, lo + 1), n)
        # the closed tar is padded to a whole record: step back while that padding overflows
        while hi - lo > 1 and -(-(int(cum[hi] - cum[lo]) + 2 * _BLOCK) // _RECORD) * _RECORD > max_shard_bytes:
            hi -= 1
        starts.append(hi)
        lo = hi
    return np.asarray(starts, dtype=np.int64)


def dedupe_keys(key_hashes: np.ndarray, key_of: Callable[[int], str]) -> dict[int, str]:
    """New keys for the plan positions whose key is already taken earlier in plan order.

    ``key_hashes`` are in plan order; ``key_of(position)`` gives a key (called only for positions
    whose hash is shared, so memory stays one hash per record).
    """
    n = len(key_hashes)
    if n < 2:
        return {}
    order = np.argsort(key_hashes, kind="stable")  # equal hashes stay in plan order
    sorted_hashes = key_hashes[order]
    dup = np.flatnonzero(sorted_hashes[1:] == sorted_hashes[:-1])
    if dup.size == 0:
        return {}
    shared = np.unique(np.concatenate([order[dup], order[dup + 1]]))
    taken_hashes = set()
    renamed: dict[int, str] = {}
    seen: dict[str, int] = {}

    def listed(h: int) -> bool:
        i = int(np.searchsorted(sorted_hashes, np.uint64(h)))
        return i < n and int(sorted_hashes[i]) == h

    for position in sorted(shared.tolist()):
        key = key_of(position)
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
    listing record ``i``.
    """
    wnid_ids = np.asarray(wnid_ids)
    keep = np.asarray(in_space, dtype=bool)[wnid_ids] if wnid_ids.size else np.zeros(0, bool)
    kept = np.flatnonzero(keep).astype(np.int64)
    left_out = np.flatnonzero(~keep).astype(np.int64)
    records = kept[np.random.default_rng([seed, 0]).permutation(kept.size)]
    starts = cut_shards(np.asarray(sizes)[records], shard_size, max_shard_bytes)
    renamed = dedupe_keys(np.asarray(key_hashes)[records], lambda p: key_of(int(records[p])))
    records.setflags(write=False)
    return ShardPlan(records=records, shard_starts=starts, left_out=left_out, renamed=renamed)


__all__ = ["PLAN_ALGORITHM", "SAMPLE_OVERHEAD", "ShardPlan", "cut_shards", "dedupe_keys", "key_hash", "make_plan",
           "planned_bytes"]

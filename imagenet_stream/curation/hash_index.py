"""Every pair of 64-bit hashes within a Hamming distance, without comparing all pairs.

Multi-index hashing (Norouzi, Punjani & Fleet): the 64 bits are cut into ``m`` bands. Two hashes
within distance ``D`` differ in at most ``D // m`` bits of at least one band (if every band differed
in more, the total would exceed ``D``). So each query looks up, in every band, the stored hashes
whose band is within ``D // m`` bits of its own: an exact lookup of each of the few band values that
close (the *probes*), in the band's sorted array. Only those candidates get their full distance
computed. With about ``log2(n)`` bits per band a probe hits a handful of stored hashes, so the work
per query stays near ``m x probes x n / 2**bits`` instead of ``n``.

Memory: the hashes (8 bytes each) plus, per band, its sorted values (4 bytes) and their order
(4 bytes): about 32 bytes per stored hash with 3 bands; queries are processed in chunks. A band of
at most 24 bits also gets a table of where each band value starts in the sorted order (8 bytes per
possible value, 128 MB at 24 bits), so a probe is two array reads instead of a binary search.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np

from imagenet_stream.curation.phash import hamming
from imagenet_stream.errors import ConfigError

#: Probes held at once (a chunk's memory: ~50 bytes per probe and ~40 per candidate, one band at a time).
_PROBES_PER_CHUNK = 1 << 20
MAX_PROBES = 1 << 17
#: Bands up to this many bits get a direct table of bucket starts.
_DIRECT_BITS = 24


def default_bands(n: int) -> int:
    """Bands for ``n`` stored hashes: about ``log2(n)`` bits each, between 2 and 8 bands."""
    return int(min(8, max(2, round(64 / max(8.0, math.log2(max(n, 2)))))))


def _widths(bands: int) -> list[int]:
    base, extra = divmod(64, bands)
    return [base + (1 if b < extra else 0) for b in range(bands)]


def _probe_masks(width: int, radius: int) -> np.ndarray:
    """Every ``width``-bit mask of at most ``radius`` set bits (the XORs that reach the probes)."""
    masks = [0]
    for k in range(1, radius + 1):
        masks.extend(sum(1 << b for b in bits) for bits in itertools.combinations(range(width), k))
    return np.asarray(masks, dtype=np.uint32)


class HashIndex:
    """Stored hashes, indexed by bands; :meth:`pairs` finds every query-stored pair within a distance."""

    def __init__(self, hashes: np.ndarray, bands: int | None = None) -> None:
        self.hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
        if self.hashes.ndim != 1:
            raise ConfigError(f"hashes must be a 1-D array, got shape {self.hashes.shape}")
        self.bands = default_bands(len(self.hashes)) if bands is None else int(bands)
        if not 2 <= self.bands <= 32:
            raise ConfigError(f"bands must be in 2..32 (bands of at most 32 bits), got {bands}")
        self.widths = _widths(self.bands)
        self.shifts = [64 - sum(self.widths[:b + 1]) for b in range(self.bands)]
        self._sorted: list[np.ndarray] = []
        self._order: list[np.ndarray] = []
        self._starts: list[np.ndarray | None] = []
        index_type = np.uint32 if len(self.hashes) < (1 << 32) else np.uint64
        for b in range(self.bands):
            keys = self._band(self.hashes, b)
            order = np.argsort(keys, kind="stable").astype(index_type)
            self._order.append(order)
            self._sorted.append(keys[order])
            if self.widths[b] <= _DIRECT_BITS:
                counts = np.bincount(keys, minlength=1 << self.widths[b])
                self._starts.append(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
            else:
                self._starts.append(None)

    def __len__(self) -> int:
        return len(self.hashes)

    def _band(self, hashes: np.ndarray, b: int) -> np.ndarray:
        mask = np.uint64((1 << self.widths[b]) - 1)
        return ((hashes >> np.uint64(self.shifts[b])) & mask).astype(np.uint32)

    def probes_per_query(self, max_distance: int) -> int:
        radius = max_distance // self.bands
        return sum(sum(math.comb(w, k) for k in range(radius + 1)) for w in self.widths)

    def pairs(self, queries: np.ndarray, max_distance: int, *, exclude_self: bool = False
              ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(query index, stored index, distance)`` arrays, chunk by chunk, of every pair within
        ``max_distance`` bits (each pair once). ``exclude_self``: the queries are the stored hashes
        themselves; pairs ``(i, i)`` are dropped and each unordered pair is given once, as ``q < s``."""
        if not 0 <= max_distance <= 64:
            raise ConfigError(f"max distance must be in 0..64 bits, got {max_distance}")
        queries = np.ascontiguousarray(queries, dtype=np.uint64)
        if self.probes_per_query(max_distance) > MAX_PROBES:
            raise ConfigError(f"a max distance of {max_distance} bits needs {self.probes_per_query(max_distance):,} "
                              f"probes per query with {self.bands} bands; use more bands or a smaller distance")
        radius = max_distance // self.bands
        masks = [_probe_masks(w, radius) for w in self.widths]
        chunk = max(1, _PROBES_PER_CHUNK // max(len(m) for m in masks))
        for start in range(0, len(queries), chunk):
            block = queries[start:start + chunk]
            found_q, found_s, found_d = [], [], []
            for b in range(self.bands):  # each band's candidates filtered at once: memory stays per band
                q, s = self._candidates(block, b, masks[b])
                if exclude_self:
                    keep = s > q + start
                    q, s = q[keep], s[keep]
                distance = hamming(block[q], self.hashes[s])
                near = distance <= max_distance
                found_q.append(q[near])
                found_s.append(s[near])
                found_d.append(distance[near])
            q, s, distance = np.concatenate(found_q), np.concatenate(found_s), np.concatenate(found_d)
            if q.size:
                pair = np.unique(q * np.int64(len(self.hashes)) + s, return_index=True)[1]  # once per pair
                yield q[pair] + start, s[pair], distance[pair]

    def _candidates(self, block: np.ndarray, b: int, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(query, stored)`` index pairs whose band ``b`` differs by one of ``masks``."""
        probes = (self._band(block, b)[:, None] ^ masks[None, :]).ravel()
        starts = self._starts[b]
        if starts is not None:
            lo, hi = starts[probes], starts[probes.astype(np.int64) + 1]
        else:
            lo = np.searchsorted(self._sorted[b], probes, side="left")
            hi = np.searchsorted(self._sorted[b], probes, side="right")
        lengths = hi - lo
        total = int(lengths.sum())
        offsets = np.repeat(lo - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        stored = self._order[b][offsets + np.arange(total)].astype(np.int64)
        owner = np.repeat(np.arange(len(block), dtype=np.int64), len(masks))  # the query of each probe
        return np.repeat(owner, lengths), stored


def all_pairs(index: HashIndex, queries: np.ndarray, max_distance: int, *, exclude_self: bool = False
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of :meth:`HashIndex.pairs`, concatenated."""
    parts = list(index.pairs(queries, max_distance, exclude_self=exclude_self))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), np.zeros(0, dtype=np.uint8)
    return tuple(np.concatenate(p) for p in zip(*parts))  # type: ignore[return-value]


def groups_of(pairs_a: np.ndarray, pairs_b: np.ndarray) -> list[list[int]]:
    """Connected components (each sorted, listed by their smallest member) of the pairs' graph."""
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(pairs_a.tolist(), pairs_b.tolist()):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[int, list[int]] = {}
    for x in parent:
        members.setdefault(root(x), []).append(x)
    return sorted(sorted(g) for g in members.values())


__all__ = ["HashIndex", "MAX_PROBES", "all_pairs", "default_bands", "groups_of"]

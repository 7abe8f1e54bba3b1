"""The near-duplicate index against brute force, over many shapes, distances, band counts and seeds."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenet_stream.curation.hash_index import HashIndex, all_pairs, default_bands, groups_of
from imagenet_stream.curation.phash import hamming
from imagenet_stream.errors import ConfigError


def _hashes(rng: np.random.Generator, n: int, clusters: int) -> np.ndarray:
    """Random hashes, some of them near copies of a few centres (flipped bits), so pairs exist."""
    base = rng.integers(0, 2**63, size=n, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, n, dtype=np.uint64)
    if clusters:
        centres = base[:clusters]
        for i in range(clusters, n, 2):
            flips = rng.choice(64, size=int(rng.integers(0, 12)), replace=False)
            mask = np.uint64(sum(1 << int(f) for f in flips))
            base[i] = centres[i % clusters] ^ mask
    return base


def _brute(queries: np.ndarray, stored: np.ndarray, d: int, exclude_self: bool) -> set[tuple[int, int, int]]:
    dist = hamming(queries[:, None], stored[None, :])
    q, s = np.nonzero(dist <= d)
    return {(int(a), int(b), int(dist[a, b])) for a, b in zip(q, s) if not exclude_self or a < b}


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), m=st.integers(0, 120), d=st.integers(0, 14), bands=st.integers(2, 8),
       seed=st.integers(0, 2**32 - 1), clusters=st.integers(0, 6))
def test_pairs_equal_brute_force(n, m, d, bands, seed, clusters) -> None:
    rng = np.random.default_rng(seed)
    stored = _hashes(rng, n, min(clusters, n))
    queries = np.concatenate([_hashes(rng, m, 0), stored[rng.integers(0, n, size=min(m, n))] ^ np.uint64(1)])
    index = HashIndex(stored, bands=bands)
    if index.probes_per_query(d) > 200_000:
        return
    q, s, dist = all_pairs(index, queries, d)
    assert {(int(a), int(b), int(c)) for a, b, c in zip(q, s, dist)} == _brute(queries, stored, d, False)
    assert len(q) == len(set(zip(q.tolist(), s.tolist())))  # each pair once


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), d=st.integers(0, 12), seed=st.integers(0, 2**32 - 1), clusters=st.integers(0, 6))
def test_self_join_gives_each_unordered_pair_once(n, d, seed, clusters) -> None:
    stored = _hashes(np.random.default_rng(seed), n, min(clusters, n))
    stored[n // 2:] = stored[: n - n // 2]  # exact duplicates too
    q, s, dist = all_pairs(HashIndex(stored), stored, d, exclude_self=True)
    assert {(int(a), int(b), int(c)) for a, b, c in zip(q, s, dist)} == _brute(stored, stored, d, True)


def test_groups_are_connected_components() -> None:
    a = np.array([5, 1, 9, 3])
    b = np.array([1, 2, 3, 7])
    assert groups_of(a, b) == [[1, 2, 5], [3, 7, 9]]
    assert groups_of(np.zeros(0, np.int64), np.zeros(0, np.int64)) == []


def test_bands_follow_the_table_size_and_limits_are_explained() -> None:
    assert default_bands(14_200_000) == 3 and default_bands(1000) == 6 and default_bands(10) == 8
    with pytest.raises(ConfigError, match="probes"):
        list(HashIndex(np.zeros(4, np.uint64), bands=2).pairs(np.zeros(1, np.uint64), 40))
    with pytest.raises(ConfigError, match="bands"):
        HashIndex(np.zeros(4, np.uint64), bands=1)
    with pytest.raises(ConfigError, match="0..64"):
        list(HashIndex(np.zeros(4, np.uint64)).pairs(np.zeros(1, np.uint64), 65))

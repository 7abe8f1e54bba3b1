"""locate / shard_runs: hand examples, validation and round trips."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenet_stream.errors import PlanError
from imagenet_stream.streaming.plan import locate, shard_runs

COUNTS = [3, 0, 5, 2]  # shard 0: ids 0-2, shard 1: empty, shard 2: ids 3-7, shard 3: ids 8-9


def test_locate_skips_empty_shards() -> None:
    shard, index = locate(np.array([0, 2, 3, 7, 8, 9]), COUNTS)
    assert shard.tolist() == [0, 0, 2, 2, 3, 3]
    assert index.tolist() == [0, 2, 0, 4, 0, 1]
    assert shard.dtype == index.dtype == np.int64


def test_locate_keeps_shape_and_accepts_empty() -> None:
    shard, index = locate(np.array([[9, 0], [3, 4]]), COUNTS)
    assert shard.tolist() == [[3, 0], [2, 2]] and index.tolist() == [[1, 0], [0, 1]]
    shard, index = locate(np.zeros(0, dtype=np.int64), [])
    assert shard.size == index.size == 0


@pytest.mark.parametrize(("ids", "counts", "needle"), [
    ([10], COUNTS, "10"),
    ([-1, 3], COUNTS, "-1"),
    ([0], [0, 0], "outside [0, 0)"),
    (np.array([0.5]), COUNTS, "float"),
    ([0], [3, -2], "sample_counts[1] must be >= 0, got -2"),
    ([0], [1.5, 2], "1.5"),
    ([0], [True, 2], "True"),
])
def test_bad_ids_or_counts_raise_plan_error(ids, counts, needle: str) -> None:
    with pytest.raises(PlanError) as info:
        locate(np.asarray(ids), counts)
    assert needle in str(info.value)


def test_shard_runs_hand_example() -> None:
    ids = np.array([3, 4, 5, 0, 1, 9, 8, 6])
    assert shard_runs(ids, COUNTS) == [(2, 0, 3), (0, 0, 2), (3, 1, 2), (3, 0, 1), (2, 3, 4)]
    assert shard_runs(np.arange(10), COUNTS) == [(0, 0, 3), (2, 0, 5), (3, 0, 2)]
    assert shard_runs(np.zeros(0, dtype=np.int64), COUNTS) == []
    with pytest.raises(PlanError, match=r"\(2, 1\)"):
        shard_runs(np.zeros((2, 1), dtype=np.int64), COUNTS)


@st.composite
def counts_and_ids(draw):
    counts = draw(st.lists(st.integers(0, 30), min_size=1, max_size=10).filter(lambda c: sum(c) > 0))
    ids = draw(st.lists(st.integers(0, sum(counts) - 1), max_size=60))
    return counts, np.array(ids, dtype=np.int64)


@settings(max_examples=200, deadline=None)
@given(counts_and_ids())
def test_locate_round_trips(data) -> None:
    counts, ids = data
    shard, index = locate(ids, counts)
    starts = np.concatenate([[0], np.cumsum(counts)])
    assert np.array_equal(starts[shard] + index, ids)
    assert np.all(index >= 0) and np.all(index < np.array(counts)[shard])


@settings(max_examples=200, deadline=None)
@given(counts_and_ids())
def test_shard_runs_expand_back_and_are_maximal(data) -> None:
    counts, ids = data
    runs = shard_runs(ids, counts)
    starts = np.concatenate([[0], np.cumsum(counts)])
    expanded = [int(starts[s]) + i for s, lo, hi in runs for i in range(lo, hi)]
    assert expanded == ids.tolist()
    assert all(0 <= lo < hi <= counts[s] for s, lo, hi in runs)
    for (s1, _, hi1), (s2, lo2, _) in zip(runs, runs[1:]):
        assert not (s1 == s2 and hi1 == lo2)  # otherwise the two runs would be one

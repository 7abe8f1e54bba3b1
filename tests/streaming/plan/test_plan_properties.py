"""Property tests of the pure planner over many shapes and seeds: the global order is a permutation
whose chunks are contiguous reads; every (rank, worker) plan of an epoch tiles it exactly, with equal
counts; resuming from the consumed prefix in any other world yields exactly the rest; sampling draws
exact totals and apportions by weight."""
from __future__ import annotations

import collections

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenet_stream.errors import PlanError
from imagenet_stream.streaming.plan import (
    EpochOrder,
    OrderSpec,
    RankPlan,
    Selection,
    apportion,
    drawn,
    eligible,
    rank_share,
    worker_batches,
)

counts_st = st.lists(st.integers(0, 40), min_size=0, max_size=25)
spec_st = st.builds(OrderSpec, seed=st.integers(0, 2 ** 32 - 1), epoch=st.integers(0, 50), shuffle=st.booleans(),
                    window=st.integers(1, 8), chunk=st.integers(1, 9))


def everything(order: EpochOrder) -> list[tuple[int, int]]:
    shards, i = order.locate(np.arange(len(order)))
    return list(zip(shards.tolist(), i.tolist()))


@settings(max_examples=200, deadline=None)
@given(counts_st, spec_st)
def test_the_order_is_a_permutation_of_the_epoch(counts, spec) -> None:
    order = EpochOrder(np.array(counts), spec)
    assert len(order) == sum(counts)
    got = everything(order)
    assert sorted(got) == sorted((s, i) for s, c in enumerate(counts) for i in range(c))
    again = EpochOrder(np.array(counts), spec)
    assert everything(again) == got  # a pure function of (counts, spec)
    if not spec.shuffle:
        assert got == [(s, i) for s, c in enumerate(counts) for i in range(c)]


@settings(max_examples=150, deadline=None)
@given(counts_st, spec_st)
def test_chunks_are_contiguous_reads(counts, spec) -> None:
    """Every chunk of every window is one run of consecutive sequence positions of at most ``chunk``
    samples, so it is one contiguous in-shard range per shard it touches."""
    order = EpochOrder(np.array(counts), spec)
    seq = order.sequence_positions(np.arange(len(order)))
    for w in range(len(order.window_starts) - 1):
        lo, hi = int(order.window_starts[w]), int(order.window_starts[w + 1])
        if not spec.shuffle:
            assert np.array_equal(seq[lo:hi], np.arange(lo, hi))
            continue
        _, cum = order._window(w)
        for a, b in zip(cum[:-1].tolist(), cum[1:].tolist()):
            piece = seq[lo + a:lo + b]
            assert 0 < len(piece) <= spec.chunk and np.all(np.diff(piece) == 1)


@settings(max_examples=200, deadline=None)
@given(counts_st, spec_st, st.integers(1, 7), st.integers(1, 4), st.integers(1, 9), st.sampled_from(["drop", "pad"]))
def test_ranks_and_workers_tile_the_epoch_with_equal_counts(counts, spec, world, workers, batch, partial) -> None:
    total = sum(counts)
    plans = [RankPlan(total, 0, r, world, batch, partial) for r in range(world)]
    assert len({p.samples for p in plans}) == 1 and len({p.num_batches for p in plans}) == 1
    seen = collections.Counter()
    for plan in plans:
        by_worker = [list(worker_batches(plan.num_batches, w, workers)) for w in range(workers)]
        assert sorted(t for b in by_worker for t in b) == list(range(plan.num_batches))
        for t in range(plan.num_batches):
            seen.update(plan.batch(t).tolist())
        assert sum(len(plan.batch(t)) for t in range(plan.num_batches)) == plan.samples
    if partial == "drop":
        assert max(seen.values(), default=1) == 1 and total - len(seen) < world
    else:
        assert set(seen) == set(range(total))
        if total:  # pad repeats samples from the epoch's start: as evenly as its arithmetic allows
            assert max(seen.values()) <= -(-world * plans[0].samples // total)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 300), st.integers(1, 8), st.integers(1, 8), st.integers(1, 12), st.integers(1, 12),
       st.data())
def test_an_elastic_resume_yields_exactly_the_rest(total, old_world, new_world, old_batch, new_batch, data) -> None:
    """After k global steps of (R, B), any (R', B') consumes the rest: nothing twice, nothing lost
    beyond drop's remainder."""
    first = RankPlan(total, 0, 0, old_world, old_batch)
    k = data.draw(st.integers(0, first.num_batches))
    consumed_before = set()
    for r in range(old_world):
        plan = RankPlan(total, 0, r, old_world, old_batch)
        for t in range(k):
            consumed_before.update(plan.batch(t).tolist())
    start = first.consumed_after(k)
    if k < first.num_batches:
        assert consumed_before == set(range(start))  # the world consumed exactly a prefix
    rest = collections.Counter()
    for r in range(new_world):
        plan = RankPlan(total, start, r, new_world, new_batch)
        for t in range(plan.num_batches):
            rest.update(plan.batch(t).tolist())
    assert max(rest.values(), default=1) == 1 and not set(rest) & consumed_before
    assert total - len(consumed_before) - len(rest) < new_world + (old_world if k == first.num_batches else 0)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 200), st.integers(1, 6), st.integers(1, 10), st.integers(1, 5))
def test_a_same_world_resume_gives_the_batches_an_uninterrupted_run_gives_next(total, world, batch, workers) -> None:
    for r in range(world):
        plan = RankPlan(total, 0, r, world, batch)
        for k in range(plan.num_batches + 1):
            resumed = RankPlan(total, plan.consumed_after(k), r, world, batch)
            assert resumed.num_batches == plan.num_batches - k
            for t in range(resumed.num_batches):
                assert np.array_equal(resumed.batch(t), plan.batch(k + t))
            # a fresh DataLoader pulls from worker 0 first: batch k, then k + 1, ...
            firsts = [worker_batches(resumed.num_batches, w, workers) for w in range(workers)]
            assert sorted(t for f in firsts for t in f) == list(range(resumed.num_batches))


def test_samples_to_batches_and_validation() -> None:
    plan = RankPlan(100, 0, 1, 3, 8)  # 33 per rank: 4 full batches + one of 1
    assert (plan.samples, plan.num_batches, plan.full_batches) == (33, 5, 4)
    assert plan.samples_to_batches(16) == 2 and plan.samples_to_batches(33) == 5
    assert plan.consumed_after(2) == 48 and plan.consumed_after(5) == 100
    with pytest.raises(PlanError, match="multiple of batch_size"):
        plan.samples_to_batches(10)
    with pytest.raises(PlanError, match="rank must be <"):
        RankPlan(10, 0, 3, 3, 1)
    with pytest.raises(PlanError, match="partial"):
        rank_share(10, 2, "keep")
    assert rank_share(10, 3, "pad") == 4


# -- the multiset ---------------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(st.integers(0, 500), st.lists(st.floats(0, 100), min_size=1, max_size=30), st.integers(0, 99))
def test_apportion_is_exact_and_proportional(total, weights, seed) -> None:
    weights = np.array(weights)
    if total and weights.sum() == 0:
        with pytest.raises(PlanError):
            apportion(total, weights, np.random.default_rng(seed))
        return
    got = apportion(total, weights, np.random.default_rng(seed))
    assert got.sum() == total and np.all(got >= 0) and np.all(got[weights == 0] == 0)
    if weights.sum() > 0:
        exact = weights * total / weights.sum()
        assert np.all(np.abs(got - exact) < 1 + 1e-9)


def test_selections_and_the_exclusion_overlay() -> None:
    sel = Selection.of([3, 0, 4], [np.array([0, 2]), np.array([], int), np.array([1, 2, 3])])
    assert sel.counts.tolist() == [2, 0, 3] and sel.members(2).tolist() == [1, 2, 3]
    full = Selection.of([3, 0, 4]).exclude(np.array([1, 3, 6]))  # global ids: shard 0 #1, shard 2 #0 and #3
    assert [full.members(s).tolist() for s in range(3)] == [[0, 2], [], [1, 2]]
    assert eligible(full).total == 4


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 400), st.integers(0, 20), st.booleans())
def test_draws_are_exact_deterministic_and_within_the_eligible(total, epoch, replace) -> None:
    sel = Selection.of([50, 10, 0, 30], [np.arange(0, 50, 2), np.arange(10), np.array([], int), np.arange(30)])
    weights = sel.counts.astype(float)
    if not replace and total > sel.counts.sum():
        with pytest.raises(PlanError, match="without replacement"):
            drawn(sel, weights, total, seed=1, epoch=epoch, replace=False)
        return
    try:
        ss = drawn(sel, weights, total, seed=1, epoch=epoch, replace=replace)
    except PlanError:
        assert not replace  # one shard's share can exceed its own eligible samples
        return
    assert ss.total == total
    for s in range(4):
        members = ss.members(s)
        assert len(members) == ss.counts[s] and set(members.tolist()) <= set(sel.members(s).tolist())
        assert np.array_equal(members, np.sort(members)) and np.array_equal(members, ss.members(s))
        if not replace:
            assert len(set(members.tolist())) == len(members)


def test_weighted_draws_follow_the_member_weights() -> None:
    sel = Selection.of([1000])
    labels = np.arange(1000) % 10  # class c weighted c+1
    ss = drawn(sel, np.array([1.0]), 20_000, seed=0, epoch=0, replace=True,
               member_weights=lambda shard, members: (labels[members] + 1).astype(float))
    got = np.bincount(labels[ss.members(0)], minlength=10)
    want = 20_000 * np.arange(1, 11) / 55
    assert np.all(np.abs(got - want) < 5 * np.sqrt(want))


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 300), st.integers(0, 20), st.floats(0.05, 0.95))
def test_replacement_only_where_needed_keeps_other_shards_distinct(total, epoch, share) -> None:
    """replace=None: a shard asked for more than it has repeats members; every other shard does not."""
    sel = Selection.of([40, 40, 25, 25])
    weights = np.array([share, share, 1 - share, 1 - share]) / 2
    ss = drawn(sel, weights, total, seed=3, epoch=epoch, replace=None)
    assert ss.total == total
    for s in range(4):
        members = ss.members(s)
        assert len(members) == ss.counts[s]
        if ss.counts[s] <= sel.counts[s]:
            assert len(set(members.tolist())) == len(members)
        else:
            assert set(members.tolist()) <= set(range(sel.counts[s]))

"""Property tests of plan_epoch against an independent, materialised model of the contract.

The oracle below builds the epoch's whole sequence explicitly (concatenated shards, dropped or
cyclically padded) and the rank batch sizes as a list; the planner computes the same things
arithmetically per worker. A DataLoader's round-robin over worker batches is simulated here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from imagenet_stream.streaming.plan import EpochPlan, World, plan_epoch, resume_world, shard_runs

# -- strategies ---------------------------------------------------------------------------------

# Mostly small shards, some empty, some huge (imbalance), 0..12 shards.
shard_count = st.one_of(st.integers(0, 40), st.just(0), st.integers(200, 1500))
sample_counts = st.lists(shard_count, min_size=0, max_size=12)


@dataclass(frozen=True)
class Config:
    counts: tuple[int, ...]
    world_size: int
    num_workers: int
    batch_size: int
    seed: int
    epoch: int
    shuffle: bool
    window: int
    partial: str

    def plan(self, rank: int, worker: int, epoch: int | None = None) -> EpochPlan:
        return plan_epoch(list(self.counts), World(rank, self.world_size, worker, self.num_workers),
                          seed=self.seed, epoch=self.epoch if epoch is None else epoch,
                          batch_size=self.batch_size, shuffle=self.shuffle,
                          shuffle_window=self.window, partial=self.partial)

    def rank_plans(self, rank: int) -> list[EpochPlan]:
        return [self.plan(rank, w) for w in range(self.num_workers)]


@st.composite
def configs(draw, counts=sample_counts, max_batch: int = 64) -> Config:
    return Config(counts=tuple(draw(counts)), world_size=draw(st.integers(1, 8)),
                  num_workers=draw(st.integers(1, 4)), batch_size=draw(st.integers(1, max_batch)),
                  seed=draw(st.integers(0, 2**63)), epoch=draw(st.integers(0, 1000)),
                  shuffle=draw(st.booleans()), window=draw(st.integers(1, 8)),
                  partial=draw(st.sampled_from(["drop", "pad"])))


# -- oracle -------------------------------------------------------------------------------------

def extended_sequence(cfg: Config) -> tuple[np.ndarray, int]:
    """The epoch's global-id sequence after drop/pad (length m * world_size), and m."""
    counts = np.array(cfg.counts, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    n = len(counts)
    order = np.random.default_rng([cfg.seed, cfg.epoch, 0]).permutation(n) if cfg.shuffle else range(n)
    seq = np.concatenate([np.arange(starts[s], starts[s + 1]) for s in order] + [np.zeros(0, np.int64)])
    total, size = len(seq), cfg.world_size
    if cfg.partial == "drop":
        m = total // size
        return seq[: m * size], m
    m = -(-total // size)
    ext = [seq[i % total] for i in range(m * size)]  # repeat the sequence from its start
    return np.array(ext, dtype=np.int64), m


def rank_batch_sizes(m: int, batch_size: int) -> list[int]:
    sizes = [batch_size] * (m // batch_size)
    return sizes + ([m % batch_size] if m % batch_size else [])


def worker_batches(samples: np.ndarray, batch_size: int) -> list[np.ndarray]:
    return [samples[i:i + batch_size] for i in range(0, len(samples), batch_size)]


def round_robin(pieces: list[np.ndarray], batch_size: int, first_worker: int = 0) -> list[np.ndarray]:
    """torch DataLoader order: one batch from each live worker in turn, from ``first_worker``."""
    queues = [worker_batches(p, batch_size) for p in pieces]
    live = list(range(len(queues)))
    live = live[first_worker:] + live[:first_worker]
    out: list[np.ndarray] = []
    while live:
        for w in list(live):
            if queues[w]:
                out.append(queues[w].pop(0))
            else:
                live.remove(w)
    return out


def concat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays + [np.zeros(0, np.int64)]).astype(np.int64)


# -- properties ---------------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(configs())
def test_ranks_and_workers_tile_the_epoch_exactly(cfg: Config) -> None:
    ext, m = extended_sequence(cfg)
    total = sum(cfg.counts)
    everything = []
    for rank in range(cfg.world_size):
        plans = cfg.rank_plans(rank)
        sizes = rank_batch_sizes(m, cfg.batch_size)
        block = ext[rank * m:(rank + 1) * m]
        offset = 0
        for w, plan in enumerate(plans):
            assert plan.rank_samples == m and plan.rank_batches == len(sizes)
            assert plan.samples.dtype == np.int64 and not plan.samples.flags.writeable
            mine = [s for j, s in enumerate(sizes) if j % cfg.num_workers == w]
            assert plan.worker_batches == len(mine)
            assert len(plan.samples) == sum(mine)
            # Contiguous piece, pieces in worker order.
            piece = block[offset:offset + sum(mine)]
            assert sorted(plan.samples.tolist()) == sorted(piece.tolist())
            if not cfg.shuffle:  # no permutation at all: sequence (= manifest) order
                assert np.array_equal(plan.samples, piece)
            offset += sum(mine)
        assert offset == m
        everything.append(concat([p.samples for p in plans]))
    flat = concat(everything)
    assert len(flat) == m * cfg.world_size
    if cfg.partial == "drop":
        assert len(flat) == total - total % cfg.world_size
        assert len(np.unique(flat)) == len(flat)
    else:
        assert set(flat.tolist()) == set(range(total))
        assert len(flat) == m * cfg.world_size < total + cfg.world_size or total == 0
        values, freq = np.unique(flat, return_counts=True)
        repeated = values[freq > 1]
        extra = m * cfg.world_size - total
        assert set(repeated.tolist()) <= set(ext[:extra].tolist())  # repeats only from the start


@settings(max_examples=120, deadline=None)
@given(configs())
def test_round_robin_yields_rank_batches_in_one_order(cfg: Config) -> None:
    for rank in range(cfg.world_size):
        plans = cfg.rank_plans(rank)
        m, nb = plans[0].rank_samples, plans[0].rank_batches
        stream = round_robin([p.samples for p in plans], cfg.batch_size)
        assert len(stream) == nb
        assert [len(b) for b in stream] == rank_batch_sizes(m, cfg.batch_size)
        ext, _ = extended_sequence(cfg)
        assert sorted(concat(stream).tolist()) == sorted(ext[rank * m:(rank + 1) * m].tolist())
        # Rank batch j is worker j % W's (j // W)-th batch.
        for j, batch in enumerate(stream):
            mine = worker_batches(plans[j % cfg.num_workers].samples, cfg.batch_size)
            assert np.array_equal(batch, mine[j // cfg.num_workers])


@settings(max_examples=120, deadline=None)
@given(configs())
def test_windows_follow_the_definition_and_bound(cfg: Config) -> None:
    ext, m = extended_sequence(cfg)
    for rank in range(cfg.world_size):
        offset = rank * m
        for plan in cfg.rank_plans(rank):
            piece = ext[offset:offset + len(plan.samples)]
            offset += len(plan.samples)
            # Runs of the piece in sequence order; window k = runs [k*window, (k+1)*window).
            runs = shard_runs(piece, cfg.counts)
            lengths = [stop - start for _, start, stop in runs]
            run_starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            expected = np.concatenate([run_starts[:-1][::cfg.window], run_starts[-1:]])
            if len(piece) == 0:
                expected = np.zeros(1, np.int64)
            assert np.array_equal(plan.window_bounds, expected)
            groups = plan.windows()
            assert np.array_equal(concat(groups), plan.samples)
            for k, group in enumerate(groups):
                lo, hi = int(expected[k]), int(expected[k + 1])
                assert sorted(group.tolist()) == sorted(piece[lo:hi].tolist())
                # The guarantee: <= window distinct shards, each one contiguous in-shard range.
                group_runs = shard_runs(np.sort(group), cfg.counts)
                assert len(group_runs) <= cfg.window
                assert len({s for s, _, _ in group_runs}) <= cfg.window


@settings(max_examples=60, deadline=None)
@given(configs(counts=st.lists(st.integers(0, 60), min_size=0, max_size=8), max_batch=16))
def test_resume_after_every_batch_is_exact(cfg: Config) -> None:
    for rank in range(cfg.world_size):
        plans = cfg.rank_plans(rank)
        m, nb, batch = plans[0].rank_samples, plans[0].rank_batches, cfg.batch_size
        stream = round_robin([p.samples for p in plans], batch)
        for k in range(nb + 1):
            seen = min(k * batch, m)
            tail = stream[k:]
            # A DataLoader that restores its worker cycle continues at worker k % W.
            resumed = [p.samples[p.resume_offset(seen):] for p in plans]
            again = round_robin(resumed, batch, first_worker=k % cfg.num_workers)
            assert [b.tolist() for b in again] == [b.tolist() for b in tail]
            # A fresh DataLoader starts at worker 0: workers plan with rotated ids.
            fresh = []
            for w in range(cfg.num_workers):
                rotated = plan_epoch(list(cfg.counts), resume_world(plans[w].world, k), seed=cfg.seed,
                                     epoch=cfg.epoch, batch_size=batch, shuffle=cfg.shuffle,
                                     shuffle_window=cfg.window, partial=cfg.partial)
                fresh.append(rotated.samples[rotated.resume_offset(seen):])
            assert [b.tolist() for b in round_robin(fresh, batch)] == [b.tolist() for b in tail]
            for p in plans:
                assert p.resume_offset(seen) == batch * p.batches_before(k) or seen == m


@settings(max_examples=80, deadline=None)
@given(configs())
def test_same_inputs_give_bit_identical_plans(cfg: Config) -> None:
    for rank in range(cfg.world_size):
        for w in range(cfg.num_workers):
            a, b = cfg.plan(rank, w), cfg.plan(rank, w)
            assert np.array_equal(a.samples, b.samples) and a.samples.tobytes() == b.samples.tobytes()
            assert np.array_equal(a.window_bounds, b.window_bounds)


@settings(max_examples=60, deadline=None)
@given(configs(counts=st.lists(st.integers(0, 400), min_size=1, max_size=12)), st.integers(1, 50))
def test_another_epoch_gives_another_order(cfg: Config, delta: int) -> None:
    # One window of >= 17 samples exists when N >= 200 over <= 12 shards, so a repeat of the
    # whole order by chance has probability < 1/17!.
    assume(sum(cfg.counts) >= 200)
    single = Config(cfg.counts, 1, 1, cfg.batch_size, cfg.seed, cfg.epoch, True, cfg.window, cfg.partial)
    a, b = single.plan(0, 0), single.plan(0, 0, epoch=cfg.epoch + delta)
    assert sorted(a.samples.tolist()) == sorted(b.samples.tolist())
    assert not np.array_equal(a.samples, b.samples)
    unshuffled = Config(cfg.counts, 1, 1, cfg.batch_size, cfg.seed, cfg.epoch, False, cfg.window, "drop")
    assert np.array_equal(unshuffled.plan(0, 0).samples, np.arange(sum(cfg.counts)))
    assert np.array_equal(unshuffled.plan(0, 0, epoch=cfg.epoch + delta).samples,
                          np.arange(sum(cfg.counts)))

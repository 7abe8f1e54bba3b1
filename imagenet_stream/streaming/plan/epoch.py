"""``plan_epoch``: the exact samples one (rank, worker) yields in one epoch, as an ``EpochPlan``.

See :mod:`imagenet_stream.streaming.plan` for the algorithm (the contract); this module wires
:mod:`.shuffle` (shard order, windows), :mod:`.partition` (rank block, worker piece) and
:mod:`.locate` (sequence positions -> global ids) together.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from imagenet_stream.errors import PlanError
from imagenet_stream.streaming.plan import partition
from imagenet_stream.streaming.plan.locate import counts_array, shard_starts
from imagenet_stream.streaming.plan.shuffle import shard_order, shuffle_windows, window_bounds
from imagenet_stream.streaming.plan.world import World, check_int


@dataclass(frozen=True, eq=False)
class EpochPlan:
    """What one worker of one rank yields this epoch, plus the rank-level numbers to check it.

    ``samples`` (read-only int64) are global sample ids in yield order. ``rank_samples`` and
    ``rank_batches`` are identical on every rank. ``window_bounds`` are offsets into
    ``samples`` where shuffle windows begin/end (``None``: the whole piece is one window);
    each window draws from at most ``shuffle_window`` contiguous in-shard ranges.
    """

    world: World
    rank_samples: int
    rank_batches: int
    batch_size: int
    samples: np.ndarray
    window_bounds: np.ndarray | None = None

    @property
    def worker_batches(self) -> int:
        """Batches this worker yields: ``#{j < rank_batches : j % num_workers == worker}``."""
        return partition.batches_before(self.rank_batches, self.world.worker, self.world.num_workers)

    def batches_before(self, rank_batches_seen: int) -> int:
        """This worker's batches among the first ``rank_batches_seen`` rank batches."""
        k = check_int("rank_batches_seen", rank_batches_seen, 0)
        if k > self.rank_batches:
            raise PlanError(f"rank_batches_seen must be <= rank_batches={self.rank_batches}, got {k}")
        return partition.batches_before(k, self.world.worker, self.world.num_workers)

    def resume_offset(self, samples_seen: int) -> int:
        """How many of ``samples`` to skip once the *rank* has consumed ``samples_seen`` samples.

        ``samples_seen`` must be ``k * batch_size`` after ``k`` whole rank batches, or
        ``rank_samples`` at the end of the epoch; then ``samples[resume_offset(n):]`` on every
        worker yields exactly the batches an uninterrupted run would produce next. Requires the
        same world shape, batch size and planner arguments as the interrupted run.
        """
        n = check_int("samples_seen", samples_seen, 0)
        if n == self.rank_samples:
            return len(self.samples)
        if n > self.rank_samples:
            raise PlanError(f"samples_seen must be <= rank_samples={self.rank_samples}, got {n}")
        if n % self.batch_size:
            raise PlanError(f"samples_seen must be a multiple of batch_size={self.batch_size} "
                            f"(or rank_samples={self.rank_samples}), got {n}")
        return self.batch_size * self.batches_before(n // self.batch_size)

    def windows(self, start: int = 0) -> list[np.ndarray]:
        """``samples[start:]`` cut at window bounds: the groups a reader should fetch together.

        ``shard_runs(np.sort(group), counts)`` gives at most ``shuffle_window`` byte ranges per
        group, also for the first group when ``start`` falls mid-window (after a resume).
        """
        start = check_int("start", start, 0)
        length = len(self.samples)
        if start > length:
            raise PlanError(f"start must be <= {length} (this worker's samples), got {start}")
        bounds = self.window_bounds if self.window_bounds is not None else np.array([0, length])
        cuts = [start] + [int(b) for b in bounds if start < b < length] + [length]
        return [self.samples[lo:hi] for lo, hi in zip(cuts[:-1], cuts[1:]) if hi > lo]


def resume_world(world: World, rank_batches_seen: int) -> World:
    """The world a *fresh* DataLoader's worker must plan with to resume after ``k`` rank batches.

    A fresh DataLoader pulls from worker 0 first, but rank batch ``k`` belongs to worker
    ``k % num_workers``; rotating the worker ids by ``k`` makes new worker ``w`` continue
    original worker ``(w + k) % num_workers``. Use it as
    ``plan = plan_epoch(counts, resume_world(world, k), ...)`` then
    ``plan.samples[plan.resume_offset(n):]``.
    """
    k = check_int("rank_batches_seen", rank_batches_seen, 0)
    return replace(world, worker=(world.worker + k) % world.num_workers)


def plan_epoch(sample_counts: Sequence[int], world: World, *, seed: int, epoch: int,
               batch_size: int = 1, shuffle: bool = True, shuffle_window: int = 4,
               partial: str = "drop") -> EpochPlan:
    """Plan which global sample ids ``world``'s worker yields in ``epoch``, in order.

    The result depends only on the arguments (never on process state or time), so every rank
    and worker computes its share independently and the shares tile the epoch exactly.
    """
    if not isinstance(world, World):
        raise PlanError(f"world must be a World, got {world!r}")
    if not isinstance(shuffle, (bool, np.bool_)):
        raise PlanError(f"shuffle must be a bool, got {shuffle!r}")
    counts = counts_array(sample_counts)
    seed = check_int("seed", seed, 0)
    epoch = check_int("epoch", epoch, 0)
    batch_size = check_int("batch_size", batch_size, 1)
    shuffle_window = check_int("shuffle_window", shuffle_window, 1)
    total = int(counts.sum())
    rank_samples = partition.rank_share(total, world.world_size, partial)
    offset, size = partition.worker_piece(rank_samples, batch_size, world.worker, world.num_workers)

    # Positions in the (drop-truncated or pad-extended) sequence; pad repeats it cyclically.
    first = world.rank * rank_samples + offset
    positions = np.arange(first, first + size, dtype=np.int64)
    if total:
        positions %= total
    order = shard_order(len(counts), seed=seed, epoch=epoch, shuffle=bool(shuffle))
    seq_starts = shard_starts(counts[order])
    slot = np.searchsorted(seq_starts, positions, side="right").astype(np.int64) - 1
    ids = shard_starts(counts)[order[slot]] + (positions - seq_starts[slot])

    run_breaks = np.flatnonzero((slot[1:] != slot[:-1]) | (positions[1:] != positions[:-1] + 1)) + 1
    run_starts = np.concatenate([np.zeros(min(size, 1), dtype=np.int64), run_breaks])
    bounds = window_bounds(run_starts, size, shuffle_window)
    if shuffle:
        ids = shuffle_windows(ids, bounds, seed=seed, epoch=epoch, rank=world.rank, worker=world.worker)
    ids.setflags(write=False)
    bounds.setflags(write=False)
    return EpochPlan(world=world, rank_samples=rank_samples,
                     rank_batches=partition.num_batches(rank_samples, batch_size),
                     batch_size=batch_size, samples=ids, window_bounds=bounds)

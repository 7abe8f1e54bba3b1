"""Ranks, workers and batches over the global order, from any point of an epoch. Pure integers.

An epoch of ``M`` order positions, of which the first ``P`` are consumed (``P = 0`` at its start;
after a resume, what the interrupted world consumed) is shared by a world of ``R`` ranks with batch
size ``B``:

* every rank yields ``m`` samples: ``(M - P) // R`` (``partial="drop"``: fewer than ``R`` left out)
  or ``ceil((M - P) / R)`` (``"pad"``: positions past the end wrap to the epoch's start, ``q mod M``);
* rank ``r``'s batch ``t`` holds positions ``P + (t*R + r)*B + [0, B)`` while full batches last,
  then one short batch of ``s = m mod B``: ``P + (m//B)*R*B + r*s + [0, s)``. So *global* batch
  step ``t`` consumes a contiguous stretch of ``R*B`` positions, and after ``k`` steps the world has
  consumed exactly the prefix ``P + k*R*B``: the progress of every rank is one number, derived from
  the common batch counter without gathering;
* a DataLoader with ``W`` workers pulls rank batch ``t`` from worker ``t mod W``.

Resuming at ``P' = P + k*R*B`` in *any* world ``(R', B')`` plans the rest of the same epoch order:
exactly once, equal counts per new rank, and in the same world the very batches an uninterrupted
run would have yielded next.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imagenet_stream.errors import PlanError
from imagenet_stream.streaming.plan.world import check_int

PARTIAL_MODES = ("drop", "pad")


def rank_share(remaining: int, world_size: int, partial: str) -> int:
    """Samples every rank yields from ``remaining`` positions."""
    if partial == "drop":
        return remaining // world_size
    if partial == "pad":
        return -(-remaining // world_size)
    raise PlanError(f"partial must be one of {PARTIAL_MODES}, got {partial!r}")


@dataclass(frozen=True)
class RankPlan:
    """Rank ``rank`` of ``world_size``'s share of an epoch of ``total`` positions from ``start`` on."""

    total: int
    start: int
    rank: int
    world_size: int
    batch_size: int
    partial: str = "drop"

    def __post_init__(self) -> None:
        check_int("total", self.total, 0)
        check_int("start", self.start, 0)
        check_int("batch_size", self.batch_size, 1)
        world = check_int("world_size", self.world_size, 1)
        if not 0 <= check_int("rank", self.rank, 0) < world:
            raise PlanError(f"rank must be < world_size={world}, got {self.rank}")
        if self.start > self.total:
            raise PlanError(f"start {self.start} lies past the epoch's {self.total} positions")
        rank_share(0, 1, self.partial)

    @property
    def samples(self) -> int:
        """Samples this rank yields (the same on every rank)."""
        return rank_share(self.total - self.start, self.world_size, self.partial)

    @property
    def full_batches(self) -> int:
        return self.samples // self.batch_size

    @property
    def num_batches(self) -> int:
        return -(-self.samples // self.batch_size)

    def batch(self, t: int) -> np.ndarray:
        """Order positions of this rank's batch ``t`` (``0 <= t < num_batches``)."""
        t = check_int("batch", t, 0)
        if t >= self.num_batches:
            raise PlanError(f"batch {t} is past this rank's {self.num_batches} batches")
        R, B = self.world_size, self.batch_size
        if t < self.full_batches:
            first, size = self.start + (t * R + self.rank) * B, B
        else:
            short = self.samples - self.full_batches * B
            first, size = self.start + self.full_batches * R * B + self.rank * short, short
        positions = np.arange(first, first + size, dtype=np.int64)
        if self.total:
            positions %= self.total  # pad: past the end wraps to the epoch's start
        return positions

    def consumed_after(self, batches: int) -> int:
        """The global prefix consumed once every rank has yielded ``batches`` batches."""
        k = check_int("batches", batches, 0)
        if k > self.num_batches:
            raise PlanError(f"{k} batches is more than this epoch's {self.num_batches}")
        if k == self.num_batches:
            return self.total
        return self.start + k * self.world_size * self.batch_size

    def samples_to_batches(self, samples_seen: int) -> int:
        """Rank batches behind ``samples_seen`` samples: whole batches, or the whole share."""
        n = check_int("samples_seen", samples_seen, 0)
        if n == self.samples:
            return self.num_batches
        if n > self.samples:
            raise PlanError(f"samples_seen must be <= this rank's {self.samples}, got {n}")
        if n % self.batch_size:
            raise PlanError(f"samples_seen must be a multiple of batch_size={self.batch_size} (or this rank's "
                            f"{self.samples}), got {n}")
        return n // self.batch_size


def worker_batches(num_batches: int, worker: int, num_workers: int, first: int = 0) -> range:
    """Rank batches ``t >= first`` a DataLoader worker produces: ``t ≡ (worker + first) (mod W)``.

    A fresh DataLoader pulls its first batch from worker 0, so counting from batch ``first``
    worker ``w`` takes ``first + w, first + w + W, ...``.
    """
    w = check_int("worker", worker, 0)
    n = check_int("num_workers", num_workers, 1)
    if w >= n:
        raise PlanError(f"worker must be < num_workers={n}, got {w}")
    return range(first + w, num_batches, n)


__all__ = ["PARTIAL_MODES", "RankPlan", "rank_share", "worker_batches"]

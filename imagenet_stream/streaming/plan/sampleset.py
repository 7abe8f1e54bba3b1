"""The epoch's sample multiset: how many samples each shard contributes, and which ones. Pure.

Every sampling feature goes through here, in two steps:

1. **Eligible samples** (fixed for the dataset object): a :class:`Selection` per shard, all of its
   samples or a sorted subset of in-shard indices. Class subsets and the exclusion overlay make
   selections.
2. **The epoch's draw** (:class:`SampleSet`, per epoch): per shard a *count* (known for every shard
   up front: it is all the planner needs) and, lazily and only for the shards a worker reads, the
   drawn in-shard indices (sorted, with repeats when drawn with replacement). With no sampling the
   draw is the selection itself. Mixtures and class balance set per-shard counts by apportioning an
   epoch total over per-shard weights (largest remainder with a seeded tie-break, O(shards)) and
   draw each shard's members from its own generator ``default_rng([seed, epoch, 5, shard])``.

So a worker never materializes the dataset: it holds one count per shard and the members of the
shards of its current batches.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from imagenet_stream.errors import PlanError


@dataclass(frozen=True, eq=False)
class Selection:
    """Eligible samples: ``sizes[s]`` samples in shard ``s``; ``indices[starts[s]:starts[s+1]]``
    the eligible in-shard indices of shard ``s`` (sorted, unique) when ``indices`` is given, else
    all of them."""

    sizes: np.ndarray
    starts: np.ndarray | None = None
    indices: np.ndarray | None = None

    def __post_init__(self) -> None:
        sizes = np.asarray(self.sizes, dtype=np.int64)
        if sizes.ndim != 1 or np.any(sizes < 0):
            raise PlanError("shard sizes must be a flat array of integers >= 0")
        object.__setattr__(self, "sizes", sizes)
        if (self.starts is None) != (self.indices is None):
            raise PlanError("a selection needs both starts and indices, or neither")
        if self.starts is not None and len(self.starts) != len(sizes) + 1:
            raise PlanError(f"selection starts have {len(self.starts)} entries for {len(sizes)} shards")

    @classmethod
    def of(cls, sizes: Sequence[int], per_shard: Sequence[np.ndarray] | None = None) -> Selection:
        """All samples, or the given sorted in-shard indices per shard."""
        sizes = np.asarray(sizes, dtype=np.int64)
        if per_shard is None:
            return cls(sizes)
        if len(per_shard) != len(sizes):
            raise PlanError(f"{len(per_shard)} selections for {len(sizes)} shards")
        counts = np.array([len(p) for p in per_shard], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        indices = (np.concatenate([np.asarray(p, dtype=np.int32) for p in per_shard]) if len(per_shard)
                   else np.zeros(0, np.int32))
        return cls(sizes, starts, indices)

    @property
    def num_shards(self) -> int:
        return len(self.sizes)

    @property
    def counts(self) -> np.ndarray:
        """Eligible samples per shard."""
        if self.starts is None:
            return self.sizes
        return np.diff(self.starts)

    def members(self, shard: int) -> np.ndarray:
        """The eligible in-shard indices of ``shard`` (sorted)."""
        if self.indices is None:
            return np.arange(int(self.sizes[shard]), dtype=np.int64)
        return self.indices[self.starts[shard]:self.starts[shard + 1]].astype(np.int64)

    def exclude(self, global_ids: np.ndarray) -> Selection:
        """This selection without the samples of ``global_ids`` (positions in the concatenation of all
        shards, sorted): the exclusion overlay."""
        ids = np.asarray(global_ids, dtype=np.int64)
        if ids.size == 0:
            return self
        bounds = np.concatenate([[0], np.cumsum(self.sizes)])
        per_shard = []
        for s in range(self.num_shards):
            lo, hi = np.searchsorted(ids, bounds[s:s + 2])
            members = self.members(s)
            if hi > lo:
                members = np.setdiff1d(members, ids[lo:hi] - bounds[s], assume_unique=True)
            per_shard.append(members)
        return Selection.of(self.sizes, per_shard)


def apportion(total: int, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Integers summing to ``total``, proportional to ``weights`` (largest remainder; equal
    remainders broken by ``rng``). Zero weight gets zero."""
    weights = np.asarray(weights, dtype=np.float64)
    if total < 0 or np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise PlanError("apportion needs total >= 0 and finite weights >= 0")
    mass = weights.sum()
    if total == 0 or mass <= 0:
        if total and mass <= 0:
            raise PlanError(f"cannot draw {total} samples: every weight is zero")
        return np.zeros(len(weights), dtype=np.int64)
    exact = (weights / mass) * total
    base = np.floor(exact).astype(np.int64)
    left = int(total - base.sum())
    if left:
        remainder = exact - base
        noise = rng.random(len(weights)) * 1e-9  # ties: seeded, never the shard order
        order = np.lexsort((noise, -remainder))
        base[order[:left]] += 1
    return base


@dataclass(frozen=True, eq=False)
class SampleSet:
    """One epoch's planned samples: ``counts[s]`` from shard ``s``; :meth:`members` gives which.

    ``draw``: None (the eligible samples themselves) or ``(replace, member_weights)`` where
    ``member_weights(shard, members) -> weights`` (None: uniform) says how a shard's planned count is
    drawn from its eligible members.
    """

    selection: Selection
    counts: np.ndarray
    seed: int = 0
    epoch: int = 0
    replace: bool = False
    member_weights: Callable[[int, np.ndarray], np.ndarray | None] | None = None
    drawn: bool = False

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def members(self, shard: int) -> np.ndarray:
        """The in-shard indices shard ``shard`` contributes this epoch (sorted, repeats allowed)."""
        eligible = self.selection.members(shard)
        count = int(self.counts[shard])
        if not self.drawn:
            return eligible
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        rng = np.random.default_rng([self.seed, self.epoch, 5, shard])
        weights = self.member_weights(shard, eligible) if self.member_weights is not None else None
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            weights = weights / weights.sum()
        replace = self.replace or count > len(eligible)
        return np.sort(rng.choice(eligible, size=count, replace=replace, p=weights))


def eligible(selection: Selection) -> SampleSet:
    """Every eligible sample once (no sampling)."""
    return SampleSet(selection, selection.counts.astype(np.int64))


def drawn(selection: Selection, shard_weights: np.ndarray, total: int, *, seed: int, epoch: int,
          replace: bool | None, member_weights: Callable[[int, np.ndarray], np.ndarray | None] | None = None
          ) -> SampleSet:
    """``total`` samples this epoch, apportioned over shards by ``shard_weights`` (the per-shard sum
    of the member weights), each shard's drawn from its eligible members: with replacement
    (``replace=True``), without (False: a shard asked for more than it has is an error), or only in
    the shards asked for more than they have (None)."""
    counts = apportion(total, shard_weights, np.random.default_rng([seed, epoch, 6]))
    eligible_counts = selection.counts
    if replace is False and np.any(counts > eligible_counts):
        worst = int(np.argmax(counts - eligible_counts))
        raise PlanError(f"cannot draw {int(counts[worst])} samples without replacement from shard {worst}, "
                        f"which has {int(eligible_counts[worst])}; allow replacement or ask for fewer")
    return SampleSet(selection, counts, seed=seed, epoch=epoch, replace=bool(replace), member_weights=member_weights,
                     drawn=True)


__all__ = ["SampleSet", "Selection", "apportion", "drawn", "eligible"]

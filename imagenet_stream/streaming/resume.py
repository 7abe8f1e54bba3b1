"""Resume states of :class:`~imagenet_stream.streaming.dataset.ImageNetStream`: what they hold, and
the checks that make a wrong one fail loudly instead of streaming the wrong samples.

* **Rank state** (``state_dict(samples_seen=n)``): after ``k = n / batch_size`` batches of a world of
  ``R`` ranks, the world has consumed exactly the prefix ``consumed = start + k*R*B`` of the epoch's
  global order (all ranks advance in lockstep under DDP), so the state is that one number, the epoch
  and the dataset's configuration. Every rank can compute it without gathering; states saved by
  different ranks at the same step are equal except for ``rank``. Loaded into any world
  ``(R', W', B')`` it streams the rest of that epoch once, with equal counts per rank.
* **Iterator state** (``state_dict()`` in a DataLoader worker, torchdata's ``Stateful``): where one
  worker's iterator stands (its next batch), for ``StatefulDataLoader`` to restore the same world.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from imagenet_stream.errors import ConfigError, PlanError

RANK_FORMAT = "imagenet-stream/resume/2"
ITERATOR_FORMAT = "imagenet-stream/iterator/2"
#: Configuration a state must share with the dataset that loads it (the epoch order depends on it).
CONFIG_KEYS = ("seed", "shuffle", "shuffle_window", "chunk", "partial", "epoch_total", "dataset")


def dataset_fingerprint(shards: Sequence[Any], mixture: Any) -> str:
    """What a resume state must have been saved over: the shards, the eligible samples, the draw."""
    digest = hashlib.sha256()
    for info in shards:
        digest.update(f"{info.name}\0{info.num_samples}\0".encode())
    digest.update(mixture.selection.counts.astype("<i8").tobytes())
    digest.update(repr((mixture.draws, mixture.epoch_total, mixture.replacement, mixture.target_wnids)).encode())
    if mixture.shard_weights is not None:
        digest.update(np.asarray(mixture.shard_weights, dtype="<f8").tobytes())
    return digest.hexdigest()[:16]


def check_config(state: Mapping[str, Any], mine: Mapping[str, Any]) -> None:
    for key in CONFIG_KEYS:
        if state.get(key) != mine[key]:
            raise PlanError(f"cannot resume: the state has {key}={state.get(key)!r}, this dataset has "
                            f"{key}={mine[key]!r}")


def rank_state(config: Mapping[str, Any], *, epoch: int, consumed: int, rank: int, world_size: int,
               batch_size: int) -> dict[str, Any]:
    return {"format": RANK_FORMAT, **config, "epoch": epoch, "consumed": consumed, "rank": rank,
            "world_size": world_size, "batch_size": batch_size}


def merge_rank_states(states: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """One rank state from one or several (e.g. every rank's): they must agree on the epoch and
    the consumed prefix, which DDP's lockstep guarantees; anything else is refused."""
    if isinstance(states, Mapping):
        return states
    states = list(states)
    if not states:
        raise ConfigError("no resume state given")
    first = states[0]
    for key in ("epoch", "consumed", "world_size", *CONFIG_KEYS):
        values = {repr(s.get(key)) for s in states}
        if len(values) > 1:
            raise PlanError(f"the ranks' resume states disagree on {key} ({sorted(values)[:4]}): they were not "
                            "saved at the same batch step")
    ranks = sorted(int(s.get("rank", -1)) for s in states)
    if ranks != list(range(len(ranks))) and len(ranks) == int(first.get("world_size", 0)):
        raise PlanError(f"the ranks' resume states have ranks {ranks}, expected 0..{len(ranks) - 1}")
    return first


__all__ = ["CONFIG_KEYS", "ITERATOR_FORMAT", "RANK_FORMAT", "check_config", "dataset_fingerprint", "merge_rank_states",
           "rank_state"]

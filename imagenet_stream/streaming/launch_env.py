"""Detect where an iterator runs: rank and world size of the job, DataLoader worker of the process.

Called inside ``__iter__`` (in the DataLoader worker or the training process), never in
``__init__``, so one dataset object works unchanged under ``torchrun`` and in worker processes.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from imagenet_stream.errors import PlanError
from imagenet_stream.streaming.plan import World


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise PlanError(f"environment variable {name} must be an integer, got {raw!r}") from None


def detect_rank_world(env: Mapping[str, str] | None = None,
                      inherited: tuple[int, int] | None = None) -> tuple[int, int]:
    """``(rank, world_size)``: from ``torch.distributed`` when initialized in this process, else
    ``inherited`` (what the parent process saw when it pickled the dataset into a spawned or
    forkserver DataLoader worker, which does not inherit the process group), else the environment
    variables ``RANK`` / ``WORLD_SIZE`` (as set by torchrun), else ``(0, 1)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank()), int(dist.get_world_size())
    if inherited is not None:
        return int(inherited[0]), int(inherited[1])
    env = os.environ if env is None else env
    rank, world_size = _env_int(env, "RANK"), _env_int(env, "WORLD_SIZE")
    if world_size is None:
        if rank not in (None, 0):
            raise PlanError(f"RANK={rank} is set but WORLD_SIZE is not")
        return 0, 1
    return (rank or 0), world_size


def detect_worker() -> tuple[int, int]:
    """``(worker id, num_workers)`` of the current DataLoader worker; ``(0, 1)`` in the main process."""
    from torch.utils.data import get_worker_info

    info = get_worker_info()
    if info is None:
        return 0, 1
    return int(info.id), int(info.num_workers)


def detect_world(env: Mapping[str, str] | None = None, inherited: tuple[int, int] | None = None) -> World:
    """The full :class:`~imagenet_stream.streaming.plan.World` of the calling iterator."""
    rank, world_size = detect_rank_world(env, inherited)
    worker, num_workers = detect_worker()
    return World(rank=rank, world_size=world_size, worker=worker, num_workers=num_workers)


__all__ = ["detect_rank_world", "detect_worker", "detect_world"]

"""Where a dataset iterator runs: its rank among ``world_size`` and its DataLoader worker.

Pure data: detecting the world from ``torch.distributed`` / ``get_worker_info()`` is the
dataset's job; the planner only needs these four numbers.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

from imagenet_stream.errors import PlanError


def check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as a plain ``int`` >= ``minimum`` or raise :class:`PlanError` naming it.

    Accepts Python and numpy integers; rejects ``bool``, floats and strings.
    """
    if isinstance(value, bool):
        raise PlanError(f"{name} must be an integer, got {value!r}")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise PlanError(f"{name} must be an integer, got {value!r}") from None
    if number < minimum:
        raise PlanError(f"{name} must be >= {minimum}, got {number}")
    return int(number)


@dataclass(frozen=True)
class World:
    """One iterator's place: ``rank`` of ``world_size`` processes, ``worker`` of ``num_workers``.

    ``num_workers=1`` also describes a DataLoader with ``num_workers=0`` (iteration in the
    main process). Invalid numbers raise :class:`PlanError` naming the value.
    """

    rank: int = 0
    world_size: int = 1
    worker: int = 0
    num_workers: int = 1

    def __post_init__(self) -> None:
        world_size = check_int("world_size", self.world_size, 1)
        num_workers = check_int("num_workers", self.num_workers, 1)
        rank = check_int("rank", self.rank, 0)
        worker = check_int("worker", self.worker, 0)
        if rank >= world_size:
            raise PlanError(f"rank must be < world_size={world_size}, got rank={rank}")
        if worker >= num_workers:
            raise PlanError(f"worker must be < num_workers={num_workers}, got worker={worker}")
        # Normalise numpy integers to int so equality/hash/repr are plain.
        object.__setattr__(self, "rank", rank)
        object.__setattr__(self, "world_size", world_size)
        object.__setattr__(self, "worker", worker)
        object.__setattr__(self, "num_workers", num_workers)

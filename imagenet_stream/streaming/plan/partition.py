"""Integer arithmetic that splits one epoch's sample sequence over ranks, then over workers.

Ranks (step 2-3 of the contract in :mod:`imagenet_stream.streaming.plan`): every rank gets the
same count ``m`` — ``N // world_size`` with ``partial="drop"``, ``ceil(N / world_size)`` with
``partial="pad"`` — and rank ``r`` takes positions ``[r*m, (r+1)*m)`` of the sequence.

Workers (step 4): the rank's ``m`` samples form ``nb = ceil(m / B)`` rank batches; only batch
``nb-1`` may be short. Rank batch ``j`` is worker ``j % W``'s ``(j // W)``-th batch, which is
the order torch's DataLoader produces when it pulls one batch from each worker in turn. Each
worker gets one contiguous piece of the rank block, sized to exactly its batches, in worker
order.
"""
from __future__ import annotations

from imagenet_stream.errors import PlanError

PARTIAL_MODES = ("drop", "pad")


def rank_share(total: int, world_size: int, partial: str) -> int:
    """Samples every rank yields: ``total // world_size`` (drop) or ``ceil`` of it (pad)."""
    if partial == "drop":
        return total // world_size
    if partial == "pad":
        return -(-total // world_size)
    raise PlanError(f"partial must be one of {PARTIAL_MODES}, got {partial!r}")


def num_batches(samples: int, batch_size: int) -> int:
    """``ceil(samples / batch_size)``."""
    return -(-samples // batch_size)


def batches_before(rank_batches_seen: int, worker: int, num_workers: int) -> int:
    """How many of rank batches ``0 .. rank_batches_seen-1`` worker ``worker`` produces."""
    if rank_batches_seen <= worker:
        return 0
    return (rank_batches_seen - worker + num_workers - 1) // num_workers


def worker_piece(rank_samples: int, batch_size: int, worker: int, num_workers: int) -> tuple[int, int]:
    """``(offset, size)`` of ``worker``'s contiguous piece within the rank block.

    A worker's size is the sum of the sizes of the rank batches it produces; pieces are laid
    out in worker order, so ``offset`` is the total size of the pieces of lower workers.
    """
    nb = num_batches(rank_samples, batch_size)
    short = nb * batch_size - rank_samples  # missing samples of the last rank batch (0 if full)
    last_owner = (nb - 1) % num_workers if nb else -1

    def full_size(w: int) -> int:
        return batches_before(nb, w, num_workers) * batch_size

    offset = sum(full_size(w) for w in range(worker)) - (short if 0 <= last_owner < worker else 0)
    size = full_size(worker) - (short if last_owner == worker else 0)
    return offset, size

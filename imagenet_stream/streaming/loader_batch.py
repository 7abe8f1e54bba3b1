"""Which batch size a stream plans: its own ``batch_size=``, or the DataLoader's, learned at its
first fetch.

Batches are planned whole (rank ``r`` of ``R`` takes batch ``t`` = positions ``(t·R + r)·B + [0, B)``,
DataLoader worker ``w`` the batches ``t ≡ w (mod W)``), so a stream's batch must be the
DataLoader's: only then does every DataLoader batch come from one worker's run of consecutive
positions (a few ranged reads, not one per sample) and is the loop's sample ``n`` the rank's ``n``-th
(which ``state_dict(samples_seen=n)`` assumes). ``DataLoader(ImageNetStream(url), batch_size=256)``
leaves the stream's batch size unset; the stream then reads the loader's from the fetch that asks
for its first sample.

The DataLoader passes no batch size to the dataset: a worker only sees each fetch's list of
indices (``[None] * batch_size`` for an iterable dataset), in the local ``possibly_batched_index``
of ``torch.utils.data._utils.fetch._IterableDatasetFetcher.fetch``, the frame that calls ``next``
on the dataset's iterator (the same in the main process with ``num_workers=0`` and in torchdata's
``StatefulDataLoader``). ``tests/streaming/test_loader_batch.py`` pins this; where it is not found the
stream plans its own batch size (1 when unset).
"""
from __future__ import annotations

import sys
from typing import Any

from imagenet_stream.errors import ConfigError

_FRAMES_UP = 4  # the fetch frame is the caller's; a wrapper or two in between is tolerated


def fetch_batch_size(depth: int = 1) -> int | None:
    """The batch size of the DataLoader fetch that is asking the calling generator for a sample,
    or None (no DataLoader, or one without automatic batching)."""
    frame = sys._getframe(depth + 1)
    for _ in range(_FRAMES_UP):
        if frame is None:
            return None
        if frame.f_code.co_name == "fetch" and "possibly_batched_index" in frame.f_locals:
            fetcher = frame.f_locals.get("self")
            index = frame.f_locals["possibly_batched_index"]
            if getattr(fetcher, "auto_collation", False) and isinstance(index, (list, tuple)) and index:
                return len(index)
            return None
        frame = frame.f_back
    return None


def planned_batch_size(configured: int | None, loader: int | None, batched: bool = False) -> int:
    """The batch size to plan: the stream's own, the DataLoader's when the stream's is unset, else 1.
    A stream whose own batch size differs from its DataLoader's is refused, and so is a stream that
    yields whole batches (``batched``) read by a DataLoader that batches them again."""
    if batched and loader is not None:
        raise ConfigError(
            f"ImageNetStream(batched=True) yields whole batches of {configured} samples, and a DataLoader with "
            f"batch_size={loader} would batch those again: read it with DataLoader(ds, batch_size=None)")
    if configured is None:
        return loader or 1
    if loader is not None and loader != configured:
        raise ConfigError(
            f"ImageNetStream(batch_size={configured}) is read by a DataLoader with batch_size={loader}: batches "
            "are planned whole, so the two must be equal (else a DataLoader batch mixes workers' runs and a "
            "resume state would count the wrong samples). Pass the same batch_size to both, or leave "
            "ImageNetStream's unset to follow the DataLoader's")
    return configured


def loader_batch_size(dataset: Any, given: int | None) -> int | None:
    """The ``batch_size=`` for a DataLoader a wrapper (``ResumableLoader``, Lightning's module) builds
    over a stream: the one given or the stream's, which must agree when both are set; None (the
    DataLoader batches nothing) when the stream yields whole batches itself (``batched=True``)."""
    own = dataset.batch_size
    if given is None:
        if own is None:
            raise ConfigError("give batch_size= (to the loader wrapper or to ImageNetStream)")
        given = own
    elif own is not None and given != own:
        raise ConfigError(f"batch_size={given} differs from the stream's batch_size={own}: batches are "
                          "planned whole, so they must be the same")
    return None if getattr(dataset, "batched", False) else int(given)


def default_prefetch(batch_size: int, chunk: int) -> int:
    """Ranges fetched ahead by default: two batches' worth, at least 8."""
    return max(8, 2 * -(-batch_size // chunk))


__all__ = ["default_prefetch", "fetch_batch_size", "loader_batch_size", "planned_batch_size"]

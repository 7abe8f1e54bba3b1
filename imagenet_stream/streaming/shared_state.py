"""State shared between a dataset object and its copies in DataLoader worker processes.

A DataLoader worker holds a *copy* of the dataset made when the worker started; with
``persistent_workers=True`` that copy lives across epochs, so an epoch number stored in a plain
attribute would be stale there (webdataset issues #172, #190, #303). Everything the main process
must change after workers exist (epoch, a pending resume) and everything workers report back
(counters) therefore lives in small shared-memory tensors created in ``__init__``. Torch shares
them with worker processes under every start method (fork inherits the mapping; spawn and
forkserver pickle a handle through torch.multiprocessing).

Each process writes only its own counter row (row 0: the main process; row 1 + w: worker w), so
no cross-process lock is needed; a thread lock guards the row within one process (the prefetch
thread and the decoding thread both count).
"""
from __future__ import annotations

import threading

import torch

from imagenet_stream.errors import PlanError

#: Counters reported by ``ImageNetStream.stats()``.
COUNTERS: tuple[str, ...] = (
    "samples_yielded",    # samples handed to the DataLoader
    "substituted_samples",  # yielded in place of a sample that could not be used (see ImageNetStream)
    "corrupt_images",     # samples whose image did not decode (each replaced by a substitute)
    "truncated_shards",   # shards found shorter than their side index says (counted once per process)
    "truncated_samples",  # samples whose bytes lie past the end of a truncated shard (replaced)
    "bytes_read",         # bytes read from the dataset's storage (not from the local cache)
    "requests",           # range requests sent to the dataset's storage
    "shards_read",        # distinct shards this process read from (counted once per process)
    "cache_hits",         # shard or side-index opens served by the local cache
    "cache_misses",       # ... that had to be downloaded into the cache first
    "cache_rejects",      # downloads refused by the cache (size/sha256 mismatch); read directly instead
    "invalid_samples",    # foreign-shard samples without an image or a decimal .cls (left out at discovery)
    "out_of_range_labels",  # samples whose class is outside the declared class space (left out)
    "label_mismatches",   # samples whose side-index class is not the one labels.bin planned (replaced)
    "bad_shards",         # shards whose side index fails its manifest size/sha256 (once per process)
    "unreadable_samples",  # samples of such shards, or whose shard is gone (replaced)
    # time per stage, nanoseconds (see imagenet_stream.streaming.stage_times)
    "wait_ns", "decode_ns", "transform_ns", "iterate_ns", "outside_ns",
)
_COLUMN = {name: i for i, name in enumerate(COUNTERS)}

#: Counter rows: the main process plus up to MAX_WORKERS DataLoader workers.
MAX_WORKERS = 255

# Control slots.
EPOCH, RESUME_EPOCH, RESUME_CONSUMED = range(3)
_CONTROL = 3
NO_RESUME = -1


class SharedState:
    """Epoch, pending resume and counters, visible to every worker copy of one dataset."""

    def __init__(self) -> None:
        self.control = torch.zeros(_CONTROL, dtype=torch.int64).share_memory_()
        self.control[RESUME_EPOCH] = NO_RESUME
        self.counters = torch.zeros((MAX_WORKERS + 1, len(COUNTERS)), dtype=torch.int64).share_memory_()
        self._lock = threading.Lock()
        self._view = self.counters.numpy()  # same memory; a numpy add costs ~0.5 us, a tensor one ~12 us

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["_lock"], state["_view"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._view = self.counters.numpy()

    # -- epoch and resume ------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return int(self.control[EPOCH])

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch; a pending resume of another epoch is dropped."""
        self.control[EPOCH] = epoch
        if int(self.control[RESUME_EPOCH]) not in (NO_RESUME, epoch):
            self.control[RESUME_EPOCH] = NO_RESUME

    def set_resume(self, epoch: int, consumed: int) -> None:
        """Make every pass over ``epoch`` (until another epoch is set) start after the first
        ``consumed`` positions of the epoch's global order, in every process."""
        self.control[EPOCH] = epoch
        self.control[RESUME_CONSUMED] = consumed
        self.control[RESUME_EPOCH] = epoch

    def resume_start(self, epoch: int) -> int:
        """Where passes over ``epoch`` start: the consumed prefix of a loaded resume, else 0."""
        if int(self.control[RESUME_EPOCH]) != epoch:
            return 0
        return int(self.control[RESUME_CONSUMED])

    # -- counters --------------------------------------------------------------------------
    def add(self, slot: int, name: str, value: int = 1) -> None:
        """Add ``value`` to counter ``name`` of process row ``slot``."""
        with self._lock:
            self._view[slot, _COLUMN[name]] += value

    def totals(self) -> dict[str, int]:
        """Every counter summed over the main process and all workers."""
        sums = self.counters.sum(dim=0).tolist()
        return {name: int(sums[i]) for i, name in enumerate(COUNTERS)}


class Counter:
    """The counter row of one process: ``counter.add("bytes_read", n)``."""

    def __init__(self, shared: SharedState | None, slot: int) -> None:
        self.shared = shared
        self.slot = slot
        self.local: dict[str, int] = dict.fromkeys(COUNTERS, 0)

    def add(self, name: str, value: int = 1) -> None:
        if self.shared is not None:
            self.shared.add(self.slot, name, value)
        else:
            self.local[name] += value


def slot_for_worker(worker: int | None) -> int:
    """The row of DataLoader worker ``worker`` (None: the main process); at most MAX_WORKERS workers."""
    if worker is None:
        return 0
    if not 0 <= worker < MAX_WORKERS:
        raise PlanError(f"ImageNetStream supports at most {MAX_WORKERS} DataLoader workers, got worker id {worker}")
    return 1 + worker


__all__ = ["COUNTERS", "MAX_WORKERS", "SharedState", "Counter", "slot_for_worker"]

"""Per-process state of a dataset object, in one documented place.

A dataset object is copied into every DataLoader worker (pickled for spawn/forkserver, inherited by
fork). What must exist once per *process* (the stores, the shard reader with its threads and
caches, the counter row, the per-epoch plans) lives in a :class:`ProcessLocal`, keyed by the pid:
a copy that finds another pid's objects (inherited through fork) starts afresh.

Objects inherited through fork are kept alive on purpose (:data:`_INHERITED`), never garbage
collected in the child: finalizing the parent's fsspec filesystems in a forked child closes the
parent's connections through the event-loop (epoll) instance fork shares, which silently stalls
the parent's remote reads (see ``storage.py``, which pins fsspec's own instances at fork for the
same reason).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: Per-process objects inherited from a parent process through fork, kept alive on purpose.
_INHERITED: list[object] = []


class ProcessLocal(Generic[T]):
    """One ``T`` per process: ``get(make)`` builds it on first use in each process (and after a fork)."""

    def __init__(self) -> None:
        self._pid: int | None = None
        self._value: T | None = None

    def get(self, make: Callable[[], T]) -> T:
        pid = os.getpid()
        if self._pid != pid:
            if self._value is not None:
                _INHERITED.append(self._value)  # inherited through fork: never finalize it here
            self._value, self._pid = make(), pid
        return self._value  # type: ignore[return-value]

    def peek(self) -> T | None:
        """This process's object, if it was built here."""
        return self._value if self._pid == os.getpid() else None

    def __getstate__(self) -> dict:  # pickled into a spawned worker: nothing of this process travels
        return {"_pid": None, "_value": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


__all__ = ["ProcessLocal"]

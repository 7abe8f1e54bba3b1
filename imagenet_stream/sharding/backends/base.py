"""What every backend is: the :class:`Backend` protocol, its ``on_done`` callback, the backend names."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from imagenet_stream.sharding.task import RunConfig, ShardOutcome, ShardTask

OnDone = Callable[[ShardOutcome], None]

BACKENDS = ("local", "ray")


class Backend(Protocol):
    def run(self, config: RunConfig, tasks: Iterable[ShardTask], on_done: OnDone) -> None:
        """Run every task; return when all are done (raise on a task that keeps failing)."""
        ...


__all__ = ["BACKENDS", "Backend", "OnDone"]

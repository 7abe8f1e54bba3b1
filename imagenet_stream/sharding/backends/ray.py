"""The Ray backend: shard tasks as Ray tasks, on a local Ray instance or a cluster.

``imagenet-stream shard ... --backend ray [--ray-address ADDRESS]``: joins the cluster at
``ADDRESS`` (or ``$RAY_ADDRESS``), else starts a local instance. The run's config goes into the
object store once; each shard is one task of the same function the local backend runs, with
``max_retries`` for a worker or node that dies mid-shard (the retry rewrites the same bytes) and
``retry_exceptions`` for errors raised by the task. The driver keeps at most ``2 x`` the cluster's
CPUs tasks in flight, so its memory does not grow with the number of shards. Every node must reach
the sources and the output by their URLs (object storage, or a shared file system).

Ray is an optional extra (``pip install imagenet-stream[ray]``), imported only here.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from ...errors import ConfigError
from ..task import RunConfig, ShardOutcome, ShardTask, run_shard
from . import OnDone

log = logging.getLogger(__name__)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install 'imagenet-stream[ray]'") from None
    return ray


def _run_remote(config: RunConfig, task: ShardTask) -> ShardOutcome:
    return run_shard(config, task)


class RayBackend:
    """``address``: a Ray cluster (None: ``$RAY_ADDRESS`` or a new local instance); ``workers``:
    CPUs of a local instance it starts (0: all); ``retries``: per task."""

    def __init__(self, address: str | None = None, workers: int = 0, retries: int = 2) -> None:
        self.address = address
        self.workers = workers
        self.retries = retries

    def _init(self) -> Any:
        ray = _import_ray()
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"address": self.address, "include_dashboard": False,
                                      "logging_level": logging.WARNING}
            if self.address is None and self.workers > 0:
                kwargs["num_cpus"] = self.workers
            ray.init(**kwargs)
        return ray

    def run(self, config: RunConfig, tasks: Iterable[ShardTask], on_done: OnDone) -> None:
        ray = self._init()
        remote = ray.remote(num_cpus=1, max_retries=self.retries, retry_exceptions=True)(_run_remote)
        config_ref = ray.put(config)
        limit = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        in_flight: dict[Any, int] = {}
        pending = iter(tasks)
        exhausted = False
        while True:
            while not exhausted and len(in_flight) < limit:
                task = next(pending, None)
                if task is None:
                    exhausted = True
                    break
                in_flight[remote.remote(config_ref, task)] = task.number
            if not in_flight:
                return
            done, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in done:
                number = in_flight.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - Ray wraps the task's error
                    for other in in_flight:
                        ray.cancel(other, force=True)
                    raise _failure(number, exc) from None
                on_done(outcome)


def _failure(number: int, exc: BaseException) -> Exception:
    from ...redaction import describe
    from .local import TaskFailed

    cause = getattr(exc, "cause", None) or exc
    return TaskFailed(f"shard {number} failed on Ray after its retries: {describe(cause)}; the shards committed "
                      "so far stay, re-run the same command to resume")


__all__ = ["RayBackend"]

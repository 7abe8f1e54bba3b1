"""Where shard tasks run: ``local`` (a process pool on this machine) or ``ray`` (a Ray cluster).

Every backend runs the same task function (:func:`imagenet_stream.sharding.task.run_shard`) on the
same :class:`~imagenet_stream.sharding.task.RunConfig`, keeps a bounded number of tasks in flight,
retries a task whose worker died, and reports each finished shard through ``on_done``; so every
backend, for any number of workers, writes the same bytes.
"""
from __future__ import annotations

from imagenet_stream.sharding.backends.base import BACKENDS, Backend, OnDone


def make_backend(name: str, *, workers: int, ray_address: str | None = None, retries: int = 2) -> Backend:
    """The backend called ``name`` (Ray is imported only when asked for)."""
    from imagenet_stream.errors import ConfigError

    if name == "local":
        from imagenet_stream.sharding.backends.local import LocalBackend

        return LocalBackend(workers=workers, retries=retries)
    if name == "ray":
        from imagenet_stream.sharding.backends.ray import RayBackend

        return RayBackend(address=ray_address, workers=workers, retries=retries)
    raise ConfigError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Backend", "OnDone", "make_backend"]

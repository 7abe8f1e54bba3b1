"""The Ray backend: shard tasks as Ray tasks, on a local Ray instance or a cluster.

``imagenet-stream shard ... --backend ray [--ray-address ADDRESS]``: joins the cluster at
``ADDRESS`` (or ``$RAY_ADDRESS``), else starts a local instance on loopback, which it shuts down at
the end and which a small reaper process kills should the driver itself be killed. The run's config goes into the
object store once; each shard is one task of the same function the local backend runs, with
``max_retries`` for a worker or node that dies mid-shard (the retry rewrites the same bytes) and
``retry_exceptions`` for errors raised by the task. The driver keeps at most ``2 x`` the cluster's
CPUs tasks in flight, so its memory does not grow with the number of shards. Every node must reach
the sources and the output by their URLs (object storage, or a shared file system).

Ray is an optional extra (``pip install imagenet-stream[ray]``), imported only here.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

from imagenet_stream.errors import ConfigError
from imagenet_stream.sharding.backends.base import OnDone
from imagenet_stream.sharding.task import RunConfig, ShardOutcome, ShardTask, run_shard

log = logging.getLogger(__name__)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install 'imagenet-stream[ray]'") from None
    return ray


def _run_remote(config: RunConfig, task: ShardTask) -> ShardOutcome:
    return run_shard(config, task)


#: Set in the driver's environment before it starts a local Ray instance: every process of that
#: instance inherits it, whatever title Ray gives the process.
DRIVER_ENV = "IMAGENET_STREAM_RAY_DRIVER"

#: Run by the reaper process: read the Ray node ids the driver sends, one a line, until the driver
#: is gone (stdin closes); then kill every process whose environment carries the driver's tag
#: (what the driver started itself) or one of those node ids (what Ray's raylet started), or that
#: holds a file open in the driver's session folder (``/tmp/ray/session_<time>_<driver pid>/``).
_REAPER = r"""
import os, re, signal, sys
tags = {("%s=%s" % (sys.argv[1], sys.argv[2])).encode()}
session = re.compile(r"/session_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d+_%s/" % sys.argv[2])
for line in sys.stdin.buffer:
    if line.strip():
        tags.add(b"RAY_NODE_ID=" + line.strip())


def ours(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            if tags.intersection(f.read().split(b"\0")):
                return True
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if session.search(os.readlink(f"/proc/{pid}/fd/{fd}") + "/"):
                return True
    except OSError:
        pass
    return False


for pid in os.listdir("/proc"):
    if pid.isdigit() and int(pid) not in (os.getpid(), int(sys.argv[2])) and ours(pid):
        try:
            os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
"""


def _start_reaper(driver_pid: int) -> subprocess.Popen | None:
    """A watchdog in its own session that outlives a killed driver and reaps its local Ray instance
    (Ray's dashboard and runtime-env agents survive a SIGKILLed driver otherwise). Linux only."""
    if not os.path.isdir("/proc"):
        return None
    os.environ[DRIVER_ENV] = str(driver_pid)
    env = {k: v for k, v in os.environ.items() if k != DRIVER_ENV}  # the reaper spares itself
    return subprocess.Popen([sys.executable, "-c", _REAPER, DRIVER_ENV, str(driver_pid)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)


class RayBackend:
    """``address``: a Ray cluster (None: ``$RAY_ADDRESS`` or a new local instance); ``workers``:
    CPUs of a local instance it starts (0: all); ``retries``: per task."""

    def __init__(self, address: str | None = None, workers: int = 0, retries: int = 2) -> None:
        self.address = address
        self.workers = workers
        self.retries = retries

    def _init(self) -> tuple[Any, bool]:
        """Ray, initialized; whether this call started a local instance (which it then owns)."""
        ray = _import_ray()
        if ray.is_initialized():
            return ray, False
        kwargs: dict[str, Any] = {"address": self.address, "include_dashboard": False,
                                  "logging_level": logging.WARNING}
        local = self.address is None and not os.environ.get("RAY_ADDRESS")
        if local:
            kwargs["_node_ip_address"] = "127.0.0.1"  # one machine: every Ray process listens on loopback
            if self.workers > 0:
                kwargs["num_cpus"] = self.workers
        ray.init(**kwargs)
        return ray, local

    def run(self, config: RunConfig, tasks: Iterable[ShardTask], on_done: OnDone) -> None:
        starts_local = self.address is None and not os.environ.get("RAY_ADDRESS") and not (
            "ray" in sys.modules and sys.modules["ray"].is_initialized())
        reaper = _start_reaper(os.getpid()) if starts_local else None  # before ray.init: a kill during it too
        try:
            ray, local = self._init()
            if reaper is not None:
                reaper.stdin.write(ray.get_runtime_context().get_node_id().encode() + b"\n")  # type: ignore[union-attr]
                reaper.stdin.flush()  # type: ignore[union-attr]
            self._run(ray, config, tasks, on_done)
        finally:
            if starts_local and "ray" in sys.modules and sys.modules["ray"].is_initialized():
                sys.modules["ray"].shutdown()
            if reaper is not None:
                os.environ.pop(DRIVER_ENV, None)
                reaper.stdin.close()  # type: ignore[union-attr]
                reaper.wait(timeout=30)

    def _run(self, ray: Any, config: RunConfig, tasks: Iterable[ShardTask], on_done: OnDone) -> None:
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
    from imagenet_stream.redaction import describe
    from imagenet_stream.sharding.backends.local import TaskFailed

    cause = getattr(exc, "cause", None) or exc
    return TaskFailed(f"shard {number} failed on Ray after its retries: {describe(cause)}; the shards committed "
                      "so far stay, re-run the same command to resume")


__all__ = ["RayBackend"]

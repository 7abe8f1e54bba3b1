"""The local backend: shard tasks on a pool of worker processes on this machine (or in-process).

Workers are started with ``forkserver`` (``spawn`` where that is missing), never ``fork`` (the
coordinator may run fsspec's I/O thread). Each gets the run's config once and then one task at a
time over its own pipe, so the coordinator always knows which shard a worker holds:

* a worker that dies (killed, out of memory) is replaced and its shard handed out again;
* a task that raises is retried ``retries`` times, then the run stops with its error (committed
  shards stay: re-running the command resumes);
* each worker holds the read end of an *alive pipe* whose write end only the coordinator has: when
  the coordinator dies (SIGKILL, OOM killer, preemption) the pipe closes and the worker exits at
  once, mid-shard or idle, so no process is left behind;
* workers ignore SIGINT: a Ctrl-C stops the coordinator, which terminates them and leaves the
  output resumable.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

from ...errors import ImageNetStreamError
from ...redaction import describe
from ..task import RunConfig, ShardTask, run_shard
from . import OnDone

log = logging.getLogger(__name__)

_EXIT_ORPHANED = 70
_STOP_GRACE = 5.0


class TaskFailed(ImageNetStreamError, RuntimeError):
    """A shard task kept failing; the run stopped (its committed shards stay, the run resumes)."""


def _context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    # the forkserver imports the task's modules (Pillow, numpy, fsspec) once; each worker it forks
    # starts with them loaded instead of importing them again
    ctx.set_forkserver_preload(["imagenet_stream.sharding.task"])
    return ctx


def _watch(alive: Connection) -> None:
    """Exit as soon as the coordinator is gone (its end of the alive pipe closed)."""
    try:
        alive.recv_bytes()
    except (EOFError, OSError):
        pass
    os._exit(_EXIT_ORPHANED)


def _worker(conn: Connection, alive: Connection, config: RunConfig) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch, args=(alive,), name="imagenet-stream-watchdog", daemon=True).start()
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        try:
            outcome = run_shard(config, task)
        except BaseException as exc:  # noqa: BLE001 - reported to the coordinator, which decides
            conn.send(("error", task.number, describe(exc)))
        else:
            conn.send(("ok", task.number, outcome))


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    alive: Connection          # the coordinator's (write) end, never written
    task: ShardTask | None = None


class LocalBackend:
    """``workers`` processes (0 or 1: run the tasks in this process); ``retries`` per task."""

    def __init__(self, workers: int, retries: int = 2) -> None:
        self.workers = max(0, int(workers))
        self.retries = retries

    def run(self, config: RunConfig, tasks: Iterable[ShardTask], on_done: OnDone) -> None:
        if self.workers <= 1:
            for task in tasks:
                on_done(self._in_process(config, task))
            return
        _Pool(config, self.workers, self.retries).run(iter(tasks), on_done)

    def _in_process(self, config: RunConfig, task: ShardTask):
        for attempt in range(self.retries + 1):
            try:
                return run_shard(config, task)
            except (OSError, ImageNetStreamError) as exc:
                if attempt == self.retries:
                    raise
                log.warning("shard %d failed (%s); retrying (%d/%d)", task.number, describe(exc), attempt + 1,
                            self.retries)
        raise AssertionError("unreachable")


class _Pool:
    def __init__(self, config: RunConfig, size: int, retries: int) -> None:
        self.config = config
        self.size = size
        self.retries = retries
        self.ctx = _context()
        self.workers: list[_Worker] = []
        self.attempts: dict[int, int] = {}

    def _start(self) -> _Worker:
        mine, theirs = self.ctx.Pipe()
        alive_read, alive_write = self.ctx.Pipe(duplex=False)
        process = self.ctx.Process(target=_worker, args=(theirs, alive_read, self.config),
                                   name="imagenet-stream-shard-worker", daemon=True)
        process.start()
        theirs.close()
        alive_read.close()
        worker = _Worker(process, mine, alive_write)
        self.workers.append(worker)
        return worker

    def _retire(self, worker: _Worker) -> None:
        self.workers.remove(worker)
        for c in (worker.conn, worker.alive):
            c.close()

    def run(self, tasks: Iterator[ShardTask], on_done: OnDone) -> None:
        retry: deque[ShardTask] = deque()
        exhausted = False

        def next_task() -> ShardTask | None:
            nonlocal exhausted
            if retry:
                return retry.popleft()
            if exhausted:
                return None
            task = next(tasks, None)
            exhausted = task is None
            return task

        try:
            for _ in range(self.size):
                self._start()
            while True:
                for worker in [w for w in self.workers if w.task is None]:
                    task = next_task()
                    if task is None:
                        break
                    worker.task = task
                    worker.conn.send(task)
                busy = [w for w in self.workers if w.task is not None]
                if not busy:
                    return
                idle = [w for w in self.workers if w.task is None]
                ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in self.workers], timeout=1.0))
                for worker in idle:
                    if worker.process.sentinel in ready:  # died between tasks: nothing to redo
                        log.warning("a worker process died while idle (exit code %s); replacing it",
                                    worker.process.exitcode)
                        self._retire(worker)
                        self._start()
                for worker in busy:
                    if worker.conn in ready:
                        try:
                            status, number, payload = worker.conn.recv()
                        except (EOFError, OSError):
                            status, number, payload = "died", worker.task.number, "its worker process died"  # type: ignore[union-attr]
                        task, worker.task = worker.task, None
                        if status == "ok":
                            on_done(payload)
                            continue
                        self._failed(task, payload, retry)  # type: ignore[arg-type]
                        if status == "died":
                            worker.process.join(_STOP_GRACE)
                            self._retire(worker)
                            self._start()
                    elif worker.process.sentinel in ready:
                        task, worker.task = worker.task, None
                        code = worker.process.exitcode
                        self._retire(worker)
                        self._failed(task, f"its worker process died (exit code {code})", retry)  # type: ignore[arg-type]
                        self._start()
        finally:
            self._stop()

    def _failed(self, task: ShardTask, why: str, retry: deque[ShardTask]) -> None:
        attempts = self.attempts.get(task.number, 0) + 1
        self.attempts[task.number] = attempts
        if attempts > self.retries:
            raise TaskFailed(f"shard {task.number} failed {attempts} times, last: {why}; the shards committed so "
                             "far stay, re-run the same command to resume")
        log.warning("shard %d failed (%s); retrying (%d/%d)", task.number, why, attempts, self.retries)
        retry.append(task)

    def _stop(self) -> None:
        """Stop every worker: politely when idle, by signal when busy (after Ctrl-C or an error)."""
        for worker in self.workers:
            try:
                if worker.task is None:
                    worker.conn.send(None)
                else:
                    worker.process.terminate()
            except (OSError, ValueError):
                pass
        for worker in self.workers:
            worker.process.join(_STOP_GRACE)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(_STOP_GRACE)
            for c in (worker.conn, worker.alive):
                c.close()
        self.workers.clear()


__all__ = ["LocalBackend", "TaskFailed"]

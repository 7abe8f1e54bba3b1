"""The local backend: shard tasks on a pool of worker processes on this machine (or in-process).

Workers are started with ``forkserver`` (``spawn`` where that is missing), never ``fork`` (the
coordinator may run fsspec's I/O thread). Each gets the run's config once and then one task at a
time over its own pipe, so the coordinator always knows which shard a worker holds:

* a worker builds one shard while the previous one commits (fsync, rename, side index, marker) on
  a thread, so the disk's write-back no longer idles a core;
* a worker that dies (killed, out of memory) is replaced and its unfinished shards handed out again;
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
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

from imagenet_stream.errors import ImageNetStreamError
from imagenet_stream.redaction import describe
from imagenet_stream.sharding.backends.base import OnDone
from imagenet_stream.sharding.task import (
    BuiltShard,
    RunConfig,
    ShardTask,
    build_shard,
    commit_shard,
    run_shard,
)

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
    """Build shards one after the other; each one's commit (fsync, rename, side index, marker) runs
    on a thread while the next is built. Messages: ``("ready", n)`` when shard n is built (send the
    next task), ``("ok", n, outcome)`` once it is committed, ``("error", n, text)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch, args=(alive,), name="imagenet-stream-watchdog", daemon=True).start()
    lock = threading.Lock()

    def send(message: tuple) -> None:
        with lock:
            conn.send(message)

    def commit(built: BuiltShard) -> None:
        try:
            send(("ok", built.task.number, commit_shard(config, built)))
        except BaseException as exc:  # noqa: BLE001 - reported to the coordinator, which decides
            send(("error", built.task.number, describe(exc)))

    committing: threading.Thread | None = None
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            break
        if task is None:
            break
        try:
            built = build_shard(config, task)
        except BaseException as exc:  # noqa: BLE001
            send(("error", task.number, describe(exc)))
            continue
        if committing is not None:
            committing.join()  # at most one commit in flight: it overlaps this build, never piles up
        # "ready" goes out before the commit can report: the coordinator must see a shard move from
        # building to committing before its result (it then hands this worker the next task).
        send(("ready", task.number, None))
        committing = threading.Thread(target=commit, args=(built,), name="imagenet-stream-commit")
        committing.start()
    if committing is not None:
        committing.join()


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    alive: Connection          # the coordinator's (write) end, never written
    building: ShardTask | None = None
    committing: dict[int, ShardTask] = field(default_factory=dict)

    @property
    def outstanding(self) -> list[ShardTask]:
        return ([self.building] if self.building is not None else []) + list(self.committing.values())


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
                for worker in [w for w in self.workers if w.building is None]:
                    task = next_task()
                    if task is None:
                        break
                    worker.building = task
                    worker.conn.send(task)
                busy = [w for w in self.workers if w.outstanding]
                if not busy:
                    return
                ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in self.workers], timeout=1.0))
                for worker in list(self.workers):
                    if worker.conn in ready and worker.outstanding:
                        try:
                            status, number, payload = worker.conn.recv()
                        except (EOFError, OSError):
                            self._lost(worker, retry)
                            continue
                        self._message(worker, status, number, payload, retry, on_done)
                    elif worker.process.sentinel in ready:
                        self._lost(worker, retry)
        finally:
            self._stop()

    def _message(self, worker: _Worker, status: str, number: int, payload, retry: deque[ShardTask],
                 on_done: OnDone) -> None:
        if status == "ready":  # built; its commit runs while the worker builds the next one
            if worker.building is not None and worker.building.number == number:
                worker.committing[number], worker.building = worker.building, None
            return
        task = worker.committing.pop(number, None)
        if task is None and worker.building is not None and worker.building.number == number:
            task, worker.building = worker.building, None
        if task is None:
            return
        if status == "ok":
            on_done(payload)
        else:
            self._failed(task, payload, retry)

    def _lost(self, worker: _Worker, retry: deque[ShardTask]) -> None:
        """A worker died: replace it, hand its unfinished shards out again (or note it died idle)."""
        worker.process.join(_STOP_GRACE)
        code = worker.process.exitcode
        lost = worker.outstanding
        self._retire(worker)
        if not lost:
            log.warning("a worker process died while idle (exit code %s); replacing it", code)
        for task in lost:
            self._failed(task, f"its worker process died (exit code {code})", retry)
        self._start()

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
                if not worker.outstanding:
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

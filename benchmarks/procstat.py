"""Memory and CPU of a process tree, read from ``/proc`` (Linux; psutil is not needed).

``VmRSS`` is the resident set now, ``VmHWM`` its high-water mark; CPU time is ``utime + stime``
from ``/proc/PID/stat``. A :class:`PeakSampler` thread polls the summed RSS of a process and all
its descendants (DataLoader workers, their threads' memory included) to catch the tree's peak,
which no single process's ``VmHWM`` can tell.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _status_kb(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/PID/status`` in bytes; 0 when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def rss(pid: int) -> int:
    """Resident set size of ``pid`` now, bytes."""
    return _status_kb(pid, "VmRSS")


def hwm(pid: int) -> int:
    """Peak resident set size of ``pid`` over its life, bytes."""
    return _status_kb(pid, "VmHWM")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used, seconds (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime: fields 14 and 15


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (over all its threads)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return out
    for tid in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        out.extend(int(c) for c in text.split())
    return sorted(set(out))


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, breadth first."""
    found: list[int] = []
    frontier = [pid]
    while frontier:
        nxt = [c for p in frontier for c in children(p)]
        found.extend(nxt)
        frontier = nxt
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    return [pid, *descendants(pid)]


def tree_rss(pid: int) -> int:
    """Summed RSS of ``pid`` and its descendants, bytes (shared pages count once per process)."""
    return sum(rss(p) for p in tree(pid))


class PeakSampler:
    """Background thread recording the peak of :func:`tree_rss` every ``interval`` seconds."""

    def __init__(self, pid: int | None = None, interval: float = 0.02) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss(self.pid))

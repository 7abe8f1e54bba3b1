"""Process helpers for tests: a process tree's peak memory, and finding its (stray) descendants.

Linux only (``/proc``). ``ru_maxrss`` of a child is useless here: it keeps the pytest process's
resident size from before ``exec``; ``VmHWM`` in ``/proc/PID/status`` is per address space.
"""
from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


def _status(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return {}


def children_of(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (by parent pid)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = _status(int(entry)).get("PPid")
            if ppid is not None:
                parents[int(entry)] = int(ppid)
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return found


def direct_children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _status(int(entry)).get("PPid") == str(pid) and alive(int(entry)):
            found.append(int(entry))
    return found


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    state = _status(pid).get("State", "")
    return bool(state) and not state.startswith("Z")


@dataclass
class PeakMemory:
    """Peak ``VmHWM`` (MB) of the main process and of its descendants, sampled while it runs."""

    main_mb: float = 0.0
    descendants_mb: float = 0.0
    descendants: set[int] = field(default_factory=set)


def run_measured(cmd: Sequence[str], timeout: float = 600, interval: float = 0.05,
                 **popen) -> tuple[subprocess.CompletedProcess, PeakMemory]:
    """Run ``cmd`` to completion, sampling the memory of it and its descendants."""
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    peak = PeakMemory()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            main = _status(proc.pid).get("VmHWM")
            if main:
                peak.main_mb = max(peak.main_mb, int(main.split()[0]) / 1024)
            for child in children_of(proc.pid):
                peak.descendants.add(child)
                hwm = _status(child).get("VmHWM")
                if hwm:
                    peak.descendants_mb = max(peak.descendants_mb, int(hwm.split()[0]) / 1024)
            time.sleep(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        done.set()
        thread.join()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), peak


def tagged(name: str, value: str) -> list[int]:
    """Live processes whose environment holds ``name=value`` (a test's subprocess and its descendants)."""
    want = f"{name}={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if want in f.read().split(b"\0") and alive(int(entry)):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def wait_gone(name: str, value: str, timeout: float = 10.0) -> list[int]:
    """Wait until no process carries the tag; return those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    left = tagged(name, value)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = tagged(name, value)
    return left

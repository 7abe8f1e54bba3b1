"""torchrun elastic, for real: two agents on this machine train ``examples/train_elastic.py``; one is
SIGKILLed (with its workers) at a random step, the survivor restarts its workers at world 2 and
resumes from the latest checkpoint, a third agent rejoins (world 4 again), and the epoch ends with
every sample consumed exactly once over the chain of checkpoints, equal counts per rank in each world.

``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` is what the recipe says to set (without it the restarted
workers' gloo setup reads the dead generation's addresses; pytorch/pytorch#135712). The rendezvous
timeouts are shortened through ``--rdzv-conf`` so the test takes seconds, not the default minutes.
"""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from support.procs import alive, children_of

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "train_elastic.py"
SAMPLES, BATCH, EVERY = 640, 4, 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agent(port: int, ds: str, ckpt: Path, log: Path, *, host: bool) -> subprocess.Popen:
    conf = f"is_host={int(host)},last_call_timeout=2,keep_alive_interval=2,keep_alive_max_attempt=3,join_timeout=120"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1:2", "--nproc-per-node=2",
           "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=elastic-test",
           f"--rdzv-conf={conf}", "--max-restarts=3", "--monitor-interval=0.5",
           str(EXAMPLE), ds, "--ckpt-dir", str(ckpt), "--batch-size", str(BATCH), "--every", str(EVERY),
           "--step-delay", "0.2", "--audit"]
    env = {**os.environ, "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1", "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, cwd=ckpt.parent, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def summary(ckpt: Path) -> dict:
    try:
        return json.loads((ckpt / "latest.json").read_text())
    except (OSError, ValueError):
        return {}


def wait_for(predicate, timeout: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")


def kill_node(proc: subprocess.Popen) -> None:
    """A node lost: the agent and its workers (each in its own session) die at once."""
    for pid in [proc.pid, *children_of(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=10)


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            kill_node(proc)


# The acceptance run: IMAGENET_STREAM_ELASTIC_SEEDS=0,1,2 (three random kill moments in a row).
@pytest.mark.parametrize("seed", [int(s) for s in os.environ.get("IMAGENET_STREAM_ELASTIC_SEEDS", "0").split(",")])
def test_node_lost_and_rejoined_consumes_every_sample_once(tmp_path: Path, dsutil, seed: int) -> None:
    built = dsutil.build_dataset(str(tmp_path / "ds"), SAMPLES, 40)
    ckpt, port = tmp_path / "ckpt", free_port()
    logs = [tmp_path / "agent-a.log", tmp_path / "agent-b.log", tmp_path / "agent-c.log"]
    a = agent(port, str(tmp_path / "ds"), ckpt, logs[0], host=True)
    procs = [a]
    try:
        procs.append(b := agent(port, str(tmp_path / "ds"), ckpt, logs[1], host=False))
        kill_at = random.Random(seed).randrange(2, 6) * EVERY  # a random checkpointed step of world 4
        wait_for(lambda: summary(ckpt).get("world_size") == 4 and summary(ckpt).get("step", 0) >= kill_at,
                 120, "world 4 to train", logs)
        time.sleep(random.Random(seed).uniform(0, 0.6))  # mid-way between checkpoints
        killed_at = time.monotonic()
        kill_node(b)
        wait_for(lambda: summary(ckpt).get("world_size") == 2, 120, "the survivor to resume at world 2", logs)
        regrouped = time.monotonic() - killed_at
        procs.append(c := agent(port, str(tmp_path / "ds"), ckpt, logs[2], host=False))
        wait_for(lambda: a.poll() is not None and c.poll() is not None, 240, "the epoch to finish", logs)
        assert (a.returncode, c.returncode) == (0, 0), [p.read_text(errors="replace")[-3000:] for p in logs]
    finally:
        stop(procs)
    assert not [p for p in children_of(os.getpid()) if alive(p) and "train_elastic" in open(
        f"/proc/{p}/cmdline", "rb").read().decode(errors="replace")]

    final = torch.load(ckpt / "latest.pt", weights_only=True)
    assert final["done"] and final["epoch"] == 0
    worlds = [segment["world_size"] for segment in final["audit"]]
    assert 2 in worlds and worlds.index(2) < len(worlds) - 1 - worlds[::-1].index(4), worlds  # 4 … 2 … 4
    consumed: list[str] = []
    for segment in final["audit"]:
        counts = {len(keys) for keys in segment["keys"]}
        assert len(counts) == 1, f"unequal counts per rank in world {segment['world_size']}: {segment}"
        consumed += [key for keys in segment["keys"] for key in keys]
    assert len(consumed) == len(set(consumed)), "a sample was consumed twice across checkpoints"
    assert sorted(consumed) == sorted(k for shard in built.keys for k in shard), "a sample was skipped"
    print(f"regrouped at world 2 {regrouped:.1f} s after the kill; worlds {worlds}")

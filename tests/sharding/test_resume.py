"""Sharding that survives crashes: real subprocesses killed with SIGKILL at random moments, re-run with
the same command, compared byte for byte with an uninterrupted run; worker kills, Ray, no strays.

Acceptance (issue: sharding at scale): a tar of per-synset tars of 20,000 images over 2,000 synsets,
5 SIGKILLs, each followed by the same command, ends byte-identical to an uninterrupted run, the
shards committed before the last run untouched, no stray processes; the same dataset from Ray.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from support import procs

from imagenet_stream.hierarchy import standard_space
from imagenet_stream.synthetic import write_tar_of_tars

TAG = "IMAGENET_STREAM_TEST_TAG"
SYNSETS, PER_SYNSET, DUPLICATES = 2000, 10, 3


@pytest.fixture(scope="module")
def big_tar(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "fall11_like.tar"
    written = write_tar_of_tars(str(path), standard_space("in21k").wnids[:SYNSETS], PER_SYNSET, seed=3,
                                duplicates=DUPLICATES)
    assert written == SYNSETS * PER_SYNSET
    return path


def command(source: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "imagenet_stream.cli", "shard", str(source), "--out", str(out), "--no-progress",
            "--shard-size", "400", "--workers", "2", *extra]


def env(tag: str) -> dict[str, str]:
    return {**os.environ, TAG: tag, "SOURCE_DATE_EPOCH": "1700000000", "PYTHONUNBUFFERED": "1"}


def run(cmd: list[str], tag: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env(tag or uuid.uuid4().hex), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def digests(out: Path) -> dict[str, str]:
    """sha256 of every file of the dataset (not the work area; report.json without its 'out' field)."""
    found = {}
    for path in sorted(out.iterdir()):
        if path.name.startswith("."):
            continue
        data = path.read_bytes()
        if path.name == "report.json":
            doc = json.loads(data)
            doc.pop("out")
            data = json.dumps(doc, sort_keys=True).encode()
        found[path.name] = hashlib.sha256(data).hexdigest()
    return found


def committed(out: Path) -> dict[str, tuple[int, int, int]]:
    """(inode, mtime, size) of every shard and side index that has a done-marker."""
    done = {p.stem for p in out.glob(".imagenet-stream/done/*/*.msgpack")}
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size)
            for p in out.glob("*-*.*") if p.suffix in (".tar", ".idx") and p.stem in done}


@pytest.fixture(scope="module")
def clean(big_tar, tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("clean") / "ds"
    start = time.monotonic()
    proc = run(command(big_tar, out))
    assert "19997 in 50 shard(s)" in proc.stdout and "duplicate" in proc.stdout
    digest = digests(out)
    digest["__seconds__"] = str(time.monotonic() - start)  # how long an uninterrupted run takes here
    return digest


def same(out: Path, clean: dict[str, str]) -> bool:
    return digests(out) == {k: v for k, v in clean.items() if k != "__seconds__"}


def kill_at(cmd: list[str], delay: float, tag: str) -> None:
    proc = subprocess.Popen(cmd, env=env(tag), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert procs.wait_gone(TAG, tag) == [], "the sharder's workers outlived it"


@pytest.mark.slow
def test_five_sigkills_then_the_same_command_gives_the_same_bytes(big_tar, clean, tmp_path) -> None:
    out = tmp_path / "ds"
    cmd = command(big_tar, out)
    rng = np.random.default_rng(11)
    full = float(clean["__seconds__"])
    interrupted = 0
    for attempt, share in enumerate(rng.uniform(0.15, 0.5, 5)):  # random moments within a run's span
        kill_at(cmd, share * full, f"kill-{attempt}-{uuid.uuid4().hex}")
        interrupted += not (out / "index.json").exists()
    assert interrupted >= 2  # kills hit unfinished work (listing, tasks or finalize), not just a done run
    before = committed(out)
    assert before, "no shard was committed before the last kill: the delays are too short for this machine"
    proc = run(cmd)
    assert same(out, clean)
    after = committed(out)
    assert {n: after[n] for n in before} == before  # committed shards were neither redone nor rewritten
    assert "resumed" in proc.stdout or "already complete" in proc.stdout


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_its_shard_redone(big_tar, clean, tmp_path) -> None:
    out = tmp_path / "ds"
    tag = uuid.uuid4().hex
    proc = subprocess.Popen(command(big_tar, out), env=env(tag), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        servers = [p for p in procs.direct_children(proc.pid) if "forkserver" in procs.cmdline(p)]
        workers = [p for s in servers for p in procs.direct_children(s)]  # forked by the forkserver
        if workers and list((out / ".imagenet-stream").glob("done/*/*.msgpack")):
            os.kill(workers[0], signal.SIGKILL)
            killed = workers[0]
        time.sleep(0.05)
    _, err = proc.communicate(timeout=300)
    assert killed is not None and proc.returncode == 0, err[-2000:]
    assert "worker process died" in err  # busy: its shard handed out again; idle: just replaced
    assert same(out, clean)


@pytest.mark.slow
def test_ray_gives_the_same_dataset_and_survives_a_killed_task_and_driver(big_tar, clean, tmp_path) -> None:
    pytest.importorskip("ray")
    out = tmp_path / "ds"
    cmd = command(big_tar, out, "--backend", "ray")
    tag = uuid.uuid4().hex
    proc = subprocess.Popen(cmd, env=env(tag), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed_task = False
    deadline = time.monotonic() + 120
    while not killed_task and time.monotonic() < deadline and proc.poll() is None:
        for pid in procs.tagged(TAG, tag) + procs.children_of(proc.pid):
            try:
                title = open(f"/proc/{pid}/cmdline").read()
            except OSError:
                continue
            if title.startswith("ray::_run_remote"):
                os.kill(pid, signal.SIGKILL)  # a task killed mid-shard: Ray retries it
                killed_task = True
                break
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)  # then the driver itself
    proc.wait()
    assert killed_task
    assert procs.wait_gone(TAG, tag, timeout=20) == [], "Ray's processes outlived the killed driver"
    run(cmd, tag=tag)  # the same command again: it resumes
    assert procs.wait_gone(TAG, tag, timeout=20) == []
    assert same(out, clean)


def small_tar(tmp_path: Path) -> Path:
    path = tmp_path / "small.tar"
    write_tar_of_tars(str(path), standard_space("in1k").wnids[:20], 5, seed=1, duplicates=2)
    return path


def test_local_and_in_process_runs_are_byte_identical(tmp_path) -> None:
    source = small_tar(tmp_path)
    run(command(source, tmp_path / "a", "--workers", "0", "--shard-size", "10"))
    run(command(source, tmp_path / "b", "--workers", "2", "--shard-size", "10"))
    a, b = digests(tmp_path / "a"), digests(tmp_path / "b")
    assert a == b and len([n for n in a if n.endswith(".tar")]) == 10


def test_other_options_on_an_unfinished_run_are_refused(tmp_path) -> None:
    source = small_tar(tmp_path)
    out = tmp_path / "ds"
    run(command(source, out, "--seed", "1"))
    (out / "index.json").unlink()  # as if the first run had died before its end
    proc = subprocess.run(command(source, out, "--seed", "2"), env=env("x"), capture_output=True, text=True)
    assert proc.returncode == 2 and "holds an unfinished sharding run of other sources or options" in proc.stderr
    run(command(source, out, "--seed", "2", "--overwrite"))
    status = subprocess.run([sys.executable, "-m", "imagenet_stream.cli", "shard", "--status", "--out", str(out)],
                            capture_output=True, text=True)
    assert status.returncode == 0 and "complete, 98 samples in 1 shards (0 excluded)" in status.stdout


def test_status_of_an_unfinished_run(tmp_path) -> None:
    source = small_tar(tmp_path)
    out = tmp_path / "ds"
    run(command(source, out, "--shard-size", "10"))
    (out / "index.json").unlink()
    for marker in sorted(out.glob(".imagenet-stream/done/*/*.msgpack"))[3:]:
        marker.unlink()
    status = subprocess.run([sys.executable, "-m", "imagenet_stream.cli", "shard", "--status", "--out", str(out)],
                            capture_output=True, text=True)
    assert "3/10 shards done (100 images planned)" in status.stdout
    proc = run(command(source, out, "--shard-size", "10"))
    assert "resumed: 3 shard(s) were done already" in proc.stdout


def test_ctrl_c_stops_cleanly_and_leaves_a_resumable_output(big_tar, clean, tmp_path) -> None:
    out = tmp_path / "ds"
    tag = uuid.uuid4().hex
    # Ctrl-C's default action in the child, even when this test runs as a background job (whose
    # shell made SIGINT ignored, which the child would inherit)
    proc = subprocess.Popen(command(big_tar, out), env=env(tag), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not list(out.glob(".imagenet-stream/done/*/*.msgpack")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "re-run the same command to resume" in err and "Traceback" not in err
    assert procs.wait_gone(TAG, tag) == []
    run(command(big_tar, out))
    assert same(out, clean)

"""The Ray backend on a simulated three-node cluster (``ray.cluster_utils.Cluster``; a head with no
CPUs, two worker nodes, each node with its own temp dir), sources and output on the S3 server only.
One worker node is killed mid-run: its tasks are retried on the other node and the dataset is
byte-identical to a run of the local backend (resuming with the same command, should the first
driver give up)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

import pytest
from support.procs import children_of, cmdline

from imagenet_stream.hierarchy import standard_space
from imagenet_stream.storage import Store
from imagenet_stream.synthetic import write_tar_of_tars

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

SYNSETS, PER_SYNSET, SHARD_SIZE = 300, 10, 150   # 20 shards


def shard_cmd(source: str, out: str, options: dict, *extra: str) -> list[str]:
    return [sys.executable, "-m", "imagenet_stream.cli", "shard", source, "--out", out, "--no-progress",
            "--shard-size", str(SHARD_SIZE), "--storage-options", json.dumps(options), *extra]


def env() -> dict[str, str]:
    return {**os.environ, "SOURCE_DATE_EPOCH": "1700000000", "PYTHONUNBUFFERED": "1"}


def digests(url: str, options: dict) -> dict[str, str]:
    """sha256 of every file of a dataset (not the work area; report.json without its 'out' field)."""
    store = Store(url, options)
    found = {}
    for name in store.list():
        if name.startswith("."):
            continue
        data = store.read(name)
        if name == "report.json":
            doc = json.loads(data)
            doc.pop("out")
            data = json.dumps(doc, sort_keys=True).encode()
        found[name] = hashlib.sha256(data).hexdigest()
    return found


def committed(url: str, options: dict) -> int:
    import s3fs

    fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
    return sum(1 for name in fs.find(url.removeprefix("s3://") + "/.imagenet-stream/done") if name.endswith(".msgpack"))


def running_tasks(node) -> list[int]:
    """Pids of the shard tasks running on a node: Ray's workers are its raylet's children, titled by task."""
    raylet = node.all_processes["raylet"][0].process.pid
    return [pid for pid in children_of(raylet) if cmdline(pid).startswith("ray::_run_remote")]


@pytest.fixture
def cluster():
    dirs = [tempfile.mkdtemp(prefix="rn", dir="/tmp") for _ in range(3)]  # short: Ray's socket paths
    made = cluster_utils.Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "temp_dir": dirs[0],
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3}})
    workers = [made.add_node(num_cpus=1, temp_dir=d) for d in dirs[1:]]
    try:
        yield made, workers
    finally:
        made.shutdown()


def test_a_node_lost_mid_run_leaves_a_byte_identical_dataset(cluster, tmp_path, s3_bucket, s3_options) -> None:
    made, workers = cluster
    tar = tmp_path / "fall11_like.tar"
    write_tar_of_tars(str(tar), standard_space("in21k").wnids[:SYNSETS], PER_SYNSET, seed=5, duplicates=2)
    Store(f"s3://{s3_bucket}/raw", s3_options).write_atomic("fall11_like.tar", tar.read_bytes())
    source = f"s3://{s3_bucket}/raw/fall11_like.tar"
    options = {k: v for k, v in s3_options.items() if k != "skip_instance_cache"}

    ray_out = f"s3://{s3_bucket}/ray"
    cmd = shard_cmd(source, ray_out, options, "--backend", "ray", "--ray-address", made.address)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    victim = workers[1]
    while proc.poll() is None and time.monotonic() < deadline and not (
            committed(ray_out, options) >= 1 and running_tasks(victim)):
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before a node could be killed:\n" + proc.stderr.read()[-3000:]
    lost_after = committed(ray_out, options)
    made.remove_node(victim, allow_graceful=False)  # a node lost mid-shard: raylet, workers, object store
    _, err = proc.communicate(timeout=300)
    if proc.returncode != 0:  # the driver gave up on a task: the same command resumes
        assert "re-run the same command to resume" in err, err[-3000:]
        rerun = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
    ray_seconds = time.monotonic() - started

    local_out = f"s3://{s3_bucket}/local"
    local = subprocess.run(shard_cmd(source, local_out, options, "--workers", "2"), env=env(),
                           capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stderr[-3000:]
    ray_files, local_files = digests(ray_out, options), digests(local_out, options)
    assert len([n for n in ray_files if n.endswith(".tar")]) == SYNSETS * PER_SYNSET // SHARD_SIZE
    assert ray_files == local_files
    print(f"node killed after {lost_after} shards committed; Ray run {ray_seconds:.1f} s "
          f"(driver exit {proc.returncode})")

"""Acceptance: one JPEG per ILSVRC class, sharded with --classes in1k to a folder and to S3 (moto),
``inspect --verify`` passes; and a run killed mid-way leaves nothing that looks complete."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from imagenet_stream.cli import main
from imagenet_stream.format import MANIFEST_NAME, Manifest, SideIndex, decode_label, decode_meta, iter_samples
from imagenet_stream.hierarchy import standard_space
from imagenet_stream.storage import Store
from imagenet_stream.synthetic import make_jpeg

SHARD_SIZE = 100


@pytest.fixture(scope="module")
def in1k_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ROOT/<wnid>/<wnid>_1.JPEG for each of the 1,000 ILSVRC-2012 classes (64×48 JPEGs)."""
    root = tmp_path_factory.mktemp("in1k") / "train"
    for i, wnid in enumerate(standard_space("in1k").wnids):
        (root / wnid).mkdir(parents=True)
        (root / wnid / f"{wnid}_1.JPEG").write_bytes(make_jpeg(64, 48, seed=i))
    return root


def _check_in1k(url: str, storage_options: dict | None) -> None:
    store = Store(url, storage_options)
    manifest = Manifest.load(store)
    in1k = standard_space("in1k")
    assert manifest.num_samples == 1000 and manifest.classes.space == "in1k"
    assert manifest.classes.wnids == in1k.wnids and manifest.class_counts == (1,) * 1000
    seen = {}
    for entry in manifest.shards:
        for key, members in iter_samples(store.read(entry.name), entry.name):
            meta = decode_meta(members["msgpack"])
            seen[key] = (decode_label(members["cls"]), meta["wnid"])
    assert len(seen) == 1000
    for i, wnid in enumerate(in1k.wnids):
        assert seen[f"{wnid}_1"] == (i, wnid)  # .cls = ILSVRC index, wnid = its folder


def test_in1k_to_local_folder(in1k_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "ds"
    assert main(["shard", str(in1k_tree), "--out", str(out), "--classes", "in1k", "--workers", "2",
                 "--shard-size", str(SHARD_SIZE), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "kept        1000 in 10 shard(s)" in printed and "images/s" in printed
    _check_in1k(str(out), None)
    assert main(["inspect", str(out), "--verify", "--no-progress"]) == 0
    assert "verify: OK" in capsys.readouterr().out


def test_in1k_to_s3(in1k_tree: Path, s3_bucket: str, s3_options: dict, capsys: pytest.CaptureFixture) -> None:
    url = f"s3://{s3_bucket}/imagenet/v1"
    options = json.dumps(s3_options)
    assert main(["shard", str(in1k_tree), "--out", url, "--classes", "in1k", "--workers", "2",
                 "--shard-size", str(SHARD_SIZE), "--storage-options", options, "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert "testing" not in printed.out + printed.err  # storage options (credentials) are never printed
    _check_in1k(url, s3_options)
    names = Store(url, s3_options).list()
    assert not [n for n in names if ".tmp-" in n]
    assert main(["inspect", url, "--verify", "--storage-options", options, "--no-progress"]) == 0
    assert "verify: OK" in capsys.readouterr().out


def _complete_shard(path: Path) -> int:
    """Samples in a tar that must parse to its end-of-archive marker."""
    with tarfile.open(path) as tar:
        names = tar.getnames()
    return len({n.split(".", 1)[0] for n in names})


def test_killed_run_leaves_no_manifest(in1k_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "imagenet_stream.cli", "shard", str(in1k_tree), "--out", str(out),
           "--shard-size", "10", "--workers", "0", "--classes", "in1k", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None and not (out / "train-000000.tar").exists():
            time.sleep(0.005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (out / MANIFEST_NAME).exists()
    shards = sorted(out.glob("train-*.tar"))
    assert shards, "the first shard appeared before the kill"
    for path in shards:  # whatever is visible under a final name is complete
        assert _complete_shard(path) == 10
    for idx in out.glob("train-*.idx"):
        side = SideIndex.from_bytes(idx.read_bytes())
        assert (out / side.shard).exists() and side.num_samples == 10

    # a new run over the leftovers (no --overwrite needed: nothing complete is there) succeeds
    assert main(cmd[3:] + ["--workers", "2"]) == 0
    _check_in1k(str(out), None)
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]


def test_s3_options_from_fsspec_environment(tmp_path: Path, s3_endpoint: str, s3_bucket: str) -> None:
    """No --storage-options: the endpoint comes from fsspec's env config, the keys from AWS_* variables."""
    src = tmp_path / "src" / "n01440764"
    src.mkdir(parents=True)
    for n in range(3):
        (src / f"n01440764_{n}.JPEG").write_bytes(make_jpeg(32, 24, seed=n))
    env = dict(os.environ, FSSPEC_S3_ENDPOINT_URL=s3_endpoint, AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing")
    url = f"s3://{s3_bucket}/env-ds"
    cmd = [sys.executable, "-m", "imagenet_stream.cli", "shard", str(tmp_path / "src"), "--out", url,
           "--workers", "0", "--no-progress"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    s3_options = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": s3_endpoint}}
    assert Manifest.load(Store(url, s3_options)).num_samples == 3

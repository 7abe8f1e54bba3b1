"""Hosted webdataset shards (timm's ``imagenet1k-train-{0000..NNNN}.tar`` layout: ``KEY.jpg`` or
``KEY.webp``, ``KEY.cls``, ``KEY.json``), written by webdataset's own TarWriter and served over a
local http server: indexed once, then every later start (another process too) reads no shard; the
``index`` command; and a server answering S3's 503 SlowDown for seconds."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch
import webdataset as wds
from PIL import Image
from torch.utils.data import DataLoader

from imagenet_stream.cli import main
from imagenet_stream.errors import StorageError
from imagenet_stream.hierarchy.spaces import standard_space
from imagenet_stream.retry import RetryPolicy
from imagenet_stream.streaming import ImageNetStream
from imagenet_stream.synthetic import encode, make_jpeg, photo_array

SHARDS, PER_SHARD = 4, 12
PATTERN = "imagenet1k-train-{0000..0003}.tar"


def write_hosted(folder, seed: int = 0) -> dict[str, int]:
    """Four timm-layout shards: even samples JPEG, odd ones WEBP; returns key -> class index."""
    labels = {}
    for s in range(SHARDS):
        with wds.TarWriter(str(folder / f"imagenet1k-train-{s:04d}.tar")) as sink:
            for i in range(PER_SHARD):
                n = s * PER_SHARD + i
                key, label = f"n{n:08d}_{seed}", (n * 37 + seed) % 1000
                sample = {"__key__": key, "cls": str(label).encode(),
                          "json": json.dumps({"filename": f"{key}.JPEG", "label": label}).encode()}
                if n % 2:
                    sample["webp"] = encode(Image.fromarray(photo_array(40 + n, 30 + n, n), "RGB"), "WEBP", quality=80)
                else:
                    sample["jpg"] = make_jpeg(40 + n, 30 + n, seed=n)
                sink.write(sample)
                labels[key] = label
    return labels


def stream(url: str, **kw) -> ImageNetStream:
    return ImageNetStream(url, **{"size": 24, "batch_size": 6, "return_keys": True, "classes_in": "in1k",
                                  "shuffle": False, **kw})


def keyed(ds: ImageNetStream, num_workers: int = 0) -> list[tuple[str, int]]:
    out = []
    for images, targets, keys in DataLoader(ds, batch_size=ds.batch_size, num_workers=num_workers):
        assert images.shape[1:] == (3, 24, 24) and images.dtype == torch.uint8
        out += zip(keys, targets.tolist())
    return out


START_IN_A_NEW_PROCESS = """
import sys, time
t0 = time.perf_counter()
from imagenet_stream.streaming import ImageNetStream
t1 = time.perf_counter()
ds = ImageNetStream(sys.argv[1], classes_in="in1k", batch_size=6)
print(len(ds), time.perf_counter() - t1)
"""


def test_hosted_shards_index_once_and_start_without_reading_a_shard(tmp_path, httpserver) -> None:
    folder = tmp_path / "hub"
    folder.mkdir()
    labels = write_hosted(folder)
    with httpserver.serve(folder) as (base, log):
        ds = stream(f"{base}/{PATTERN}")  # the first start indexes: one whole read of each shard
        assert len(ds) == SHARDS * PER_SHARD and ds.num_classes == 1000
        indexing = log.gets
        probe = [g for g in indexing if (g[1], g[2]) == (0, 1)]  # one 1-byte probe: does the server honour Range?
        whole = [g[0] for g in indexing if (g[1], g[2]) != (0, 1)]
        assert len(probe) == 1 and sorted(whole) == sorted(f"imagenet1k-train-{s:04d}.tar" for s in range(SHARDS))
        got = keyed(ds, num_workers=2)
        assert sorted(got) == sorted(labels.items())  # JPEG and WEBP members both decode
        before = len(log.gets)
        started = time.perf_counter()
        again = stream(f"{base}/{PATTERN}")
        assert time.perf_counter() - started < 2.0 and len(again) == len(ds)
        run = subprocess.run([sys.executable, "-c", START_IN_A_NEW_PROCESS, f"{base}/{PATTERN}"],
                             capture_output=True, text=True, timeout=120, check=True)
        count, seconds = run.stdout.split()
        assert int(count) == SHARDS * PER_SHARD and float(seconds) < 2.0
        assert len(log.gets) == before  # neither start read a byte of a shard (only HEADs)
        in1k = standard_space("in1k").wnids
        assert again.classes == list(in1k)


def test_a_changed_shard_is_indexed_again(tmp_path, httpserver) -> None:
    folder = tmp_path / "hub"
    folder.mkdir()
    write_hosted(folder, seed=0)
    with httpserver.serve(folder) as (base, log):
        assert len(stream(f"{base}/{PATTERN}")) == SHARDS * PER_SHARD
        labels = write_hosted(folder, seed=1)  # new content, new sizes
        ds = stream(f"{base}/{PATTERN}")
        assert sorted(keyed(ds)) == sorted(labels.items())
    assert len(log.gets) >= 2 * SHARDS


def test_index_command_builds_a_dataset_folder(tmp_path, httpserver, capsys) -> None:
    folder = tmp_path / "hub"
    folder.mkdir()
    labels = write_hosted(folder)
    with httpserver.serve(folder) as (base, log):
        out = tmp_path / "index"
        assert main(["index", f"{base}/{PATTERN}", "--out", str(out), "--classes-in", "in1k", "--no-progress"]) == 0
        assert f"indexed {SHARDS * PER_SHARD} samples in {SHARDS} shards" in capsys.readouterr().out
        reads = len(log.gets)
        ds = stream(str(out), classes_in=None, shuffle=True, seed=4)
        assert len(log.gets) == reads
        assert sorted(keyed(ds)) == sorted(labels.items())
    assert main(["index", f"{base}/{PATTERN}", "--out", str(tmp_path / "x"), "--classes-in", "nope"]) == 2
    assert "class space" in capsys.readouterr().err


def test_a_slowdown_burst_of_seconds_is_ridden_out(small_ds, httpserver) -> None:
    """S3 answers ``503 SlowDown`` to every request for 4 s: a short policy gives up, a patient one rides it out."""
    with httpserver.serve(small_ds.url, slowdown=4.0) as (base, log):
        short = RetryPolicy(attempts=3, backoff=0.05, max_backoff=0.1, deadline=1.0)
        with pytest.raises(StorageError, match="503"):
            ImageNetStream(base, retry=short)
        ds = ImageNetStream(base, size=16, batch_size=5, return_keys=True, shuffle=False,
                            retry=RetryPolicy(attempts=30, backoff=0.25, max_backoff=1.0, deadline=60.0, jitter=False))
        keys = [k for _, _, batch in DataLoader(ds, batch_size=5) for k in batch]
        refused = sum(1 for _, start, _, _ in log.gets if start == -1)
    assert keys == small_ds.all_keys
    assert refused >= 4  # the burst was real: several requests were answered SlowDown


def test_a_shard_larger_than_the_memory_bound_is_indexed_in_one_streaming_pass(tmp_path) -> None:
    """A 50 MB foreign shard is indexed holding a few read blocks (about 17 MB: the stream's 4 MB
    buffer and read, and the walker's skip chunk), never the shard: its images are skipped."""
    import hashlib
    import io
    import tarfile
    import tracemalloc

    import numpy as np

    from imagenet_stream.storage import Store
    from imagenet_stream.streaming.foreign import _STREAM_BLOCK, build_index

    shard = tmp_path / "big-0000.tar"
    rng = np.random.default_rng(0)
    with tarfile.open(shard, "w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(4):
            for name, data in ((f"s{i}.jpg", rng.bytes(12 << 20)), (f"s{i}.cls", str(i).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    size = shard.stat().st_size
    assert size > 10 * _STREAM_BLOCK
    tracemalloc.start()
    manifest = build_index(str(shard), Store(str(tmp_path / "index")))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 6 * _STREAM_BLOCK < size / 2, f"peak {peak / 1e6:.1f} MB while indexing a {size / 1e6:.0f} MB shard"
    entry = manifest.shards[0]
    assert entry.num_samples == 4 and entry.bytes == size
    assert entry.sha256 == hashlib.sha256(shard.read_bytes()).hexdigest()

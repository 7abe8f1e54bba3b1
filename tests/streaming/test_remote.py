"""Remote datasets: s3:// through moto's server, http:// through a local server (plus a flaky and a
failing one), each compared with the local folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

from imagenet_stream.errors import ConfigError, StorageError
from imagenet_stream.retry import RetryPolicy
from imagenet_stream.storage import Store
from imagenet_stream.streaming import ImageNetStream
from imagenet_stream.streaming.reader import ShardReader
from imagenet_stream.streaming.roots import manifest_source

B = 4


def keys(ds: ImageNetStream, num_workers: int) -> list[str]:
    return [k for _, _, batch in DataLoader(ds, batch_size=B, num_workers=num_workers) for k in batch]


def stream(url: str, **kw) -> ImageNetStream:
    return ImageNetStream(url, **{"size": 32, "batch_size": B, "return_keys": True, "seed": 11, **kw})


@pytest.fixture
def s3_ds(small_ds, s3_bucket: str, s3_options: dict) -> str:
    """The small dataset copied to the moto S3 server; yields its s3:// URL."""
    remote = Store(f"s3://{s3_bucket}/small", s3_options)
    for path in sorted(Path(small_ds.url).iterdir()):
        remote.write_atomic(path.name, path.read_bytes())
    return remote.url


def test_s3_streams_the_same_keys_in_the_same_order_as_the_local_folder(small_ds, s3_ds, s3_options, tmp_path) -> None:
    local = keys(stream(small_ds.url), 2)
    direct = stream(s3_ds, storage_options=s3_options)
    assert keys(direct, 2) == local
    assert direct.stats()["bytes_read"] > 0 and direct.stats()["cache_misses"] == 0

    cached = stream(s3_ds, storage_options=s3_options, cache_dir=str(tmp_path / "cache"))
    assert keys(cached, 2) == local
    first = cached.stats()
    assert first["cache_misses"] == 6 + 6  # every shard and side index, downloaded once
    assert first["bytes_read"] == sum(s.bytes + s.index_bytes for s in small_ds.manifest.shards)
    cached.set_epoch(1)
    assert sorted(keys(cached, 0)) == sorted(local)
    second = cached.stats()
    assert second["bytes_read"] == first["bytes_read"]  # epoch 1 came from the cache
    assert second["cache_hits"] > first["cache_hits"]


def test_s3_cache_limit_evicts_but_keeps_streaming_correctly(small_ds, s3_ds, s3_options, tmp_path) -> None:
    limit = 2 * max(s.bytes for s in small_ds.manifest.shards)
    ds = stream(s3_ds, storage_options=s3_options, cache_dir=str(tmp_path / "cache"), cache_limit=limit, shuffle=False)
    assert keys(ds, 0) == small_ds.all_keys
    cached = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]
    assert sum(p.stat().st_size for p in cached) <= limit


def test_http_streams_the_same_keys_as_the_local_folder(small_ds, httpserver) -> None:
    local = keys(stream(small_ds.url), 2)
    with httpserver.serve(small_ds.url) as (base, log):
        ds = stream(base)
        assert keys(ds, 2) == local
        assert keys(stream(base, shuffle=False), 0) == small_ds.all_keys
    assert all(done for *_, done in log.gets)


def test_flaky_http_reads_are_retried_and_resume_at_the_byte_offset(small_ds, httpserver) -> None:
    with httpserver.serve(small_ds.url, flaky=True) as (base, log):
        store = Store(base, retry=RetryPolicy(backoff=0.01, jitter=False))
        shards = manifest_source(store).shards  # index.json: fails once, then retried
        reader = ShardReader(store, shards, chunk_size=4096, merge_gap=0)
        order = np.arange(10)
        got = list(reader.read([(np.full(10, 3), order)]))
    assert [s.key for s in got] == list(small_ds.keys[3])
    assert all(bytes(s.data) == small_ds.images[s.key] for s in got)
    tar = [(start, end, done) for name, start, end, done in log.gets if name == "train-000003.tar"]
    failed = [(s, e) for s, e, done in tar if not done]
    succeeded = [(s, e) for s, e, done in tar if done]
    assert failed and sorted(failed) == sorted(succeeded)  # every chunk failed once, then was retried once
    starts = [s for s, _ in succeeded]
    assert starts == sorted(starts) and all(e == s2 for (_, e), (s2, _) in zip(succeeded, succeeded[1:]))
    assert len(succeeded) > 1  # the shard range took several chunks: a failure never restarted it


def test_a_persistently_failing_shard_raises_an_error_naming_it(small_ds, httpserver) -> None:
    with httpserver.serve(small_ds.url, fail="train-000002.tar") as (base, _):
        store = Store(base, retry=RetryPolicy(attempts=3, backoff=0.01))
        reader = ShardReader(store, manifest_source(store).shards)
        with pytest.raises(StorageError, match="train-000002.tar"):
            list(reader.read([(np.array([0, 2]), np.array([0, 0]))]))


def test_forked_workers_do_not_stall_the_parents_remote_reads(small_ds, httpserver) -> None:
    """fsspec drops its instance cache in a forked child; the finalizers of the dropped instances
    must not close the parent's pooled connections (fork shares the event loop's epoll)."""
    import gc
    import multiprocessing

    import aiohttp

    options = {"client_kwargs": {"timeout": aiohttp.ClientTimeout(total=10)}}
    with httpserver.serve(small_ds.url) as (base, _):
        first = Store(base, options, retry=RetryPolicy(attempts=1)).read("index.json")  # the Store goes; its fs stays cached
        child = multiprocessing.get_context("fork").Process(target=gc.collect)  # as a long-lived worker would
        child.start()
        child.join()
        assert child.exitcode == 0
        assert Store(base, options, retry=RetryPolicy(attempts=1)).read("index.json") == first  # same pooled connection


def test_a_shard_gone_from_the_server_is_substituted_with_concurrent_fetches(small_ds, httpserver, tmp_path) -> None:
    """Four requests in flight (remote, no cache): a 404 shard still leaves every count exact."""
    import shutil

    served = tmp_path / "served"
    shutil.copytree(small_ds.url, served)
    (served / "train-000003.tar").unlink()
    with httpserver.serve(served) as (base, _):
        ds = stream(base, seed=2)
        got = keys(ds, 0)
        assert len(got) == len(ds) == 60
        assert ds.stats()["bad_shards"] == 1 and ds.stats()["substituted_samples"] == 10
        assert not set(got) & set(small_ds.keys[3])
        assert keys(stream(base, seed=2), 2) == got  # the same substitutes in workers


def test_a_class_subset_on_s3_without_labels_bin_reads_the_side_indexes_with_its_credentials(
        dsutil, s3_bucket, s3_options) -> None:
    built = dsutil.build_dataset(f"s3://{s3_bucket}/nolabels", 40, 10, labels_bin=False, storage_options=s3_options)
    got = keys(stream(built.url, storage_options=s3_options, classes=list(dsutil.CATS), shuffle=False), 0)
    assert sorted(got) == sorted(k for k in built.all_keys if built.wnid(k) in dsutil.CATS)


def test_a_server_ignoring_range_is_refused_at_once_with_what_to_do(small_ds) -> None:
    """``python -m http.server`` (the first thing a person tries) answers a ranged GET with the whole
    file: the dataset refuses it when it is made, with one clear message, not in a worker."""
    import re
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                             "--directory", small_ds.url], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = re.search(r"port (\d+)", proc.stdout.readline()).group(1)
        with pytest.raises(ConfigError, match="ignores HTTP Range requests") as info:
            stream(f"http://127.0.0.1:{port}")
        assert "python -m http.server" in str(info.value) and "train-000000.tar" in str(info.value)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()

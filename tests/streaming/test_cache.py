"""ShardCache: atomic downloads, LRU eviction, verification, and several processes sharing one cache."""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import time

import pytest

from imagenet_stream.errors import ConfigError, ShardIntegrityError
from imagenet_stream.storage import Store
from imagenet_stream.streaming.cache import ShardCache


def make_store(tmp_path, objects: dict[str, bytes]) -> Store:
    store = Store(str(tmp_path / "remote"))
    store.makedirs()
    for name, data in objects.items():
        store.write_atomic(name, data)
    return store


def events() -> tuple[dict[str, int], object]:
    seen: dict[str, int] = {}

    def on_event(name: str, n: int) -> None:
        seen[name] = seen.get(name, 0) + n
    return seen, on_event


def test_first_open_downloads_then_hits(tmp_path) -> None:
    data = os.urandom(100_000)
    store = make_store(tmp_path, {"a.tar": data})
    cache = ShardCache(tmp_path / "cache", chunk_size=30_000)
    seen, on_event = events()
    digest = hashlib.sha256(data).hexdigest()
    with cache.open(store, "a.tar", size=len(data), sha256=digest, on_event=on_event) as f:
        assert f.read() == data
    assert seen == {"cache_misses": 1, "bytes_read": len(data), "requests": 4}
    seen.clear()
    with cache.open(store, "a.tar", size=len(data), sha256=digest, on_event=on_event) as f:
        assert f.read() == data
    assert seen == {"cache_hits": 1}
    (entry,) = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]
    assert len(entry.stem) == 40 and set(entry.stem) <= set("0123456789abcdef")  # a hash, not the name
    assert entry.suffix == ".tar"
    assert not list((tmp_path / "cache").glob(".*.tmp"))


def test_entry_names_depend_on_dataset_name_and_checksum() -> None:
    names = {ShardCache.entry_name("s3://b/x", "t.tar", "1"), ShardCache.entry_name("s3://b/y", "t.tar", "1"),
             ShardCache.entry_name("s3://b/x", "u.tar", "1"), ShardCache.entry_name("s3://b/x", "t.tar", "2")}
    assert len(names) == 4
    assert ShardCache.entry_name("x", "../../etc/passwd", None).count("/") == 0


def test_mismatching_download_is_not_cached(tmp_path) -> None:
    store = make_store(tmp_path, {"a.tar": b"x" * 1000})
    cache = ShardCache(tmp_path / "cache")
    with pytest.raises(ShardIntegrityError, match="sha256"):
        cache.open(store, "a.tar", size=1000, sha256="0" * 64)
    with pytest.raises(ShardIntegrityError, match="expected 2000"):
        cache.open(store, "a.tar", size=2000)
    assert cache.entries() == []
    assert not list((tmp_path / "cache").glob(".*.tmp"))


def test_lru_eviction_keeps_recently_used_entries_under_the_limit(tmp_path) -> None:
    objects = {f"{c}.tar": bytes([i]) * 1000 for i, c in enumerate("abcd")}
    store = make_store(tmp_path, objects)
    cache = ShardCache(tmp_path / "cache", limit=2500)
    for name in ("a.tar", "b.tar"):
        cache.open(store, name).close()
        time.sleep(0.02)  # distinct mtimes
    cache.open(store, "a.tar").close()  # touch: b is now least recently used
    time.sleep(0.02)
    cache.open(store, "c.tar").close()
    kept = {p.name for p, _, _ in cache.entries()}
    assert kept == {cache.entry_name(store.url, n, None) for n in ("a.tar", "c.tar")}
    assert cache.total_bytes() <= 2500


def test_an_entry_larger_than_the_limit_is_kept_alone(tmp_path) -> None:
    store = make_store(tmp_path, {"a.tar": b"a" * 100, "big.tar": b"b" * 5000})
    cache = ShardCache(tmp_path / "cache", limit=1000)
    cache.open(store, "a.tar").close()
    with cache.open(store, "big.tar") as f:
        assert f.read() == b"b" * 5000
    assert [p.name for p, _, _ in cache.entries()] == [cache.entry_name(store.url, "big.tar", None)]


def test_bad_limit_is_rejected(tmp_path) -> None:
    with pytest.raises(ConfigError, match="-5"):
        ShardCache(tmp_path, limit=-5)


def _open_in_process(args: tuple[str, str, str]) -> tuple[int, str]:
    remote, cache_dir, name = args
    cache = ShardCache(cache_dir)
    seen: dict[str, int] = {}
    with cache.open(Store(remote), name, on_event=lambda k, n: seen.__setitem__(k, seen.get(k, 0) + n)) as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return seen.get("cache_misses", 0), digest


def test_processes_sharing_a_cache_download_once_and_see_whole_files(tmp_path) -> None:
    data = os.urandom(3_000_000)
    store = make_store(tmp_path, {"shard.tar": data})
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        results = pool.map(_open_in_process, [(store.url, str(tmp_path / "cache"), "shard.tar")] * 8)
    assert sum(misses for misses, _ in results) == 1
    assert {digest for _, digest in results} == {hashlib.sha256(data).hexdigest()}

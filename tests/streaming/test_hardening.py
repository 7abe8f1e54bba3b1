"""Regressions of shipped bugs: foreign shards that lie, integrity on every read path, durable local
writes, and the prefetch thread of an iterator dropped early."""
from __future__ import annotations

import gc
import hashlib
import json
import os
import threading

import numpy as np
import pytest
import webdataset as wds
from torch.utils.data import DataLoader

from imagenet_stream.errors import ManifestError
from imagenet_stream.format import LABELS_NAME, MANIFEST_NAME
from imagenet_stream.storage import Store
from imagenet_stream.streaming import ImageNetStream
from imagenet_stream.synthetic import make_jpeg


def keys_of(ds: ImageNetStream, num_workers: int = 0, **loader) -> list[tuple[str, int]]:
    dl = DataLoader(ds, batch_size=ds.batch_size, num_workers=num_workers, **loader)
    return [(k, t) for _, targets, keys in dl for k, t in zip(keys, targets.tolist())]


def stream(url: str, **kw) -> ImageNetStream:
    return ImageNetStream(url, **{"size": 32, "batch_size": 4, "return_keys": True, "shuffle": False, **kw})


def foreign_shard(path, samples: list[tuple[str, bytes | None, bytes | None]]) -> None:
    """A webdataset tar written by webdataset's own writer: (key, jpg bytes, cls bytes) per sample."""
    with wds.TarWriter(str(path)) as sink:
        for key, image, cls in samples:
            sample = {"__key__": key}
            if image is not None:
                sample["jpg"] = image
            if cls is not None:
                sample["cls"] = cls
            sink.write(sample)


def test_foreign_shards_with_bad_classes_are_skipped_and_counted(tmp_path) -> None:
    image = make_jpeg(48, 40, seed=1)
    foreign_shard(tmp_path / "x-000000.tar", [("a", image, b"3"), ("b", image, b"cat"), ("c", image, b"99999999"),
                                              ("d", image, None), ("e", None, b"1"), ("f", image, b"-2"),
                                              ("g", image, b"0")])
    ds = stream(str(tmp_path / "x-000000.tar"))  # a single shard URL is a one-shard dataset
    assert len(ds) == 2 and ds.stats()["invalid_samples"] == 4  # b, f (not a class index), d, e (incomplete)
    assert ds.stats()["out_of_range_labels"] == 1  # c: no class space declared, and far above any real one
    assert sorted(keys_of(ds)) == [("a", 3), ("g", 0)] and ds.classes is None and ds.num_classes == 4
    bounded = stream(f"{tmp_path}/x-{{000000..000000}}.tar", classes_in="in1k")
    assert sorted(keys_of(bounded)) == [("a", 3), ("g", 0)]
    assert bounded.stats()["out_of_range_labels"] == 1 and bounded.num_classes == 1000
    with pytest.raises(Exception, match="compressed shards"):
        stream(str(tmp_path / "x-000000.tar.gz"))


def test_a_single_https_shard_streams(tmp_path, httpserver) -> None:
    image = make_jpeg(48, 40, seed=2)
    foreign_shard(tmp_path / "one.tar", [(f"k{i}", image, str(i).encode()) for i in range(5)])
    with httpserver.serve(tmp_path) as (base, _):
        got = keys_of(stream(f"{base}/one.tar"))
    assert got == [(f"k{i}", i) for i in range(5)]


def rewrite_manifest(url: str, **changes) -> None:
    store = Store(url)
    doc = json.loads(store.read(MANIFEST_NAME))
    for path, value in changes.items():
        target = doc
        *parents, leaf = path.split(".")
        for p in parents:
            target = target[int(p)] if p.isdigit() else target[p]
        target[leaf] = value
    store.write_atomic(MANIFEST_NAME, json.dumps(doc).encode())


def test_labels_bin_is_checked_on_the_direct_path(tmp_path, dsutil) -> None:
    built = dsutil.build_dataset(str(tmp_path / "ds"), 30, 10)
    store = Store(built.url)
    labels = np.frombuffer(store.read(LABELS_NAME), "<u2").copy()
    labels[:] = dsutil.WNIDS.index(dsutil.CATS[0])  # every sample "is" a cat
    store.write_atomic(LABELS_NAME, labels.tobytes())
    with pytest.raises(ManifestError, match="sha256"):
        stream(built.url, classes=list(dsutil.CATS))
    # consistent files that disagree with each other (the manifest re-signed): never a -1 target
    rewrite_manifest(built.url, **{"labels.sha256": hashlib.sha256(labels.tobytes()).hexdigest()})
    ds = stream(built.url, classes=list(dsutil.CATS))
    got = keys_of(ds)
    assert len(got) == len(ds) == 30  # planned by labels.bin: every sample; the non-cats are replaced by cats
    assert all(t >= 0 and dsutil.CATS[t] == built.wnid(k) for k, t in got)
    cats = {k for k in built.all_keys if built.wnid(k) in dsutil.CATS}
    stats = ds.stats()
    assert {k for k, _ in got} == cats and stats["label_mismatches"] == stats["substituted_samples"] == 30 - len(cats)


def test_a_side_index_that_fails_its_checksum_replaces_its_shard(tmp_path, dsutil) -> None:
    built = dsutil.build_dataset(str(tmp_path / "ds"), 30, 10)
    store = Store(built.url)
    raw = bytearray(store.read("train-000001.idx"))
    raw[-1] ^= 1
    store.write_atomic("train-000001.idx", bytes(raw))
    ds = stream(built.url)
    got = keys_of(ds)
    assert len(got) == 30 and {k for k, _ in got} == set(built.all_keys) - set(built.keys[1])
    stats = ds.stats()
    assert stats["bad_shards"] == 1 and stats["unreadable_samples"] == stats["substituted_samples"] == 10


def test_short_cache_entries_are_never_trusted(tmp_path, dsutil, httpserver) -> None:
    built = dsutil.build_dataset(str(tmp_path / "ds"), 20, 10)
    cache = tmp_path / "cache"
    with httpserver.serve(built.url) as (base, _):
        first = keys_of(stream(base, cache_dir=str(cache)))
        entries = [p for p in cache.iterdir() if p.is_file() and not p.name.startswith(".")]
        assert len(entries) == 4  # 2 shards + 2 side indexes
        for entry in entries:
            entry.write_bytes(b"")  # what a power loss can leave behind an unsynced rename
        again = stream(base, cache_dir=str(cache))
        assert keys_of(again) == first
        assert again.stats()["cache_misses"] == 4 and all(p.stat().st_size > 0 for p in entries)


def test_local_commits_are_fsynced(tmp_path, monkeypatch) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    store = Store(str(tmp_path))
    store.write_atomic("a.bin", b"x" * 100)
    assert len(synced) >= 2  # the file before the rename, the folder after it
    (tmp_path / "src").write_bytes(b"y" * 100)
    synced.clear()
    store.put_file_atomic(tmp_path / "src", "b.bin")
    assert len(synced) >= 2 and (tmp_path / "b.bin").read_bytes() == b"y" * 100


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "imagenet-stream-prefetch"]


def test_dropping_an_iterator_joins_its_prefetch_thread(small_ds) -> None:
    ds = stream(small_ds.url, batch_size=1, shuffle=True)
    for _ in range(3):
        it = iter(ds)
        next(it)
        it.close()
        assert prefetch_threads() == []
    it = iter(ds)
    next(it)
    del it
    gc.collect()
    assert prefetch_threads() == []
    assert len(list(ds)) == 60


def test_early_break_then_a_new_epoch_with_persistent_workers(tmp_path, dsutil, httpserver) -> None:
    built = dsutil.build_dataset(str(tmp_path / "ds"), 40, 5)
    with httpserver.serve(built.url) as (base, _):
        ds = stream(base, shuffle=True, cache_dir=str(tmp_path / "cache"), shuffle_window=2)
        loader = DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True)
        try:
            for epoch in range(3):
                ds.set_epoch(epoch)
                for i, _ in enumerate(loader):
                    if i == 1:
                        break
                ds.set_epoch(epoch + 10)
                got = [k for _, _, keys in loader for k in keys]
                assert sorted(got) == sorted(built.all_keys)
        finally:
            del loader
            gc.collect()

"""ShardReader, byte-range grouping, read_range and tar discovery, on real shards in tmp_path / memory://."""
from __future__ import annotations

import uuid

import numpy as np
import pytest

from imagenet_stream.errors import StorageError
from imagenet_stream.format import SideIndex
from imagenet_stream.storage import Store
from imagenet_stream.streaming.fetch import read_range
from imagenet_stream.streaming.foreign import index_from_tar
from imagenet_stream.streaming.reader import MissingSample, RawSample, ShardReader, byte_ranges
from imagenet_stream.streaming.roots import manifest_source
from imagenet_stream.streaming.shared_state import COUNTERS


class Tally:
    def __init__(self) -> None:
        self.values = dict.fromkeys(COUNTERS, 0)

    def __call__(self, name: str, n: int) -> None:
        self.values[name] += n


def reader_for(url: str, **kwargs) -> tuple[ShardReader, Tally]:
    store = Store(url)
    tally = Tally()
    return ShardReader(store, manifest_source(store).shards, count=tally, **kwargs), tally


def window(pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0].copy(), arr[:, 1].copy()


def test_byte_ranges_join_neighbours_and_merge_small_gaps(small_ds) -> None:
    index = SideIndex.from_bytes(Store(small_ds.url).read("train-000000.idx"))
    members = np.array([0, 1, 2, 5, 6, 9])
    exact = byte_ranges(index, members, merge_gap=0)
    assert [g.tolist() for g, _, _ in exact] == [[0, 1, 2], [5, 6], [9]]
    assert [(b, e) for _, b, e in exact] == [index.byte_range(0, 3), index.byte_range(5, 7), index.byte_range(9, 10)]
    merged = byte_ranges(index, members, merge_gap=1 << 20)
    assert len(merged) == 1 and merged[0][0].tolist() == members.tolist()
    assert (merged[0][1], merged[0][2]) == index.byte_range(0, 10)
    assert byte_ranges(index, np.array([], dtype=np.int64), 0) == []


def test_reader_yields_windows_in_order_with_the_stored_bytes(small_ds) -> None:
    reader, tally = reader_for(small_ds.url, merge_gap=0, prefetch=2)
    windows = [window([(3, 4), (0, 9), (3, 2), (0, 8)]), window([(5, 0), (1, 1), (1, 0)])]
    got = list(reader.read(windows))
    assert [(s.shard, s.index) for s in got] == [(3, 4), (0, 9), (3, 2), (0, 8), (5, 0), (1, 1), (1, 0)]
    assert [s.position for s in got] == list(range(7))
    for s in got:
        assert s.key == small_ds.keys[s.shard][s.index]
        assert s.label == small_ds.labels[s.key]
        assert bytes(s.data) == small_ds.images[s.key]
    # one request per run: (3,2),(3,4) are not adjacent -> 2; (0,8..9) -> 1; (5,0) -> 1; (1,0..1) -> 1
    assert tally.values["requests"] == 2 + 1 + 1 + 1 + 4  # + 4 side indexes
    assert tally.values["shards_read"] == 4


def test_reader_closing_early_stops_the_prefetch_thread(small_ds) -> None:
    reader, _ = reader_for(small_ds.url, prefetch=1, merge_gap=0)
    windows = [window([(s, i) for i in range(10)]) for s in range(6)]
    gen = reader.read(windows)
    first = next(gen)
    gen.close()  # must not hang on the full queue
    assert first.key == small_ds.keys[0][0]


def test_truncated_shard_skips_only_samples_past_the_cut(tmp_path, dsutil) -> None:
    built = dsutil.build_dataset(str(tmp_path / "ds"), 20, 10)
    index = SideIndex.from_bytes(Store(built.url).read("train-000001.idx"))
    dsutil.truncate_object(built.url, "train-000001.tar", int(index.offsets[6]) + 100)
    reader, tally = reader_for(built.url, merge_gap=0)
    got = list(reader.read([window([(1, i) for i in range(10)] + [(0, 3)])]))
    assert len(got) == 11 and [s.position for s in got] == list(range(11))  # one item per requested sample
    assert [s.index for s in got if isinstance(s, RawSample) and s.shard == 1] == [0, 1, 2, 3, 4, 5]
    missing = [s for s in got if isinstance(s, MissingSample)]
    assert [(s.shard, s.index, s.reason) for s in missing] == [(1, i, "truncated") for i in range(6, 10)]
    assert isinstance(got[-1], RawSample) and (got[-1].shard, got[-1].index) == (0, 3)
    assert tally.values["truncated_samples"] == 4
    assert tally.values["truncated_shards"] == 1


def test_read_range_returns_short_bytes_only_for_a_short_object() -> None:
    store = Store(f"memory://rr-{uuid.uuid4().hex[:8]}")
    store.write_atomic("obj", bytes(range(256)) * 4)
    seen: list[int] = []
    assert read_range(store, "obj", 10, 1000, chunk_size=100, on_bytes=seen.append) == (bytes(range(256)) * 4)[10:1000]
    assert sum(seen) == 990 and len(seen) == 10
    assert read_range(store, "obj", 1000, 2000, chunk_size=64) == (bytes(range(256)) * 4)[1000:]
    assert read_range(store, "obj", 5000, 6000) == b""
    with pytest.raises((StorageError, FileNotFoundError), match="missing"):
        read_range(store, "missing", 0, 10)


def test_index_from_tar_matches_the_writers_side_index(small_ds) -> None:
    store = Store(small_ds.url)
    written = SideIndex.from_bytes(store.read("train-000002.idx"))
    found, left_out = index_from_tar(store.read("train-000002.tar"), "train-000002.tar")
    assert found.keys == written.keys and left_out == 0
    for field in ("labels", "offsets", "image_offsets", "image_sizes"):
        assert np.array_equal(getattr(found, field), getattr(written, field)), field


def test_index_from_a_truncated_tar_keeps_complete_samples(small_ds) -> None:
    store = Store(small_ds.url)
    written = SideIndex.from_bytes(store.read("train-000002.idx"))
    cut = int(written.offsets[7]) + 700
    found, _ = index_from_tar(store.read("train-000002.tar")[:cut], "train-000002.tar")
    assert found.keys == written.keys[:7]


def test_a_missing_shard_gives_missing_samples_and_is_logged_once(tmp_path, dsutil, caplog) -> None:
    built = dsutil.build_dataset(str(tmp_path / "ds"), 20, 10)
    store = Store(built.url)
    store.remove("train-000001.tar")
    tally = Tally()
    reader = ShardReader(store, manifest_source(store).shards, count=tally)
    with caplog.at_level("ERROR"):
        got = list(reader.read([window([(0, 0), (1, 0), (1, 5)]), window([(1, 2), (0, 1)])]))
    assert [type(s).__name__ for s in got] == ["RawSample", "MissingSample", "MissingSample", "MissingSample",
                                              "RawSample"]
    assert {s.reason for s in got if isinstance(s, MissingSample)} == {"unreadable"}
    assert tally.values["bad_shards"] == 1 and tally.values["unreadable_samples"] == 3
    assert sum("train-000001.tar" in r.getMessage() for r in caplog.records) == 1


def test_side_index_cache_is_bounded_by_bytes(small_ds) -> None:
    store = Store(small_ds.url)
    shards = manifest_source(store).shards
    one = shards[0].index_bytes
    reader, tally = reader_for(small_ds.url, index_cache_bytes=2 * one)
    for s in range(6):
        reader.side_index(s)
        assert reader.cached_index_bytes <= 2 * one
    requests = tally.values["requests"]
    reader.side_index(5)                      # still cached
    assert tally.values["requests"] == requests
    reader.side_index(0)                      # evicted: read again
    assert tally.values["requests"] == requests + 1


def test_tars_and_side_indexes_in_different_stores(small_ds, tmp_path) -> None:
    """A dataset whose side indexes live elsewhere (a foreign index, a new version over old shards)."""
    from dataclasses import replace

    src = Store(small_ds.url)
    indexes = Store(str(tmp_path / "indexes"))
    indexes.makedirs()
    shards = manifest_source(src).shards
    for info in shards:
        indexes.write_atomic(info.index, src.read(info.index))
    reader = ShardReader([src, indexes], [replace(s, index_store=1) for s in shards])
    src_only = ShardReader(Store(small_ds.url), shards)
    got = [(s.key, bytes(s.data)) for s in reader.read([window([(2, 3), (4, 0)])])]
    assert got == [(s.key, bytes(s.data)) for s in src_only.read([window([(2, 3), (4, 0)])])]

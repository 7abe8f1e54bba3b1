"""ShardReader, byte-range grouping, read_range and tar discovery, on real shards in tmp_path / memory://."""
from __future__ import annotations

import uuid

import numpy as np
import pytest

from imagenet_stream.errors import StorageError
from imagenet_stream.shards import SideIndex
from imagenet_stream.storage import Store
from imagenet_stream.streaming.fetch import read_range
from imagenet_stream.streaming.reader import ShardInfo, ShardReader, byte_ranges
from imagenet_stream.streaming.shared import COUNTERS
from imagenet_stream.streaming.sources import index_from_tar, manifest_source


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
    assert [s.index for s in got if s.shard == 1] == [0, 1, 2, 3, 4, 5]
    assert (got[-1].shard, got[-1].index) == (0, 3)
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


def test_missing_shard_raises_an_error_naming_it(tmp_path, dsutil) -> None:
    built = dsutil.build_dataset(str(tmp_path / "ds"), 20, 10)
    store = Store(built.url)
    store.remove("train-000001.tar")
    reader = ShardReader(store, manifest_source(store).shards)
    with pytest.raises(StorageError, match="train-000001.tar"):
        list(reader.read([window([(0, 0), (1, 0)])]))


def test_shard_info_without_side_index_needs_one_given(small_ds) -> None:
    store = Store(small_ds.url)
    index = SideIndex.from_bytes(store.read("train-000000.idx"))
    reader = ShardReader(store, [ShardInfo("train-000000.tar", 10)], side_indexes={0: index})
    assert [s.key for s in reader.read([window([(0, 7), (0, 1)])])] == [small_ds.keys[0][7], small_ds.keys[0][1]]

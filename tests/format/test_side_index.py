"""The per-shard side index: msgpack round trip and validation."""
from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagenet_stream.errors import ManifestError
from imagenet_stream.format import SideIndex


def make_index(sizes: list[int], labels: list[int]) -> SideIndex:
    n = len(sizes)
    offsets = np.concatenate([[0], np.cumsum([512 * 4 + s for s in sizes])]).astype(np.uint64)
    return SideIndex(shard="train-000000.tar", keys=tuple(f"k{i}" for i in range(n)),
                     labels=np.asarray(labels, dtype=np.uint32), offsets=offsets,
                     image_offsets=offsets[:-1] + np.uint64(512),
                     image_sizes=np.asarray(sizes, dtype=np.uint32))


@given(st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 2**32 - 1)), max_size=50))
def test_round_trip(rows: list[tuple[int, int]]) -> None:
    index = make_index([r[0] for r in rows], [r[1] for r in rows])
    back = SideIndex.from_bytes(index.to_bytes())
    assert back.shard == index.shard and back.keys == index.keys and back.num_samples == len(rows)
    for name in ("labels", "offsets", "image_offsets", "image_sizes"):
        assert np.array_equal(getattr(back, name), getattr(index, name))


@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.binary(min_size=32, max_size=32)), max_size=30))
def test_identity_columns_round_trip_and_select(rows: list[tuple[int, bytes]]) -> None:
    n = len(rows)
    base = make_index([100] * n, [0] * n)
    index = SideIndex(base.shard, base.keys, base.labels, base.offsets, base.image_offsets, base.image_sizes,
                      phash=np.asarray([r[0] for r in rows], dtype=np.uint64),
                      sha256=b"".join(r[1] for r in rows), source_sha256=b"".join(r[1][::-1] for r in rows))
    back = SideIndex.from_bytes(index.to_bytes())
    assert np.array_equal(back.phash, index.phash) and back.sha256 == index.sha256
    assert back.source_sha256 == index.source_sha256
    keep = np.arange(0, n, 2)
    part = back.select(keep)
    assert part.phash.tolist() == [rows[i][0] for i in keep.tolist()]
    assert [part.digest(j) for j in range(len(keep))] == [rows[i][1].hex() for i in keep.tolist()]
    assert [part.digest(j, source=True) for j in range(len(keep))] == [rows[i][1][::-1].hex() for i in keep.tolist()]


def test_format_1_side_indexes_are_still_read() -> None:
    """A side index written before format 2 (no identity columns) reads as it did."""
    index = make_index([10, 20], [3, 4])
    doc = msgpack.unpackb(index.to_bytes(), raw=False)
    doc["format_version"] = 1
    for name in ("sha256", "source_sha256", "phash"):
        doc.pop(name, None)
    old = SideIndex.from_bytes(msgpack.packb(doc, use_bin_type=True))
    assert old.labels.tolist() == [3, 4] and old.phash is None and old.sha256 is None and old.digest(0) is None
    with pytest.raises(ManifestError, match="columns|bytes"):
        SideIndex(index.shard, index.keys, index.labels, index.offsets, index.image_offsets, index.image_sizes,
                  sha256=b"x" * 31)


def test_byte_range() -> None:
    index = make_index([100, 200, 300], [0, 1, 2])
    assert index.byte_range(0, 3) == (0, int(index.offsets[3]))
    assert index.byte_range(1, 2) == (2148, 2148 + 2248)


def test_shape_and_order_validation() -> None:
    index = make_index([10, 20], [0, 1])
    with pytest.raises(ManifestError, match="labels"):
        SideIndex(index.shard, index.keys, index.labels[:1], index.offsets, index.image_offsets,
                  index.image_sizes)
    with pytest.raises(ManifestError, match="offsets"):
        SideIndex(index.shard, index.keys, index.labels, index.offsets[:2], index.image_offsets,
                  index.image_sizes)
    with pytest.raises(ManifestError, match="not increasing"):
        SideIndex(index.shard, index.keys, index.labels, index.offsets[::-1].copy(), index.image_offsets,
                  index.image_sizes)


@pytest.mark.parametrize("data, match", [
    (b"garbage", "unreadable"),
    (msgpack.packb({"format_version": 99}), "not supported"),
    (msgpack.packb({"format_version": 1, "shard": "x"}), "unreadable"),
])
def test_bad_bytes(data: bytes, match: str) -> None:
    with pytest.raises(ManifestError, match=match):
        SideIndex.from_bytes(data)

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

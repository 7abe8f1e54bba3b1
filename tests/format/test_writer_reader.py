"""ShardWriter writes a tar webdataset and tarfile read back; the side index points at the right bytes."""
from __future__ import annotations

import hashlib
import io
import tarfile

import numpy as np
import pytest
import webdataset as wds
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenet_stream.errors import ShardIntegrityError
from imagenet_stream.format import Sample, ShardWriter, decode_label, decode_meta, group_samples, iter_samples


def meta(i: int) -> dict:
    return {"wnid": "n01440764", "source": f"src/{i}.JPEG", "sha256": "ab" * 32, "width": i + 1, "height": 2}


def write(images: list[bytes], labels: list[int], mtime: int = 1_700_000_000) -> tuple[bytes, object]:
    buf = io.BytesIO()
    writer = ShardWriter(buf, "train-000003.tar", mtime=mtime)
    for i, (image, label) in enumerate(zip(images, labels)):
        writer.add(Sample(f"key_{i}", image, label, meta(i)))
    assert len(writer) == len(images)
    info = writer.close()
    return buf.getvalue(), info


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=3000), st.integers(0, 30000)), min_size=1, max_size=12))
def test_offsets_point_at_each_sample(rows: list[tuple[bytes, int]]) -> None:
    images, labels = [r[0] for r in rows], [r[1] for r in rows]
    data, info = write(images, labels)
    side = info.side_index
    assert (info.bytes, info.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert info.num_samples == len(rows)
    assert side.labels.tolist() == labels and side.keys == tuple(f"key_{i}" for i in range(len(rows)))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    assert [m.offset for m in members[::3]] == side.offsets[:-1].tolist()
    assert [m.offset_data for m in members[::3]] == side.image_offsets.tolist()
    assert side.offsets[-1] == members[-1].offset_data + -(-members[-1].size // 512) * 512
    assert all(m.mtime == 1_700_000_000 and m.mode == 0o444 for m in members)
    # every image lies where the side index says
    assert [data[int(o):int(o) + int(n)] for o, n in zip(side.image_offsets, side.image_sizes)] == images


def test_iter_samples_round_trip() -> None:
    images = [b"A" * 10, b"B" * 700, b""]
    data, _ = write(images, [5, 6, 7])
    samples = list(iter_samples(data))
    assert [k for k, _ in samples] == ["key_0", "key_1", "key_2"]
    assert [m["jpg"] for _, m in samples] == images
    assert [decode_label(m["cls"]) for _, m in samples] == [5, 6, 7]
    assert decode_meta(samples[1][1]["msgpack"])["width"] == 2


def test_webdataset_reads_a_shard(tmp_path) -> None:
    data, _ = write([b"x" * 100, b"y" * 100], [1, 2])
    path = tmp_path / "train-000003.tar"
    path.write_bytes(data)
    got = [(s["__key__"], s["cls"], s["jpg"]) for s in wds.WebDataset(str(path), shardshuffle=False,
                                                                      empty_check=False)]
    assert got == [("key_0", b"1", b"x" * 100), ("key_1", b"2", b"y" * 100)]


def test_identical_input_gives_identical_bytes() -> None:
    a, _ = write([b"abc", b"def"], [0, 1], mtime=5)
    b, _ = write([b"abc", b"def"], [0, 1], mtime=5)
    assert a == b


def test_closed_writer_refuses() -> None:
    writer = ShardWriter(io.BytesIO(), "s.tar")
    writer.close()
    with pytest.raises(ShardIntegrityError, match="closed"):
        writer.add(Sample("k", b"x", 0, meta(0)))
    with pytest.raises(ShardIntegrityError, match="closed"):
        writer.close()


def test_truncated_tar_raises() -> None:
    data, _ = write([b"x" * 5000], [0])
    with pytest.raises(ShardIntegrityError, match="cut.tar: the data of .key_0.jpg. runs past the end"):
        list(iter_samples(data[:1200], "cut.tar"))


def test_group_samples_groups_consecutive_keys() -> None:
    members = [("a.jpg", b"1"), ("a.cls", b"2"), ("b.jpg", b"3"), ("dir/c.x.y", b"4")]
    assert list(group_samples(members)) == [("a", {"jpg": b"1", "cls": b"2"}), ("b", {"jpg": b"3"}),
                                            ("dir/c", {"x.y": b"4"})]


def test_empty_shard() -> None:
    data, info = write([], [])
    assert info.num_samples == 0 and info.side_index.offsets.tolist() == [0]
    assert list(iter_samples(data)) == [] and np.asarray(info.side_index.labels).size == 0


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abcXYZ019_-", min_size=1, max_size=90), st.sampled_from(["jpg", "cls", "msgpack"]),
       st.integers(0, 8 ** 11 - 1), st.integers(0, 8 ** 11 - 1))
def test_member_headers_are_the_bytes_tarfile_writes(key: str, ext: str, size: int, mtime: int) -> None:
    from imagenet_stream.format.writer import member_header

    info = tarfile.TarInfo(f"{key}.{ext}")
    info.size, info.mtime, info.mode, info.uname, info.gname = size, mtime, 0o444, "", ""
    assert member_header(f"{key}.{ext}", size, mtime) == info.tobuf(tarfile.USTAR_FORMAT, "ascii", "strict")

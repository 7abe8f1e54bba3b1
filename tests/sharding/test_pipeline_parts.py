"""The pipeline's parts on their own: spool, packer (sample and byte limits), dedup, ordered pool, report."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenet_stream.errors import ConfigError, StorageError
from imagenet_stream.sharding.pack import PackOptions, ShardPacker, closed_tar_bytes, sample_tar_bytes
from imagenet_stream.sharding.pipeline import Deduplicator, decode_verified, encode_verified, to_sample
from imagenet_stream.sharding.pool import verify_ordered
from imagenet_stream.sharding.records import Rejected, SourceRecord, Verified
from imagenet_stream.sharding.report import ReportBuilder, format_report
from imagenet_stream.sharding.spool import Spool
from imagenet_stream.sharding.verify import VerifyConfig
from imagenet_stream.shards import Sample, iter_samples
from imagenet_stream.storage import Store
from imagenet_stream.synthetic import make_jpeg

META = {"wnid": "n01440764", "source": "s", "sha256": "00", "width": 1, "height": 1}


def verified(key: str, data: bytes, wnid: str = "n01440764") -> Verified:
    digest = hashlib.sha256(data).hexdigest()
    return Verified(key=key, wnid=wnid, source=f"src/{key}.JPEG", image=data, sha256=digest,
                    source_sha256=digest,
                    width=3, height=2)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(max_size=2000), max_size=40))
def test_spool_returns_every_payload(tmp_path_factory, payloads: list[bytes]) -> None:
    tmp = tmp_path_factory.mktemp("spool")
    with Spool(tmp) as spool:
        for i, p in enumerate(payloads[: len(payloads) // 2]):
            assert spool.append(p) == i
        assert [spool.read(i) for i in reversed(range(len(spool)))] == payloads[: len(payloads) // 2][::-1]
        for p in payloads[len(payloads) // 2:]:  # appending after reading keeps working
            spool.append(p)
        assert [spool.read(i) for i in range(len(spool))] == payloads
        assert spool.nbytes == sum(map(len, payloads))
        path = spool.path
    assert not os.path.exists(path)
    with pytest.raises(StorageError, match="closed"):
        spool.read(0)


def test_spool_grows_past_its_initial_index(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        for i in range(70_000):
            spool.append(i.to_bytes(3, "little"))
        assert spool.read(69_999) == (69_999).to_bytes(3, "little")
        with pytest.raises(IndexError):
            spool.read(70_000)


def test_spool_in_a_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="spool"):
        Spool(tmp_path / "missing")


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(0, 30_000), min_size=1, max_size=30), shard_size=st.integers(1, 8),
       max_bytes=st.integers(20 * 512, 80_000))
def test_packer_limits(tmp_path_factory, sizes: list[int], shard_size: int, max_bytes: int) -> None:
    root = tmp_path_factory.mktemp("pack")
    store = Store(str(root / "ds"))
    store.makedirs()
    committed = []
    packer = ShardPacker(store, PackOptions("p", shard_size, max_bytes, mtime=1, tmp_dir=str(root)),
                         on_commit=committed.append)
    samples = [Sample(f"k{i}", bytes([i % 256]) * n, i % 7, META) for i, n in enumerate(sizes)]
    for s in samples:
        packer.add(s)
    shards = packer.finish()
    assert shards == committed and sum(s.num_samples for s in shards) == len(samples)
    assert packer.labels.tolist() == [s.label for s in samples]
    pos = 0
    for entry in shards:
        data = (root / "ds" / entry.name).read_bytes()
        assert len(data) == entry.bytes and hashlib.sha256(data).hexdigest() == entry.sha256
        assert 1 <= entry.num_samples <= shard_size
        # over the byte limit only when a single sample alone is larger
        assert entry.bytes <= max_bytes or entry.num_samples == 1
        in_shard = samples[pos:pos + entry.num_samples]
        assert entry.bytes == closed_tar_bytes(sum(sample_tar_bytes(s) for s in in_shard))
        assert [k for k, _ in iter_samples(data)] == [s.key for s in samples[pos:pos + entry.num_samples]]
        pos += entry.num_samples
    assert sorted(p.name for p in root.iterdir() if p.is_file()) == []  # staged files removed


def test_packer_abort_leaves_only_committed_shards(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "ds"))
    store.makedirs()
    packer = ShardPacker(store, PackOptions("train", 2, tmp_dir=str(tmp_path)))
    for i in range(3):
        packer.add(Sample(f"k{i}", b"x", 0, META))
    packer.abort()
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == ["train-000000.idx", "train-000000.tar"]
    assert [p for p in tmp_path.iterdir() if p.is_file()] == []


@pytest.mark.parametrize("kw", [dict(shard_size=0), dict(max_shard_bytes=100), dict(prefix="a b")])
def test_pack_options_validation(kw: dict) -> None:
    with pytest.raises(ValueError):
        PackOptions(**kw)
    if "prefix" not in kw:
        with pytest.raises(ConfigError):
            PackOptions(**kw)


def test_deduplicator() -> None:
    report = ReportBuilder()
    dedup = Deduplicator(report)
    a = dedup.admit(verified("k", b"one"))
    b = dedup.admit(verified("k", b"two", wnid="n01443537"))
    c = dedup.admit(verified("other", b"one"))
    d = dedup.admit(verified("k", b"three"))
    e = dedup.admit(verified("k-1", b"four"))  # an original key equal to a renamed one
    assert isinstance(a, Verified) and a.key == "k"
    assert isinstance(b, Verified) and b.key == "k-1"
    assert isinstance(c, Rejected) and (c.reason, c.detail) == ("duplicate", "same bytes as k")
    assert isinstance(d, Verified) and d.key == "k-2"
    assert isinstance(e, Verified) and e.key == "k-1-1"
    assert report.key_collisions == 3


def test_verified_spool_encoding_round_trip() -> None:
    v = Verified("k", "n01440764", "a/b", b"\xff\xd8data", "aa", "bb", 4, 5, ("cmyk_to_rgb",))
    assert decode_verified(encode_verified(v)) == v
    sample = to_sample(v, 7)
    assert sample.meta == {"wnid": "n01440764", "source": "a/b", "sha256": "aa", "width": 4, "height": 5,
                           "fixes": ["cmyk_to_rgb"], "source_sha256": "bb"}
    assert "fixes" not in to_sample(verified("k", b"x"), 0).meta


def test_verify_ordered_keeps_input_order_with_workers(tmp_path: Path) -> None:
    records = []
    for i in range(40):
        data = make_jpeg(16 + i, 16, seed=i) if i % 5 else b""  # every 5th is empty
        records.append(SourceRecord(source=f"s{i}", wnid="n01440764", key=f"k{i}", data=data))
    config = VerifyConfig()
    serial = list(verify_ordered(records, config, workers=0))
    pooled = list(verify_ordered(iter(records), config, workers=2, batch_size=3, max_in_flight=2))
    assert [r.key for r in pooled] == [f"k{i}" for i in range(40)]
    assert pooled == serial
    assert [isinstance(r, Rejected) for r in pooled] == [i % 5 == 0 for i in range(40)]


def test_report_examples_are_capped_and_formatted() -> None:
    report = ReportBuilder(max_examples=2)
    for i in range(5):
        report.record_seen()
        report.record_rejected(Rejected(f"k{i}", "n01440764", f"s{i}", "truncated", "cut"))
    report.record_seen()
    report.record_kept(verified("x", b"x"))
    doc = report.build(out="memory://x", sources=["a"], class_space="in1k", num_classes=1000, shards=1,
                       total_bytes=2048, seconds=2.0, seed=0)
    assert doc["rejected"] == {"truncated": {"count": 5, "examples": [
        {"key": "k0", "source": "s0", "detail": "cut"}, {"key": "k1", "source": "s1", "detail": "cut"}]}}
    assert (doc["seen"], doc["kept"], doc["images_per_s"]) == (6, 1, 3.0)
    text = format_report(doc)
    assert "truncated" in text and "2.0 KiB" in text and "3 images/s" in text

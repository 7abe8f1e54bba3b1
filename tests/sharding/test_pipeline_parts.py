"""The sharder's parts on their own: the shard plan (property tests), cross-shard duplicates, markers,
the listing's round trip through storage, and the report text."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenet_stream.errors import ConfigError, ManifestError
from imagenet_stream.sharding.coordinator import ShardOptions
from imagenet_stream.sharding.dedup import DuplicateFinder
from imagenet_stream.sharding.listing import FOLDER, TAR, Listing, ListingWriter
from imagenet_stream.sharding.markers import Marker
from imagenet_stream.sharding.plan import cut_shards, dedupe_keys, key_hash, make_plan, planned_bytes
from imagenet_stream.sharding.records import Verified
from imagenet_stream.sharding.report import format_report
from imagenet_stream.sharding.task import to_sample
from imagenet_stream.storage import Store


# -- the plan ---------------------------------------------------------------------------------------
@st.composite
def listings(draw):
    n = draw(st.integers(0, 300))
    wnids = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    return {"wnid": rng.integers(0, wnids, n), "in_space": rng.random(wnids) < 0.8,
            "size": rng.integers(0, 300_000, n).astype(np.uint64),
            "keys": [f"k{int(k)}" for k in rng.integers(0, max(1, n // 2 + 1), n)]}  # some keys repeat


def plan_of(listing: dict, seed: int, shard_size: int, max_bytes: int):
    keys = listing["keys"]
    return make_plan(listing["wnid"], listing["in_space"], listing["size"],
                     np.array([key_hash(k) for k in keys], dtype=np.uint64), lambda i: keys[i],
                     seed=seed, shard_size=shard_size, max_shard_bytes=max_bytes)


@settings(max_examples=80, deadline=None)
@given(listings(), st.integers(0, 1000), st.integers(1, 50), st.integers(20 * 512, 4 << 20))
def test_the_plan_assigns_every_record_in_the_space_to_exactly_one_shard(listing, seed, shard_size, max_bytes):
    plan = plan_of(listing, seed, shard_size, max_bytes)
    in_space = listing["in_space"][listing["wnid"]] if len(listing["wnid"]) else np.zeros(0, bool)
    assert sorted(plan.records.tolist()) == np.flatnonzero(in_space).tolist()
    assert sorted(plan.left_out.tolist()) == np.flatnonzero(~in_space).tolist()
    starts = plan.shard_starts
    assert starts[0] == 0 and starts[-1] == plan.num_records and np.all(np.diff(starts) >= 1)
    sizes = planned_bytes(listing["size"][plan.records])
    for s in range(plan.num_shards):
        count = int(starts[s + 1] - starts[s])
        assert count <= shard_size
        tar = -(-(int(sizes[starts[s]:starts[s + 1]].sum()) + 1024) // 10240) * 10240
        assert count == 1 or tar <= max_bytes  # a lone record larger than the limit still gets a shard
    # the same inputs give the same plan; another seed another order
    again = plan_of(listing, seed, shard_size, max_bytes)
    assert np.array_equal(again.records, plan.records) and again.renamed == plan.renamed
    # keys are unique in plan order, first use keeps its name
    final = [plan.renamed.get(p, listing["keys"][i]) for p, i in enumerate(plan.records.tolist())]
    assert len(set(final)) == len(final)
    firsts = {}
    for p, i in enumerate(plan.records.tolist()):
        firsts.setdefault(listing["keys"][i], p)
    assert all(p not in plan.renamed for p in firsts.values())


def test_the_plan_mixes_classes_and_depends_on_the_seed() -> None:
    listing = {"wnid": np.repeat(np.arange(10), 100), "in_space": np.ones(10, bool),
               "size": np.full(1000, 100_000, np.uint64), "keys": [f"k{i}" for i in range(1000)]}
    a, b = plan_of(listing, 0, 100, 1 << 30), plan_of(listing, 1, 100, 1 << 30)
    assert not np.array_equal(a.records, b.records)
    first_shard = listing["wnid"][a.shard(0)[1]]
    assert len(set(first_shard.tolist())) == 10  # a source sorted by class comes out mixed
    assert a.num_shards == 10 and a.shard(3)[0] == 300


def test_cut_shards_by_bytes_and_count() -> None:
    sizes = np.array([5000] * 10, dtype=np.uint64)
    per = int(planned_bytes(sizes)[0])
    starts = cut_shards(sizes, shard_size=4, max_shard_bytes=1 << 30)
    assert starts.tolist() == [0, 4, 8, 10]
    starts = cut_shards(sizes, shard_size=100, max_shard_bytes=3 * per + 1024 + 10240)
    assert all(b - a <= 4 for a, b in zip(starts[:-1], starts[1:]))
    assert cut_shards(np.array([10 << 20], np.uint64), 10, 20 * 512).tolist() == [0, 1]  # one big record alone
    assert cut_shards(np.zeros(0, np.uint64), 10, 1 << 20).tolist() == [0]
    with pytest.raises(ConfigError):
        cut_shards(sizes, 0, 1 << 20)


def test_dedupe_keys_suffixes_later_uses_and_avoids_taken_names() -> None:
    keys = ["a", "b", "a", "a-1", "a"]
    hashes = np.array([key_hash(k) for k in keys], np.uint64)
    renamed = dedupe_keys(hashes, np.arange(5, dtype=np.uint32), lambda i: keys[i])
    assert renamed == {2: "a-2", 4: "a-3"}  # "a-1" is a listed key of its own
    backwards = dedupe_keys(hashes, np.arange(5, dtype=np.uint32)[::-1], lambda i: keys[i])
    assert backwards == {2: "a-2", 4: "a-3"}  # plan positions: the record of listing index 0 comes last


# -- duplicates across shards -------------------------------------------------------------------------
def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_duplicates_keep_the_first_in_plan_order(tmp_path: Path) -> None:
    finder = DuplicateFinder(str(tmp_path))
    shard0 = [b"a", b"b", b"c"]
    shard1 = [b"d", b"a", b"e", b"b"]
    shard2 = [b"a", b"f"]
    gid = 0
    for shard in (shard0, shard1, shard2):
        finder.add(b"".join(digest(x) for x in shard), gid)
        gid += len(shard)
    dups, kept = finder.duplicates()
    assert dups.tolist() == [4, 6, 7] and kept.tolist() == [0, 1, 0]
    assert list(tmp_path.iterdir()) == []  # bucket files removed


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=0, max_size=400), st.integers(1, 50))
def test_duplicates_match_a_reference(values, per_shard) -> None:
    finder = DuplicateFinder()
    for lo in range(0, len(values), per_shard):
        finder.add(b"".join(digest(str(v).encode()) for v in values[lo:lo + per_shard]), lo)
    dups, kept = finder.duplicates()
    first: dict[int, int] = {}
    want_dups, want_kept = [], []
    for gid, v in enumerate(values):
        if v in first:
            want_dups.append(gid)
            want_kept.append(first[v])
        else:
            first[v] = gid
    assert dups.tolist() == want_dups and kept.tolist() == want_kept


# -- markers, listing, report ------------------------------------------------------------------------
def test_marker_round_trip_and_damage() -> None:
    marker = Marker(plan_hash="p" * 64, shard="train-000003.tar", number=3, first_position=30, planned=4,
                    tar_bytes=10240, tar_sha256="a" * 64, index_bytes=99, index_sha256="b" * 64,
                    keys=("k1", "k2"), labels=np.array([5, 7], np.uint32), positions=np.array([30, 32], np.uint64),
                    source_sha256=digest(b"1") + digest(b"2"), rejected={"truncated": 2},
                    examples={"truncated": [{"key": "k", "source": "s", "detail": "d"}]}, fixes={"png_to_jpeg": 1})
    back = Marker.from_bytes(marker.to_bytes())
    assert back.keys == marker.keys and back.labels.tolist() == [5, 7] and back.positions.tolist() == [30, 32]
    assert (back.rejected, back.fixes, back.source_sha256) == (marker.rejected, marker.fixes, marker.source_sha256)
    for bad in (b"", b"\x93garbage", marker.to_bytes()[:-5]):
        with pytest.raises(ManifestError, match="marker"):
            Marker.from_bytes(bad)


def test_the_listing_round_trips_through_storage(tmp_path: Path) -> None:
    writer = ListingWriter(str(tmp_path))
    tree = writer.container("/data/train", FOLDER, "train")
    tar = writer.container("s3://b/fall11_whole.tar", TAR, "fall11_whole.tar")
    for i in range(70_000):  # more than one chunk
        writer.add(tar if i % 2 else tree, i * 512, 1000 + i, f"n{i % 3:08d}", f"n{i % 3:08d}/x_{i}.JPEG", f"x_{i}")
    listing = writer.finish()
    store = Store(str(tmp_path / "out"))
    listing.save(store, ".imagenet-stream/listing")
    back = Listing.load(store, ".imagenet-stream/listing", str(tmp_path))
    assert np.array_equal(back.key_hashes(), listing.key_hashes())
    assert len(back) == 70_000 and back.containers == listing.containers and back.wnids == listing.wnids
    assert back.digest() == listing.digest()
    rec = back.records(np.array([69_999, 0]))
    assert (rec[0].container, rec[0].offset, rec[0].size, rec[0].key) == (tar, 69_999 * 512, 70_999, "x_69999")
    assert (rec[1].name, rec[1].wnid) == ("n00000000/x_0.JPEG", "n00000000")
    (tmp_path / "out" / ".imagenet-stream" / "listing" / "text").write_bytes(b"short")
    with pytest.raises(Exception, match="inconsistent"):
        Listing.load(store, ".imagenet-stream/listing", str(tmp_path))


def test_to_sample_metadata() -> None:
    v = Verified("k", "n01440764", "a/b", b"\xff\xd8data", "aa", "bb", 4, 5, ("cmyk_to_rgb",), phash=2**63 + 5)
    assert to_sample(v, 7).meta == {"wnid": "n01440764", "source": "a/b", "sha256": "aa", "width": 4, "height": 5,
                                    "fixes": ["cmyk_to_rgb"], "source_sha256": "bb", "phash": 2**63 + 5}
    plain = Verified("k", "n01440764", "a/b", b"x", "aa", "aa", 4, 5, ())
    assert "fixes" not in to_sample(plain, 0).meta


def test_report_text() -> None:
    doc = {"out": "memory://x", "sources": ["a"], "class_space": {"id": "in1k", "num_classes": 1000}, "seen": 6,
           "kept": 1, "rejected_total": 5, "duplicates": 0,
           "rejected": {"truncated": {"count": 5, "examples": [{"key": "k0", "source": "s0", "detail": "cut"}]}},
           "key_collisions": {"count": 0, "examples": []}, "fixes": {}, "shards": 1, "bytes": 2048}
    text = format_report(doc, seconds=2.0)
    assert "truncated" in text and "2.0 KiB" in text and "3 images/s" in text


@pytest.mark.parametrize("kw", [dict(shard_size=0), dict(max_shard_bytes=100), dict(prefix="a b"), dict(workers=-1),
                                dict(backend="spark"), dict(io_threads=0)])
def test_option_validation(kw: dict) -> None:
    with pytest.raises(ConfigError):
        ShardOptions(out="memory://x", **kw)

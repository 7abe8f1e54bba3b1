"""Tar sources on S3 read by ranged reads, the gzip path through staging, and the exclusion overlay end
to end: the sharder writes it, inspect --verify checks it, the streamer honours it on every rank."""
from __future__ import annotations

import collections
import json
import os
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

from imagenet_stream.cli import main
from imagenet_stream.errors import ManifestError
from imagenet_stream.format import Manifest, decode_meta, iter_samples
from imagenet_stream.format.integrity import check_dataset
from imagenet_stream.hierarchy import standard_space
from imagenet_stream.sharding.coordinator import ShardOptions, shard
from imagenet_stream.storage import Store
from imagenet_stream.streaming import ImageNetStream
from imagenet_stream.synthetic import write_tar_of_tars

WNIDS = standard_space("in1k").wnids[:30]


@pytest.fixture(scope="module")
def tars(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tars")
    write_tar_of_tars(str(folder / "train.tar"), WNIDS, 8, seed=5, duplicates=6)
    import gzip
    import shutil

    with open(folder / "train.tar", "rb") as src, gzip.open(folder / "train.tar.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    return folder


def options(out: str, **kw) -> ShardOptions:
    return ShardOptions(out=out, shard_size=16, workers=kw.pop("workers", 2), classes="in1k", mtime=0, **kw)


def samples(store: Store) -> dict[str, tuple[bytes, int]]:
    manifest = Manifest.load(store)
    found = {}
    for entry in manifest.shards:
        for key, members in iter_samples(store.read(entry.name), entry.name):
            found[key] = (members["jpg"], int(members["cls"]))
    return found


def test_a_tar_of_tars_on_s3_shards_to_s3_by_ranged_reads(tars, tmp_path, s3_bucket, s3_options) -> None:
    remote_src = Store(f"s3://{s3_bucket}/sources", s3_options)
    remote_src.put_file_atomic(tars / "train.tar", "train.tar")
    local = shard([str(tars / "train.tar")], options(str(tmp_path / "local")))
    out = f"s3://{s3_bucket}/datasets/in1k-sub"
    remote = shard([f"s3://{s3_bucket}/sources/train.tar"], options(out, storage_options=s3_options))
    store = Store(out, s3_options)
    assert remote.manifest.to_json() != "" and remote.manifest.shards == local.manifest.shards  # same bytes
    assert check_dataset(store, remote.manifest) == []
    assert store.read("labels.bin") == (tmp_path / "local" / "labels.bin").read_bytes()
    assert not [n for n in store.list() if ".tmp-" in n]


def test_gzip_sources_are_staged_then_sharded_like_the_plain_tar(tars, tmp_path) -> None:
    plain = shard([str(tars / "train.tar")], options(str(tmp_path / "plain")))
    staged = shard([str(tars / "train.tar.gz")], options(str(tmp_path / "gz")))
    assert samples(Store(str(tmp_path / "gz"))) == samples(Store(str(tmp_path / "plain")))
    assert staged.manifest.exclusions == plain.manifest.exclusions
    assert not (tmp_path / "gz" / ".imagenet-stream" / "staging").exists()  # removed once finalized
    kept = shard([str(tars / "train.tar.gz")], options(str(tmp_path / "kept"), staging=str(tmp_path / "stage"),
                                                        keep_staging=True))
    assert sorted(p.name for p in (tmp_path / "stage" / "train").iterdir()) == sorted(f"{w}.tar" for w in WNIDS)
    assert kept.manifest.num_available == plain.manifest.num_available


@pytest.fixture(scope="module")
def with_duplicates(tars, tmp_path_factory) -> tuple[str, Manifest]:
    out = str(tmp_path_factory.mktemp("overlay") / "ds")
    result = shard([str(tars / "train.tar")], options(out, workers=0))
    return out, result.manifest


def test_the_sharder_writes_cross_shard_duplicates_as_an_overlay(with_duplicates) -> None:
    out, manifest = with_duplicates
    assert manifest.format_version == 2 and manifest.exclusions is not None
    report = json.loads(Path(out, "report.json").read_text())
    in_shard = report["rejected"]["duplicate"]["count"] - manifest.exclusions.count
    assert manifest.exclusions.count + in_shard == 6  # six repeats of one image: first in plan order kept
    assert manifest.num_available == 30 * 8 - 6 and sum(manifest.class_counts) == manifest.num_available
    ids = np.frombuffer(Path(out, "exclusions.bin").read_bytes(), dtype="<u4")
    metas = [decode_meta(m["msgpack"]) for e in manifest.shards
             for _, m in iter_samples(Path(out, e.name).read_bytes())]
    excluded_sources = {metas[i]["sha256"] for i in ids.tolist()}
    assert len(excluded_sources) == 1  # every excluded sample is a copy of the same image
    kept = [m for i, m in enumerate(metas) if i not in set(ids.tolist()) and m["sha256"] in excluded_sources]
    assert len(kept) == 1  # ... and exactly one copy stays
    assert main(["inspect", out, "--verify", "--no-progress"]) == 0


def test_inspect_verify_refuses_a_tampered_overlay(with_duplicates, tmp_path) -> None:
    out, manifest = with_duplicates
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in Path(out).iterdir():
        if path.is_file():
            (copy / path.name).write_bytes(path.read_bytes())
    ids = np.frombuffer((copy / "exclusions.bin").read_bytes(), dtype="<u4").copy()
    ids[0] = (ids[0] + 1) % manifest.num_samples
    (copy / "exclusions.bin").write_bytes(ids.tobytes())
    assert main(["inspect", str(copy), "--verify", "--no-progress"]) == 1
    with pytest.raises(ManifestError, match="sha256"):
        ImageNetStream(str(copy))


def test_the_streamer_never_yields_an_excluded_sample_and_ranks_stay_equal(with_duplicates, monkeypatch) -> None:
    out, manifest = with_duplicates
    ids = set(np.frombuffer(Path(out, "exclusions.bin").read_bytes(), dtype="<u4").tolist())
    all_keys = [k for e in manifest.shards for k, _ in iter_samples(Path(out, e.name).read_bytes())]
    excluded = {all_keys[i] for i in ids}
    per_rank = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        ds = ImageNetStream(out, size=32, batch_size=5, return_keys=True, seed=2)
        keys = [k for _, _, batch in DataLoader(ds, batch_size=5, num_workers=2) for k in batch]
        assert len(keys) == len(ds) == manifest.num_available // 2
        per_rank.append(keys)
    seen = collections.Counter(per_rank[0] + per_rank[1])
    assert max(seen.values()) == 1 and not excluded & set(seen)
    assert len(seen) == manifest.num_available - manifest.num_available % 2
    os.environ.pop("RANK", None)

"""The sharding pipeline end to end on real files: folder trees and tar-of-tars in, shards out."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from imagenet_stream.errors import ConfigError, NothingKeptError
from imagenet_stream.format import (
    MANIFEST_NAME,
    REPORT_NAME,
    Manifest,
    SideIndex,
    decode_label,
    decode_meta,
    iter_samples,
)
from imagenet_stream.format.integrity import check_dataset
from imagenet_stream.hierarchy import standard_space
from imagenet_stream.sharding.coordinator import ShardOptions, shard
from imagenet_stream.storage import Store
from imagenet_stream.synthetic import make_jpeg, make_png, truncated

WNIDS = ("n01440764", "n01443537", "n02084071", "n02085620", "n02099601", "n02121808")


def make_tree(root: Path, per_class: int = 6,
              size: tuple[int, int] = (64, 48)) -> dict[str, tuple[str, bytes]]:
    """ROOT/<wnid>/<wnid>_<n>.JPEG; returns key -> (wnid, bytes)."""
    files: dict[str, tuple[str, bytes]] = {}
    for c, wnid in enumerate(WNIDS):
        (root / wnid).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            data = make_jpeg(*size, seed=c * 1000 + n)
            key = f"{wnid}_{n}"
            (root / wnid / f"{key}.JPEG").write_bytes(data)
            files[key] = (wnid, data)
    return files


def read_dataset(url: str, storage_options: dict | None = None) -> dict[str, tuple[int, dict, bytes, str]]:
    """key -> (label, meta, image bytes, shard name), asserting no key appears twice."""
    store = Store(url, storage_options)
    manifest = Manifest.load(store)
    out: dict[str, tuple[int, dict, bytes, str]] = {}
    for entry in manifest.shards:
        for key, members in iter_samples(store.read(entry.name), entry.name):
            assert key not in out, f"{key} is in {out.get(key, (0, 0, 0, ''))[3]} and {entry.name}"
            out[key] = (decode_label(members["cls"]), decode_meta(members["msgpack"]), members["jpg"],
                        entry.name)
    return out


def options(out: str, **kw) -> ShardOptions:
    kw.setdefault("shard_size", 10)
    kw.setdefault("workers", 0)
    return ShardOptions(out=out, **kw)


def test_round_trip_folder_tree(tmp_path: Path) -> None:
    files = make_tree(tmp_path / "src")
    out = str(tmp_path / "ds")
    result = shard([str(tmp_path / "src")], options(out))
    space = standard_space("in21k")  # dog/cat are not ILSVRC classes: the smallest standard space is in21k
    assert result.manifest.classes.space == "in21k"
    got = read_dataset(out)
    assert set(got) == set(files)
    for key, (wnid, data) in files.items():
        label, meta, image, _ = got[key]
        assert label == space.index(wnid)
        assert meta["wnid"] == wnid and meta["source"].endswith(f"{wnid}/{key}.JPEG")
        assert image == data  # RGB JPEGs are stored byte-identical
        assert meta["sha256"] == hashlib.sha256(data).hexdigest()
        assert (meta["width"], meta["height"]) == (64, 48)
    m = result.manifest
    assert m.num_samples == len(files) and [s.num_samples for s in m.shards] == [10, 10, 10, 6]
    assert sum(m.class_counts) == len(files)
    assert all(m.class_counts[space.index(w)] == 6 for w in WNIDS)
    assert check_dataset(Store(out), m) == []
    report = json.loads(Path(out, REPORT_NAME).read_text())
    assert report["kept"] == len(files) and report["rejected_total"] == 0 and result.seconds > 0


def test_webdataset_reads_the_shards(tmp_path: Path) -> None:
    files = make_tree(tmp_path / "src", per_class=3)
    out = tmp_path / "ds"
    shard([str(tmp_path / "src")], options(str(out), shard_size=7))
    urls = sorted(str(p) for p in out.glob("train-*.tar"))
    seen = {}
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        seen[sample["__key__"]] = (int(sample["cls"]), sample["jpg"])
    assert set(seen) == set(files)
    assert all(seen[k][1] == files[k][1] for k in files)


def test_memory_url_round_trip(tmp_path: Path) -> None:
    files = make_tree(tmp_path / "src", per_class=2)
    url = f"memory://ds-{tmp_path.name}"
    result = shard([str(tmp_path / "src")], options(url, classes="in22k"))
    got = read_dataset(url)
    in22k = standard_space("in22k")
    assert {k: v[0] for k, v in got.items()} == {k: in22k.index(w) for k, (w, _) in files.items()}
    assert result.manifest.classes.space == "in22k"
    assert check_dataset(Store(url), result.manifest) == []


def test_classes_are_mixed_and_order_is_seeded(tmp_path: Path) -> None:
    make_tree(tmp_path / "src", per_class=10)
    a = shard([str(tmp_path / "src")], options(str(tmp_path / "a"), seed=1))
    b = shard([str(tmp_path / "src")], options(str(tmp_path / "b"), seed=2))
    first = SideIndex.from_bytes((tmp_path / "a" / a.manifest.shards[0].index).read_bytes())
    assert len(set(first.labels.tolist())) >= 4  # 10 samples of 6 classes, not one class per shard
    other = SideIndex.from_bytes((tmp_path / "b" / b.manifest.shards[0].index).read_bytes())
    assert first.keys != other.keys


def test_same_bytes_for_any_worker_count(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, per_class=5)
    (src / WNIDS[0] / "dup.JPEG").write_bytes((src / WNIDS[1] / f"{WNIDS[1]}_0.JPEG").read_bytes())
    (src / WNIDS[2] / "cmyk.JPEG").write_bytes(make_jpeg(40, 30, seed=7, mode="CMYK"))
    results = {w: shard([str(src)], options(str(tmp_path / f"w{w}"), workers=w, seed=3, mtime=1_700_000_000))
               for w in (0, 2)}
    shards = {w: [(s.name, s.bytes, s.sha256, s.index_sha256) for s in r.manifest.shards]
              for w, r in results.items()}
    assert shards[0] == shards[2] and len(shards[0]) == 4
    assert results[0].manifest.labels == results[2].manifest.labels
    assert results[0].report["rejected"] == results[2].report["rejected"]
    assert results[0].report["rejected"]["duplicate"]["count"] == 1


def test_quirks_are_normalized_or_rejected_with_reasons(tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_tree(src, per_class=2)
    w = WNIDS[0]
    (src / w / f"{w}_cmyk.JPEG").write_bytes(make_jpeg(50, 40, seed=1, mode="CMYK"))
    (src / w / f"{w}_png.JPEG").write_bytes(make_png(50, 40, seed=2))
    (src / w / f"{w}_gray.JPEG").write_bytes(make_jpeg(50, 40, seed=3, mode="L"))
    (src / w / f"{w}_cut.JPEG").write_bytes(truncated(make_jpeg(200, 150, seed=4), keep=0.3))
    (src / w / f"{w}_empty.JPEG").write_bytes(b"")
    (src / w / f"{w}_junk.JPEG").write_bytes(b"this is not an image at all" * 10)
    (src / w / f"{w}_tiny.JPEG").write_bytes(make_jpeg(4, 4, seed=5))
    result = shard([str(src)], options(str(tmp_path / "ds")))
    got = read_dataset(str(tmp_path / "ds"))
    assert set(got) == set(files) | {f"{w}_cmyk", f"{w}_png", f"{w}_gray"}
    from PIL import Image
    for key, fix in ((f"{w}_cmyk", "cmyk_to_rgb"), (f"{w}_png", "png_to_jpeg")):
        _, meta, image, _ = got[key]
        assert fix in meta["fixes"]
        with Image.open(io.BytesIO(image)) as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (50, 40))
        assert meta["sha256"] == hashlib.sha256(image).hexdigest() != meta["source_sha256"]
    with Image.open(io.BytesIO(got[f"{w}_gray"][2])) as im:
        assert im.mode == "L"  # grayscale JPEGs stay byte-identical; the streamer converts
    rejected = result.report["rejected"]
    assert {r: e["count"] for r, e in rejected.items()} == {
        "empty_file": 1, "undecodable": 1, "truncated": 1, "too_small": 1}
    assert rejected["truncated"]["examples"][0]["key"] == f"{w}_cut"
    assert rejected["too_small"]["examples"][0]["source"].endswith(f"{w}_tiny.JPEG")
    assert result.report["fixes"] == {"cmyk_to_rgb": 1, "png_to_jpeg": 1}
    saved = json.loads((tmp_path / "ds" / REPORT_NAME).read_text())
    assert saved["rejected"] == rejected


def test_duplicates_dropped_and_key_collisions_renamed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_tree(src, per_class=2)
    w0, w1 = WNIDS[0], WNIDS[1]
    (src / w1 / "copy_of_first.JPEG").write_bytes(files[f"{w0}_0"][1])   # exact duplicate, other class
    (src / w1 / "copy2.JPEG").write_bytes(files[f"{w0}_0"][1])           # and another one
    other = src / "n09472597"
    other.mkdir()
    (other / f"{w0}_1.JPEG").write_bytes(make_jpeg(64, 48, seed=999))   # same key, different image
    result = shard([str(src)], options(str(tmp_path / "ds")))
    got = read_dataset(str(tmp_path / "ds"))
    dup = result.report["rejected"]["duplicate"]
    assert dup["count"] == 2 and result.report["duplicates"] == 2
    kept_copy = {k for k in got if got[k][2] == files[f"{w0}_0"][1]}
    assert len(kept_copy) == 1  # exactly one of the three identical files survives
    (kept,) = kept_copy
    assert [e["detail"] for e in dup["examples"]] == [f"same bytes as {kept}"] * 2
    assert result.report["key_collisions"]["count"] == 1
    renamed = result.report["key_collisions"]["examples"][0]["renamed_to"]
    assert renamed == f"{w0}_1-1" and renamed in got
    assert {got[f"{w0}_1"][1]["wnid"], got[renamed][1]["wnid"]} == {w0, "n09472597"}


def test_unknown_class_rejected_with_explicit_space(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, per_class=2)
    result = shard([str(src)], options(str(tmp_path / "ds"), classes="in1k"))
    # dog n02084071 and domestic cat n02121808 are not ILSVRC classes
    unknown = result.report["rejected"]["unknown_class"]
    assert unknown["count"] == 4
    assert {e["key"].split("_")[0] for e in unknown["examples"]} == {"n02084071", "n02121808"}
    assert result.manifest.num_samples == 8 and result.manifest.classes.space == "in1k"


def test_custom_class_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, per_class=1)
    space_file = tmp_path / "mine.txt"
    space_file.write_text("\n".join(reversed(WNIDS)) + "\n")
    result = shard([str(src)], options(str(tmp_path / "ds")))
    custom = shard([str(src)], options(str(tmp_path / "ds2"), classes=str(space_file)))
    assert custom.manifest.classes.space == "custom:mine"
    assert custom.manifest.classes.wnids == tuple(reversed(WNIDS))
    got = read_dataset(str(tmp_path / "ds2"))
    assert all(label == len(WNIDS) - 1 - WNIDS.index(meta["wnid"]) for label, meta, _, _ in got.values())
    assert result.manifest.num_samples == custom.manifest.num_samples == len(WNIDS)


def _tar_of_tars(path: Path, per_class: int) -> dict[str, str]:
    """ILSVRC2012_img_train.tar layout: one inner <wnid>.tar per synset, sorted by synset."""
    keys = {}
    with tarfile.open(path, "w") as outer:
        for c, wnid in enumerate(WNIDS):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as inner:
                for n in range(per_class):
                    data = make_jpeg(48, 40, seed=50_000 + c * 100 + n)
                    info = tarfile.TarInfo(f"{wnid}_{n}.JPEG")
                    info.size = len(data)
                    inner.addfile(info, io.BytesIO(data))
                    keys[f"{wnid}_{n}"] = wnid
            info = tarfile.TarInfo(f"{wnid}.tar")
            info.size = buf.tell()
            buf.seek(0)
            outer.addfile(info, buf)
    return keys


def test_stream_source_goes_through_the_spool_and_mixes(tmp_path: Path) -> None:
    keys = _tar_of_tars(tmp_path / "train.tar", per_class=8)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    result = shard([str(tmp_path / "train.tar")], options(str(tmp_path / "ds"), shard_size=12, workers=2,
                                                          tmp_dir=str(scratch)))
    got = read_dataset(str(tmp_path / "ds"))
    assert {k: v[1]["wnid"] for k, v in got.items()} == keys
    space = standard_space("in21k")
    assert all(v[0] == space.index(v[1]["wnid"]) for v in got.values())
    for entry in result.manifest.shards[:-1]:  # a sorted stream, yet every shard mixes classes
        side = SideIndex.from_bytes((tmp_path / "ds" / entry.index).read_bytes())
        assert len(set(side.labels.tolist())) >= 3
    assert list(scratch.iterdir()) == []  # spool and staged shards are removed
    assert check_dataset(Store(str(tmp_path / "ds")), result.manifest) == []


def test_stream_and_folder_give_the_same_samples(tmp_path: Path) -> None:
    keys = _tar_of_tars(tmp_path / "train.tar", per_class=3)
    with tarfile.open(tmp_path / "train.tar") as outer:
        for member in outer:
            with tarfile.open(fileobj=outer.extractfile(member)) as inner:
                inner.extractall(tmp_path / "tree" / member.name[:-4], filter="data")
    a = shard([str(tmp_path / "train.tar")], options(str(tmp_path / "a")))
    b = shard([str(tmp_path / "tree")], options(str(tmp_path / "b")))
    got_a, got_b = read_dataset(str(tmp_path / "a")), read_dataset(str(tmp_path / "b"))
    assert set(got_a) == set(got_b) == set(keys)
    assert all(got_a[k][2] == got_b[k][2] and got_a[k][0] == got_b[k][0] for k in keys)
    assert a.manifest.class_counts == b.manifest.class_counts


def test_byte_limit_closes_shards(tmp_path: Path) -> None:
    make_tree(tmp_path / "src", per_class=4, size=(160, 120))
    limit = 64 * 1024
    result = shard([str(tmp_path / "src")],
                   options(str(tmp_path / "ds"), shard_size=1000, max_shard_bytes=limit))
    assert len(result.manifest.shards) > 1
    assert all(s.bytes <= limit for s in result.manifest.shards)
    assert result.manifest.num_samples == 24


def test_refuses_to_overwrite_a_dataset(tmp_path: Path) -> None:
    make_tree(tmp_path / "src", per_class=2)
    out = str(tmp_path / "ds")
    shard([str(tmp_path / "src")], options(out, shard_size=3))
    before = (tmp_path / "ds" / MANIFEST_NAME).read_bytes()
    with pytest.raises(ConfigError, match="overwrite"):
        shard([str(tmp_path / "src")], options(out))
    assert (tmp_path / "ds" / MANIFEST_NAME).read_bytes() == before
    result = shard([str(tmp_path / "src")], options(out, shard_size=100, overwrite=True))
    assert len(result.manifest.shards) == 1
    # stale shards of the replaced dataset are gone
    left = sorted(p.name for p in (tmp_path / "ds").glob("train-*"))
    assert left == ["train-000000.idx", "train-000000.tar"]


def test_nothing_kept_writes_report_but_no_manifest(tmp_path: Path) -> None:
    src = tmp_path / "src" / "n01440764"
    src.mkdir(parents=True)
    (src / "a.JPEG").write_bytes(b"")
    with pytest.raises(NothingKeptError) as info:
        shard([str(tmp_path / "src")], options(str(tmp_path / "ds")))
    assert info.value.report["rejected"]["empty_file"]["count"] == 1
    assert (tmp_path / "ds" / REPORT_NAME).exists() and not (tmp_path / "ds" / MANIFEST_NAME).exists()


def test_labels_bin_matches_side_indexes(tmp_path: Path) -> None:
    make_tree(tmp_path / "src", per_class=3)
    result = shard([str(tmp_path / "src")], options(str(tmp_path / "ds"), shard_size=4))
    m = result.manifest
    assert m.labels is not None and m.labels.dtype == "<u2"
    labels = np.frombuffer((tmp_path / "ds" / m.labels.name).read_bytes(), dtype=m.labels.dtype)
    sides = [SideIndex.from_bytes((tmp_path / "ds" / s.index).read_bytes()) for s in m.shards]
    assert labels.tolist() == np.concatenate([s.labels for s in sides]).tolist()
    assert m.extra == {"seed": 0, "sources": [m.extra["sources"][0]], "prefix": "train", "plan": m.extra["plan"]}


@pytest.mark.parametrize("bad", [dict(workers=-1), dict(quality=0), dict(shard_size=0), dict(prefix="a.b"),
                                 dict(resize_short_side=4), dict(seed=-1)])
def test_invalid_options(bad: dict) -> None:
    with pytest.raises(ValueError):
        ShardOptions(out="memory://x", **bad)


def test_stream_rejects_wnids_outside_the_space(tmp_path: Path) -> None:
    keys = _tar_of_tars(tmp_path / "train.tar", per_class=2)
    with tarfile.open(tmp_path / "train.tar", "a") as outer:  # a synset in no standard space
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as inner:
            data = make_jpeg(40, 30, seed=4242)
            info = tarfile.TarInfo("n99999999_1.JPEG")
            info.size = len(data)
            inner.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("n99999999.tar")
        info.size = buf.tell()
        buf.seek(0)
        outer.addfile(info, buf)
    # the class space is chosen after the spool
    chosen = shard([str(tmp_path / "train.tar")], options(str(tmp_path / "a")))
    assert chosen.manifest.classes.space == "in21k" and chosen.manifest.num_samples == len(keys)
    assert chosen.report["rejected"]["unknown_class"]["examples"][0]["key"] == "n99999999_1"
    # the class space is known up front
    given = shard([str(tmp_path / "train.tar")], options(str(tmp_path / "b"), classes="in1k"))
    assert given.report["rejected"]["unknown_class"]["count"] == 2 * 2 + 1  # dog, cat and n99999999
    assert given.manifest.num_samples == len(keys) - 4


def test_resize_short_side(tmp_path: Path) -> None:
    make_tree(tmp_path / "src", per_class=1, size=(96, 64))
    result = shard([str(tmp_path / "src")], options(str(tmp_path / "ds"), resize_short_side=32, quality=80))
    got = read_dataset(str(tmp_path / "ds"))
    from PIL import Image
    for _, meta, image, _ in got.values():
        assert (meta["width"], meta["height"]) == (48, 32) and "resized" in meta["fixes"]
        with Image.open(io.BytesIO(image)) as im:
            assert im.size == (48, 32)
    assert result.report["fixes"] == {"resized": len(WNIDS)}

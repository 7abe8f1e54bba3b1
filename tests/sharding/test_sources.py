"""Sources end to end on real files: folder trees, nested tars (plain and gzip), val folders, lists.

Each source is listed into a real listing, and every record's locator is read back the way a shard
task reads it (ranged reads for tar members), so the bytes prove the offsets.
"""
from __future__ import annotations

import io
import json
import logging
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from imagenet_stream.errors import SourceError
from imagenet_stream.sharding.listing import ListingWriter
from imagenet_stream.sharding.records import FailedRecord, Rejected, Verified
from imagenet_stream.sharding.sources import (
    FolderTreeSource,
    LabelledFolderSource,
    ListingContext,
    ListSource,
    Source,
    SynsetTarFolderSource,
    TarSource,
    open_source,
    open_sources,
)
from imagenet_stream.sharding.task import RunConfig, _load
from imagenet_stream.sharding.verify_image import VerifyConfig, verify_record
from imagenet_stream.storage import Store
from imagenet_stream.synthetic import make_jpeg, make_png

W1, W2, W3 = "n01440764", "n01443537", "n02084071"


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def tar_bytes(members: list[tuple[str, bytes]], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def img(seed: int) -> bytes:
    return make_jpeg(24, 16, seed)


def records(src: Source, tmp_path: Path, staging: Store | None = None, storage_options: dict | None = None) -> list:
    """Every record of ``src`` loaded as a shard task loads it (SourceRecord with data, or FailedRecord)."""
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    writer = ListingWriter(str(scratch))
    src.list_into(writer, ListingContext(staging=staging or Store(str(tmp_path / "staging"))))
    listing = writer.finish()
    config = RunConfig(out=str(tmp_path), storage_options=None, source_storage_options=storage_options,
                       containers=listing.containers, class_index={}, verify=VerifyConfig(), prefix="train",
                       mtime=0, plan_hash="x", done_folder="done", io_threads=1)
    try:
        return [_load(config, r, r.key) for r in listing.records(np.arange(len(listing)))]
    finally:
        listing.close()


# ----------------------------------------------------------------------------------------------- folder tree
def test_folder_tree_sorted_records_and_skips(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "train"
    write(root / W2 / f"{W2}_2.JPEG", img(1))
    write(root / W2 / f"{W2}_10.jpg", img(2))
    write(root / W1 / f"{W1}_5.Png", make_png(16, 16, 3))
    write(root / W1 / f"{W1}_1.jpeg", img(4))
    write(root / W1 / ".DS_Store", b"junk")
    write(root / W1 / "notes.txt", b"text")
    write(root / ".hidden" / "x.JPEG", img(5))
    (root / W3).mkdir()
    with caplog.at_level(logging.DEBUG, logger="imagenet_stream.sharding.sources"):
        src = open_source(str(root))
        recs = records(src, tmp_path)
    assert isinstance(src, FolderTreeSource) and isinstance(src, Source)
    assert src.synsets == [W1, W2, W3]
    assert "3 synsets" in src.description
    assert [(r.wnid, r.key) for r in recs] == [(W1, f"{W1}_1"), (W1, f"{W1}_5"),
                                               (W2, f"{W2}_10"), (W2, f"{W2}_2")]
    assert [r.source for r in recs] == [f"train/{W1}/{W1}_1.jpeg", f"train/{W1}/{W1}_5.Png",
                                        f"train/{W2}/{W2}_10.jpg", f"train/{W2}/{W2}_2.JPEG"]
    assert [r.data for r in recs] == [img(4), make_png(16, 16, 3), img(2), img(1)]
    assert [r.size for r in recs] == [len(r.data) for r in recs]
    assert "notes.txt" in caplog.text  # non-image files are skipped with a debug log


def test_folder_tree_rejects_non_wnid_folder(tmp_path: Path) -> None:
    write(tmp_path / W1 / "a.JPEG", img(0))
    write(tmp_path / "cats" / "b.JPEG", img(1))
    with pytest.raises(SourceError, match="'cats' is not named like a wnid"):
        open_source(str(tmp_path))


def test_folder_tree_hints_at_nested_split(tmp_path: Path) -> None:
    write(tmp_path / "train" / W1 / "a.JPEG", img(0))
    write(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG", img(1))
    with pytest.raises(SourceError, match="pass .*train.* as its own source"):
        open_source(str(tmp_path))


# ------------------------------------------------------------------------------------------- labelled folder
def val_folder(tmp_path: Path, n: int = 3) -> Path:
    root = tmp_path / "val"
    for i in range(n, 0, -1):
        write(root / f"ILSVRC2012_val_{i:08d}.JPEG", img(i))
    write(root / "LOC_val_solution.csv", b"not an image")
    return root


def test_val_folder_one_wnid_per_line(tmp_path: Path) -> None:
    root = val_folder(tmp_path)
    labels = write(tmp_path / "validation_labels.txt", f"{W1}\n{W2}\n\n{W1}\n".encode())
    src = open_source(str(root), labels=str(labels))
    assert isinstance(src, LabelledFolderSource)
    recs = records(src, tmp_path)
    assert [(r.key, r.wnid) for r in recs] == [("ILSVRC2012_val_00000001", W1),
                                               ("ILSVRC2012_val_00000002", W2),
                                               ("ILSVRC2012_val_00000003", W1)]
    assert [r.data for r in recs] == [img(1), img(2), img(3)] and "3 images, 2 synsets" in src.description


def test_val_folder_count_mismatch_names_both_counts(tmp_path: Path) -> None:
    root = val_folder(tmp_path)
    labels = write(tmp_path / "labels.txt", f"{W1}\n{W2}\n".encode())
    with pytest.raises(SourceError, match="has 2 labels but .* has 3 images"):
        open_source(str(root), labels=str(labels))


@pytest.mark.parametrize("text", [
    f"filename,wnid\nILSVRC2012_val_00000002.JPEG,{W2}\nILSVRC2012_val_00000001.JPEG,{W1}\n"
    f"ILSVRC2012_val_00000003.JPEG,{W3}\n",
    f"ILSVRC2012_val_00000002.JPEG\t{W2}\nILSVRC2012_val_00000001.JPEG\t{W1}\n"
    f"ILSVRC2012_val_00000003.JPEG\t{W3}\n",
    f"val/ILSVRC2012_val_00000001.JPEG {W1}\nval/ILSVRC2012_val_00000002.JPEG {W2}\n"
    f"val/ILSVRC2012_val_00000003.JPEG {W3}\nILSVRC2012_val_00000099.JPEG {W3}\n",
    # Kaggle's LOC_val_solution.csv: no extension, the wnid is the first word of the second column
    f"ImageId,PredictionString\nILSVRC2012_val_00000003,{W3} 1 2 3 4 {W3} 5 6 7 8\n"
    f"ILSVRC2012_val_00000001,{W1} 1 2 3 4\nILSVRC2012_val_00000002,{W2} 9 9 9 9\n",
])
def test_val_folder_name_wnid_rows(tmp_path: Path, text: str) -> None:
    root = val_folder(tmp_path)
    labels = write(tmp_path / "labels.csv", text.encode())
    src = open_source(str(root), labels=str(labels))
    assert [r.wnid for r in records(src, tmp_path)] == [W1, W2, W3]


def test_val_folder_label_errors(tmp_path: Path) -> None:
    root = val_folder(tmp_path)
    cases = {
        "devkit.txt": ("490\n361\n171\n", r"devkit.txt:1: numeric label '490'.*meta.mat order"),
        "bad.txt": (f"{W1}\ndog\n{W2}\n", r"bad.txt:2: 'dog' is not a wnid"),
        "mixed.txt": (f"{W1}\n{W1} extra\n{W2}\n", r"mixed.txt:2: expected one wnid per line"),
        "partial.csv": (f"ILSVRC2012_val_00000001.JPEG,{W1}\n", r"no label for 2 of the 3 images.*00000002"),
        "caffe.txt": ("ILSVRC2012_val_00000001.JPEG 65\n", r"caffe.txt:1: numeric label '65'"),
        "conflict.csv": (f"a.JPEG,{W1}\na.JPEG,{W2}\n",
                         r"conflict.csv:2: 'a.JPEG' is labelled n01443537 here"),
        "empty.txt": ("\n\n", "is empty"),
    }
    for name, (text, pattern) in cases.items():
        labels = write(tmp_path / name, text.encode())
        with pytest.raises(SourceError, match=pattern):
            open_source(str(root), labels=str(labels))
    with pytest.raises(SourceError, match="pass a labels file"):
        open_source(str(root))
    with pytest.raises(SourceError, match="cannot read labels file"):
        open_source(str(root), labels=str(tmp_path / "missing.txt"))


# ------------------------------------------------------------------------------------------------------ tars
def nested_members() -> list[tuple[str, bytes]]:
    return [
        (f"{W1}.tar", tar_bytes([(f"{W1}_10026.JPEG", img(1)), (f"{W1}_2.JPEG", img(2)), ("README", b"x")])),
        (f"{W2}.tar", tar_bytes([(f"{W2}_7.JPEG", make_png(16, 16, 3))])),
    ]


@pytest.mark.parametrize("name,mode", [("ILSVRC2012_img_train.tar", "w"), ("winter21_whole.tar.gz", "w:gz"),
                                       ("fall11.tgz", "w:gz"), ("x.tar.bz2", "w:bz2"), ("y.tar.xz", "w:xz")])
def test_nested_tar_lists_every_image(tmp_path: Path, name: str, mode: str) -> None:
    path = write(tmp_path / name, tar_bytes(nested_members(), mode))
    src = open_source(str(path))
    assert isinstance(src, TarSource)
    recs = records(src, tmp_path)
    assert [(r.source, r.wnid, r.key) for r in recs] == [
        (f"{name}/{W1}.tar/{W1}_10026.JPEG", W1, f"{W1}_10026"),
        (f"{name}/{W1}.tar/{W1}_2.JPEG", W1, f"{W1}_2"),
        (f"{name}/{W2}.tar/{W2}_7.JPEG", W2, f"{W2}_7"),
    ]
    assert [r.data for r in recs] == [img(1), img(2), make_png(16, 16, 3)]  # ranged reads, right offsets
    staged = sorted(p.name for p in (tmp_path / "staging").rglob("*.tar"))
    if mode == "w":
        assert staged == [] and "indexed" in src.description  # never copied
    else:
        assert staged == [f"{W1}.tar", f"{W2}.tar"] and "staged" in src.description


def test_a_staged_run_resumes_without_staging_again(tmp_path: Path) -> None:
    path = write(tmp_path / "w.tar.gz", tar_bytes(nested_members(), "w:gz"))
    first = records(open_source(str(path)), tmp_path)
    staged = sorted((tmp_path / "staging").rglob("*.tar"))
    before = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in staged]
    again = records(open_source(str(path)), tmp_path)
    assert [(r.key, r.data) for r in again] == [(r.key, r.data) for r in first]
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in staged] == before  # not written again


def test_corrupt_inner_tar_is_counted_not_dropped(tmp_path: Path) -> None:
    good = tar_bytes([(f"{W1}_1.JPEG", img(1)), (f"{W1}_2.JPEG", img(2)), (f"{W1}_3.JPEG", img(3))])
    second = 512 + -(-len(img(1)) // 512) * 512  # offset of the second header
    header_cut = good[: second + 100]
    boundary_cut = good[:second]  # ends right after the first image, without an end-of-archive block
    bad_header = bytearray(good)
    bad_header[second: second + 20] = b"x" * 20  # the second header's checksum no longer matches
    path = write(tmp_path / "train.tar", tar_bytes([
        (f"{W1}.tar", header_cut), (f"{W2}.tar", b"\x00garbage" * 100), (f"{W3}.tar", boundary_cut),
        ("n00000001.tar", bytes(bad_header)), ("n00000002.tar", good[:600]),
        ("n00000003.tar", tar_bytes([("n00000003_1.JPEG", img(9))])),
    ]))
    recs = records(open_source(str(path)), tmp_path)
    assert [(type(r).__name__, r.wnid, r.key) for r in recs] == [  # the wnid comes from the inner tar's name
        ("SourceRecord", W1, f"{W1}_1"), ("FailedRecord", W1, W1),
        ("FailedRecord", W2, W2),
        ("SourceRecord", W3, f"{W1}_1"), ("FailedRecord", W3, W3),
        ("SourceRecord", "n00000001", f"{W1}_1"), ("FailedRecord", "n00000001", "n00000001"),
        ("FailedRecord", "n00000002", "n00000002"),  # cut inside the first image's data
        ("SourceRecord", "n00000003", "n00000003_1"),
    ]
    assert recs[0].data == img(1) and recs[8].data == img(9)
    broken = recs[1]
    assert isinstance(broken, FailedRecord)
    assert broken.source == f"train.tar/{W1}.tar" and broken.wnid == W1
    assert "after 1 images" in broken.error
    assert "bad checksum" in recs[6].error and "end-of-archive" in recs[4].error
    result = verify_record(pickle.loads(pickle.dumps(broken)), VerifyConfig())
    assert isinstance(result, Rejected) and result.reason == "unreadable_file" and "damaged" in result.detail


@pytest.mark.parametrize("cut", [512 + 700, 512 + 10240 + 100, 512 + 10240])
def test_outer_tar_damage_raises(tmp_path: Path, cut: int) -> None:
    """Cut inside the first inner tar's data, inside the second header, or exactly between members."""
    data = tar_bytes(nested_members())
    path = write(tmp_path / "train.tar", data[:cut])
    try:
        src = open_source(str(path))
    except SourceError as exc:  # the damage can show already in the head read to detect the layout
        assert "runs past the end" in str(exc)
        return
    with pytest.raises(SourceError, match="is damaged|runs past the end"):
        records(src, tmp_path)


def test_inner_tar_not_named_like_wnid(tmp_path: Path) -> None:
    path = write(tmp_path / "train.tar", tar_bytes([(f"{W1}.tar", tar_bytes([("a.JPEG", img(0))])),
                                                    ("dogs.tar", tar_bytes([("b.JPEG", img(1))]))]))
    with pytest.raises(SourceError, match="inner tar 'dogs.tar'.*not a wnid"):
        records(open_source(str(path)), tmp_path)


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_tar_of_synset_folders(tmp_path: Path, mode: str) -> None:
    path = write(tmp_path / ("imagenet.tar" if mode == "w" else "imagenet.tar.gz"), tar_bytes([
        ("train/", b""), (f"./train/{W2}/{W2}_1.JPEG", img(1)), (f"train/{W1}/{W1}_4.jpg", img(2)),
        (f"train/{W1}/._{W1}_4.jpg", b"mac junk"),
    ], mode))
    recs = records(open_source(str(path)), tmp_path)
    assert [(r.source, r.wnid, r.data) for r in recs] == [
        (f"{path.name}/train/{W2}/{W2}_1.JPEG", W2, img(1)),
        (f"{path.name}/train/{W1}/{W1}_4.jpg", W1, img(2))]


def test_flat_tar_with_labels(tmp_path: Path) -> None:
    names = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in (2, 1, 3)]  # tar order is not sorted order
    path = write(tmp_path / "ILSVRC2012_img_val.tar", tar_bytes([(n, img(i)) for i, n in enumerate(names)]))
    with pytest.raises(SourceError, match="pass a labels file"):
        open_source(str(path))
    labels = write(tmp_path / "validation_labels.txt", f"{W1}\n{W2}\n{W3}\n".encode())
    src = open_source(str(path), labels=str(labels))
    got = {r.key: (r.wnid, r.data) for r in records(src, tmp_path)}
    assert got == {"ILSVRC2012_val_00000001": (W1, img(1)), "ILSVRC2012_val_00000002": (W2, img(0)),
                   "ILSVRC2012_val_00000003": (W3, img(2))}
    short = write(tmp_path / "short.txt", f"{W1}\n".encode())
    with pytest.raises(SourceError, match="has 1 labels but .* has 3 images"):
        records(open_source(str(path), labels=str(short)), tmp_path)


def test_single_per_synset_tar_takes_its_name_as_wnid(tmp_path: Path) -> None:
    path = write(tmp_path / f"{W2}.tar", tar_bytes([(f"{W2}_3.JPEG", img(3)), (f"{W2}_1.JPEG", img(1))]))
    src = open_source(str(path))
    assert [(r.source, r.wnid, r.data) for r in records(src, tmp_path)] == [
        (f"{W2}.tar/{W2}_3.JPEG", W2, img(3)), (f"{W2}.tar/{W2}_1.JPEG", W2, img(1))]


def test_folder_of_per_synset_tars(tmp_path: Path) -> None:
    """``ILSVRC2012_img_train.tar`` unpacked one level: 1,000 nXXXXXXXX.tar files in a folder."""
    root = tmp_path / "train_tars"
    for name, data in nested_members():
        write(root / name, data)
    write(root / f"{W3}.tar", b"not a tar" * 100)
    write(root / "checksums.md5", b"...")
    src = open_source(str(root))
    assert isinstance(src, SynsetTarFolderSource)
    recs = records(src, tmp_path)
    assert [(type(r).__name__, r.wnid, r.key) for r in recs] == [
        ("SourceRecord", W1, f"{W1}_10026"), ("SourceRecord", W1, f"{W1}_2"), ("SourceRecord", W2, f"{W2}_7"),
        ("FailedRecord", W3, W3)]
    assert recs[0].source == f"train_tars/{W1}.tar/{W1}_10026.JPEG" and recs[0].data == img(1)
    assert recs[3].source == f"train_tars/{W3}.tar"  # relative to the source given: no user or mount point
    write(root / "extra.tar", tar_bytes([("a.JPEG", img(0))]))
    with pytest.raises(SourceError, match="tar 'extra.tar'.*not a wnid"):
        open_source(str(root))


def test_one_synset_folder_is_not_a_dataset(tmp_path: Path) -> None:
    write(tmp_path / W1 / f"{W1}_1.JPEG", img(1))
    with pytest.raises(SourceError, match="is one synset folder"):
        open_source(str(tmp_path / W1))


def test_not_a_tar(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.tar", b"this is not a tar archive at all" * 50)
    with pytest.raises(SourceError, match="cannot read .* as a tar archive|no inner tar or image"):
        open_source(str(path))


def test_a_tar_on_s3_is_indexed_and_read_by_ranges(tmp_path: Path, s3_bucket: str, s3_options: dict) -> None:
    remote = Store(f"s3://{s3_bucket}/src", s3_options)
    remote.write_atomic("ILSVRC2012_img_train.tar", tar_bytes(nested_members()))
    write(tmp_path / "train" / W1 / f"{W1}_3.JPEG", img(3))
    remote.write_atomic(f"tree/{W1}/{W1}_3.JPEG", img(3))
    src = open_source(f"s3://{s3_bucket}/src/ILSVRC2012_img_train.tar", storage_options=s3_options)
    recs = records(src, tmp_path, storage_options=s3_options)
    assert [(r.key, r.data) for r in recs] == [(f"{W1}_10026", img(1)), (f"{W1}_2", img(2)),
                                               (f"{W2}_7", make_png(16, 16, 3))]
    tree = open_source(f"s3://{s3_bucket}/src/tree", storage_options=s3_options)
    assert isinstance(tree, FolderTreeSource) and [(r.key, r.data) for r in records(
        tree, tmp_path, storage_options=s3_options)] == [
        (f"{W1}_3", img(3))]


# ----------------------------------------------------------------------------------------------------- lists
def test_csv_list_relative_paths_and_missing_file(tmp_path: Path) -> None:
    write(tmp_path / "data" / "a.JPEG", img(1))
    absolute = write(tmp_path / "elsewhere" / "b.jpg", img(2))
    text = f"a.JPEG,{W1}\n{absolute},{W2}\n\nsub/missing.JPEG,{W1}\n"
    lst = write(tmp_path / "data" / "list.csv", text.encode())
    src = open_source(str(lst))
    assert isinstance(src, ListSource)
    recs = records(src, tmp_path)
    assert [r.source for r in recs] == ["a.JPEG", str(absolute), "sub/missing.JPEG"]  # as the list wrote them
    assert [r.key for r in recs] == ["a", "b", "missing"]
    assert recs[1].data == img(2) and isinstance(recs[2], FailedRecord)
    results = [verify_record(r, VerifyConfig()) for r in recs]
    assert isinstance(results[0], Verified) and results[0].image == img(1)
    assert isinstance(results[2], Rejected) and results[2].reason == "unreadable_file"


def test_csv_header_with_key_and_tsv(tmp_path: Path) -> None:
    write(tmp_path / "x.JPEG", img(1))
    lst = write(tmp_path / "l.csv", f"wnid,path,key\n{W1},x.JPEG,custom-key_1\n".encode())
    assert [(r.key, r.wnid) for r in records(open_source(str(lst)), tmp_path)] == [("custom-key_1", W1)]
    tsv = write(tmp_path / "l.tsv", f"x.JPEG\t{W2}\n".encode())
    assert [(r.key, r.wnid) for r in records(open_source(str(tsv)), tmp_path)] == [("x", W2)]


def test_jsonl_list(tmp_path: Path) -> None:
    write(tmp_path / "x.JPEG", img(1))
    rows = [{"path": "x.JPEG", "wnid": W1}, {"path": "x.JPEG", "wnid": W2, "key": "dup"}]
    lst = write(tmp_path / "l.jsonl", ("\n".join(json.dumps(r) for r in rows) + "\n\n").encode())
    recs = records(open_source(str(lst)), tmp_path)
    assert [(r.key, r.wnid, r.data) for r in recs] == [("x", W1, img(1)), ("dup", W2, img(1))]


@pytest.mark.parametrize("name,text,pattern", [
    ("a.csv", f"x.JPEG,{W1}\ny.JPEG\n", r"a.csv:2: expected 'path,wnid'"),
    ("b.csv", f"x.JPEG,{W1}\ny.JPEG,dog\n", r"b.csv:2: 'dog' is not a wnid"),
    ("c.csv", "file,label\nx.JPEG,n01440764\n",
     r"c.csv:1: expected a header naming the columns 'path' and 'wnid'"),
    ("d.csv", f"path,wnid\nx.JPEG,{W1},extra\n", r"d.csv:2: expected 2 columns"),
    ("e.csv", f"path,wnid,key\nx.JPEG,{W1},bad.key\n", r"e.csv:2: key 'bad.key'"),
    ("f.jsonl", f'{{"path": "x", "wnid": "{W1}"}}\n{{"path": "y"\n', r"f.jsonl:2: not valid JSON"),
    ("g.jsonl", f'["x", "{W1}"]\n', r"g.jsonl:1: expected an object"),
    ("h.jsonl", f'{{"wnid": "{W1}"}}\n', r"h.jsonl:1: missing or empty path"),
    ("i.jsonl", '{"path": "x", "wnid": 5}\n', r"i.jsonl:1: wnid must be a string"),
    ("j.csv", "\n\n", r"has no rows"),
])
def test_list_errors_name_file_and_line(tmp_path: Path, name: str, text: str, pattern: str) -> None:
    lst = write(tmp_path / name, text.encode())
    with pytest.raises(SourceError, match=pattern):  # a bad first row at open, a later one while listing
        records(open_source(str(lst)), tmp_path)


# ------------------------------------------------------------------------------------------------ open_source
def test_open_source_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        open_source(str(tmp_path / "nope"))
    with pytest.raises(SourceError, match="list files must be local"):
        open_source("s3://bucket/list.csv")
    with pytest.raises(SourceError, match="expected a folder, a tar"):
        open_source(str(write(tmp_path / "x.zip", b"PK")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no synset folders, image files or per-synset tars"):
        open_source(str(tmp_path / "empty"))
    with pytest.raises(SourceError, match="no sources given"):
        open_sources([])


def test_open_sources_mixes_layouts_and_shares_labels(tmp_path: Path) -> None:
    write(tmp_path / "train" / W1 / f"{W1}_1.JPEG", img(1))
    root = val_folder(tmp_path, n=2)
    labels = write(tmp_path / "labels.txt", f"{W2}\n{W1}\n".encode())
    tar = write(tmp_path / "t.tar", tar_bytes(nested_members()))
    srcs = open_sources([f"file://{tmp_path / 'train'}", str(root), str(tar)], labels=str(labels))
    assert [type(s).__name__ for s in srcs] == ["FolderTreeSource", "LabelledFolderSource", "TarSource"]
    assert [r.wnid for s in srcs for r in records(s, tmp_path)] == [W1, W2, W1, W1, W1, W2]

"""Sources end to end on real files: folder trees, nested tars (plain and gzip), val folders, lists."""
from __future__ import annotations

import io
import json
import logging
import os
import pickle
import tarfile
import threading
from pathlib import Path

import pytest

from imagenet_stream.errors import SourceError
from imagenet_stream.sharding.records import Rejected, Verified
from imagenet_stream.sharding.sources import (FolderTreeSource, LabelledFolderSource, ListSource, Source,
                                              SynsetTarFolderSource, TarSource, UnreadableRecord, open_source,
                                              open_sources)
from imagenet_stream.sharding.verify import VerifyConfig, verify_record
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
        recs = list(src.records())
    assert isinstance(src, FolderTreeSource) and isinstance(src, Source)
    assert src.random_access is True
    assert src.wnids() == {W1, W2, W3}
    assert src.count() == 4
    assert "3 synsets" in src.description
    assert [(r.wnid, r.key) for r in recs] == [(W1, f"{W1}_1"), (W1, f"{W1}_5"),
                                               (W2, f"{W2}_10"), (W2, f"{W2}_2")]
    assert all(r.data is None and os.path.isfile(r.path) for r in recs)
    assert all(r.source == f"{root.name}/{r.wnid}/{os.path.basename(r.path)}" for r in recs)
    assert recs[0].load() == img(4)
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
    recs = list(src.records())
    assert [(r.key, r.wnid) for r in recs] == [("ILSVRC2012_val_00000001", W1),
                                               ("ILSVRC2012_val_00000002", W2),
                                               ("ILSVRC2012_val_00000003", W1)]
    assert src.wnids() == {W1, W2} and src.count() == 3 and src.random_access


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
    assert [r.wnid for r in src.records()] == [W1, W2, W3]


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
                                       ("fall11.tgz", "w:gz")])
def test_nested_tar_streams_every_image(tmp_path: Path, name: str, mode: str) -> None:
    path = write(tmp_path / name, tar_bytes(nested_members(), mode))
    src = open_source(str(path))
    assert isinstance(src, TarSource) and src.random_access is False
    assert src.wnids() is None and src.count() is None
    recs = list(src.records())
    assert [(r.source, r.wnid, r.key) for r in recs] == [
        (f"{name}/{W1}.tar/{W1}_10026.JPEG", W1, f"{W1}_10026"),
        (f"{name}/{W1}.tar/{W1}_2.JPEG", W1, f"{W1}_2"),
        (f"{name}/{W2}.tar/{W2}_7.JPEG", W2, f"{W2}_7"),
    ]
    assert recs[0].data == img(1) and recs[2].data == make_png(16, 16, 3) and recs[0].path is None


def test_nested_tar_is_read_as_a_forward_stream(tmp_path: Path) -> None:
    """A pipe (no seek) works: the gzip form is consumed strictly forward."""
    data = tar_bytes(nested_members(), "w:gz")
    fifo = tmp_path / "stream.tar.gz"
    os.mkfifo(fifo)
    detected = threading.Event()
    first_closed = threading.Event()

    def feed() -> None:
        for round_ in range(2):  # once for layout detection (reads the head only), once for records()
            if round_ == 1 and not detected.wait(timeout=10):
                return
            try:
                with open(fifo, "wb", buffering=0) as f:
                    f.write(data)
            except BrokenPipeError:
                pass
            first_closed.set()

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        src = TarSource(str(fifo))
        # records() must not open the FIFO while the first writer still holds it: it would read
        # the rest of the first pass (or its EOF) instead of a fresh stream.
        assert first_closed.wait(timeout=10)
        detected.set()
        recs = list(src.records())
    finally:
        detected.set()
        writer.join(timeout=10)
    assert [r.key for r in recs] == [f"{W1}_10026", f"{W1}_2", f"{W2}_7"]


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
    recs = list(open_source(str(path)).records())
    assert [(type(r).__name__, r.wnid, r.key) for r in recs] == [  # the wnid comes from the inner tar's name
        ("SourceRecord", W1, f"{W1}_1"), ("UnreadableRecord", W1, W1),
        ("UnreadableRecord", W2, W2),
        ("SourceRecord", W3, f"{W1}_1"), ("UnreadableRecord", W3, W3),
        ("SourceRecord", "n00000001", f"{W1}_1"), ("UnreadableRecord", "n00000001", "n00000001"),
        ("UnreadableRecord", "n00000002", "n00000002"),  # cut inside the first image's data
        ("SourceRecord", "n00000003", "n00000003_1"),
    ]
    broken = recs[1]
    assert isinstance(broken, UnreadableRecord)
    assert broken.source == f"train.tar/{W1}.tar" and broken.wnid == W1
    assert "after 1 images" in broken.error
    assert "invalid header" in recs[6].error and "end-of-archive" in recs[4].error
    result = verify_record(pickle.loads(pickle.dumps(broken)), VerifyConfig())
    assert isinstance(result, Rejected) and result.reason == "unreadable_file" and W1 in result.detail


@pytest.mark.parametrize("cut", [512 + 700, 512 + 10240 + 100, 512 + 10240])
def test_outer_tar_damage_raises(tmp_path: Path, cut: int) -> None:
    """Cut inside the first inner tar's data, inside the second header, or exactly between members."""
    data = tar_bytes(nested_members())
    path = write(tmp_path / "train.tar", data[:cut])
    src = open_source(str(path))
    with pytest.raises(SourceError, match="damaged after member"):
        list(src.records())


def test_inner_tar_not_named_like_wnid(tmp_path: Path) -> None:
    path = write(tmp_path / "train.tar", tar_bytes([(f"{W1}.tar", tar_bytes([("a.JPEG", img(0))])),
                                                    ("dogs.tar", tar_bytes([("b.JPEG", img(1))]))]))
    with pytest.raises(SourceError, match="inner tar 'dogs.tar'.*not a wnid"):
        list(open_source(str(path)).records())


def test_tar_of_synset_folders(tmp_path: Path) -> None:
    path = write(tmp_path / "imagenet.tar", tar_bytes([
        ("train/", b""), (f"./train/{W2}/{W2}_1.JPEG", img(1)), (f"train/{W1}/{W1}_4.jpg", img(2)),
        (f"train/{W1}/._{W1}_4.jpg", b"mac junk"),
    ]))
    recs = list(open_source(str(path)).records())
    assert [(r.source, r.wnid, r.data) for r in recs] == [
        (f"imagenet.tar/train/{W2}/{W2}_1.JPEG", W2, img(1)),
        (f"imagenet.tar/train/{W1}/{W1}_4.jpg", W1, img(2))]


def test_flat_tar_with_labels(tmp_path: Path) -> None:
    names = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in (2, 1, 3)]  # tar order is not sorted order
    path = write(tmp_path / "ILSVRC2012_img_val.tar", tar_bytes([(n, img(i)) for i, n in enumerate(names)]))
    with pytest.raises(SourceError, match="pass a labels file"):
        open_source(str(path))
    labels = write(tmp_path / "validation_labels.txt", f"{W1}\n{W2}\n{W3}\n".encode())
    src = open_source(str(path), labels=str(labels))
    assert src.count() == 3 and src.wnids() == {W1, W2, W3}
    got = {r.key: (r.wnid, r.data) for r in src.records()}
    assert got == {"ILSVRC2012_val_00000001": (W1, img(1)), "ILSVRC2012_val_00000002": (W2, img(0)),
                   "ILSVRC2012_val_00000003": (W3, img(2))}
    short = write(tmp_path / "short.txt", f"{W1}\n".encode())
    with pytest.raises(SourceError, match="has 1 labels but .* has 3 images"):
        open_source(str(path), labels=str(short))


def test_single_per_synset_tar_takes_its_name_as_wnid(tmp_path: Path) -> None:
    path = write(tmp_path / f"{W2}.tar", tar_bytes([(f"{W2}_3.JPEG", img(3)), (f"{W2}_1.JPEG", img(1))]))
    src = open_source(str(path))
    assert src.wnids() == {W2}
    assert [(r.source, r.wnid, r.data) for r in src.records()] == [
        (f"{W2}.tar/{W2}_3.JPEG", W2, img(3)), (f"{W2}.tar/{W2}_1.JPEG", W2, img(1))]


def test_folder_of_per_synset_tars(tmp_path: Path) -> None:
    """``ILSVRC2012_img_train.tar`` unpacked one level: 1,000 nXXXXXXXX.tar files in a folder."""
    root = tmp_path / "train_tars"
    for name, data in nested_members():
        write(root / name, data)
    write(root / f"{W3}.tar", b"not a tar" * 100)
    write(root / "checksums.md5", b"...")
    src = open_source(str(root))
    assert isinstance(src, SynsetTarFolderSource) and not src.random_access
    assert src.wnids() == {W1, W2, W3} and src.count() is None
    recs = list(src.records())
    assert [(type(r).__name__, r.wnid, r.key) for r in recs] == [
        ("SourceRecord", W1, f"{W1}_10026"), ("SourceRecord", W1, f"{W1}_2"), ("SourceRecord", W2, f"{W2}_7"),
        ("UnreadableRecord", W3, W3)]
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


# ----------------------------------------------------------------------------------------------------- lists
def test_csv_list_relative_paths_and_missing_file(tmp_path: Path) -> None:
    write(tmp_path / "data" / "a.JPEG", img(1))
    absolute = write(tmp_path / "elsewhere" / "b.jpg", img(2))
    text = f"a.JPEG,{W1}\n{absolute},{W2}\n\nsub/missing.JPEG,{W1}\n"
    lst = write(tmp_path / "data" / "list.csv", text.encode())
    src = open_source(str(lst))
    assert isinstance(src, ListSource) and src.random_access and src.count() == 3 and src.wnids() == {W1, W2}
    recs = list(src.records())
    assert [r.path for r in recs] == [str(tmp_path / "data" / "a.JPEG"), str(absolute),
                                      str(tmp_path / "data" / "sub" / "missing.JPEG")]
    assert [r.key for r in recs] == ["a", "b", "missing"]
    results = [verify_record(r, VerifyConfig()) for r in recs]
    assert isinstance(results[0], Verified) and results[0].image == img(1)
    assert isinstance(results[2], Rejected) and results[2].reason == "unreadable_file"


def test_csv_header_with_key_and_tsv(tmp_path: Path) -> None:
    write(tmp_path / "x.JPEG", img(1))
    lst = write(tmp_path / "l.csv", f"wnid,path,key\n{W1},x.JPEG,custom-key_1\n".encode())
    assert [(r.key, r.wnid) for r in open_source(str(lst)).records()] == [("custom-key_1", W1)]
    tsv = write(tmp_path / "l.tsv", f"x.JPEG\t{W2}\n".encode())
    assert [(r.key, r.wnid) for r in open_source(str(tsv)).records()] == [("x", W2)]


def test_jsonl_list(tmp_path: Path) -> None:
    write(tmp_path / "x.JPEG", img(1))
    rows = [{"path": "x.JPEG", "wnid": W1}, {"path": "x.JPEG", "wnid": W2, "key": "dup"}]
    lst = write(tmp_path / "l.jsonl", ("\n".join(json.dumps(r) for r in rows) + "\n\n").encode())
    recs = list(open_source(str(lst)).records())
    assert [(r.key, r.wnid, r.path) for r in recs] == [("x", W1, str(tmp_path / "x.JPEG")),
                                                       ("dup", W2, str(tmp_path / "x.JPEG"))]


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
    with pytest.raises(SourceError, match=pattern):
        open_source(str(lst))


# ------------------------------------------------------------------------------------------------ open_source
def test_open_source_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        open_source(str(tmp_path / "nope"))
    with pytest.raises(SourceError, match="only local paths"):
        open_source("s3://bucket/train")
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
    assert [r.wnid for s in srcs for r in s.records()] == [W1, W2, W1, W1, W1, W2]

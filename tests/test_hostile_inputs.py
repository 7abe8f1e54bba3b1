"""Fuzz-style tests of the sharder and the streamer over generated hostile inputs: broken and unusual
images, tars that lie, bombs. Every case is kept (valid) or rejected/skipped with a counted reason: no
crash, no hang, no file written outside the output, nothing unpickled."""
from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from support import hostile, procs
from torch.utils.data import DataLoader

from imagenet_stream.cli import main
from imagenet_stream.format import Manifest, decode_meta, iter_samples
from imagenet_stream.format.integrity import check_dataset
from imagenet_stream.sharding.coordinator import ShardOptions, shard
from imagenet_stream.storage import Store
from imagenet_stream.streaming import ImageNetStream

WNID = "n01440764"
OTHER = "n01443537"


@pytest.fixture(autouse=True)
def no_pickle_ever_runs():
    hostile.PICKLE_CANARY.unlink(missing_ok=True)
    yield
    assert not hostile.PICKLE_CANARY.exists(), "shard or source content was unpickled"


def files_under(root: Path, exclude: Path | None = None) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if exclude is None or exclude not in p.parents and p != exclude}


def expected(corpus: dict) -> tuple[set[str], dict[str, str]]:
    kept = {f"{WNID}_{name}" for name, (_, reason) in corpus.items() if reason is None}
    rejected = {f"{WNID}_{name}": reason for name, (_, reason) in corpus.items() if reason is not None}
    return kept, rejected


def stored_keys_and_meta(out: str) -> dict[str, dict]:
    store = Store(out)
    manifest = Manifest.load(store)
    found = {}
    for entry in manifest.shards:
        for key, members in iter_samples(store.read(entry.name), entry.name):
            found[key] = decode_meta(members["msgpack"])
    return found


def check_report(out: str, corpus: dict) -> dict:
    kept, rejected = expected(corpus)
    report = json.loads(Store(out).read("report.json"))
    assert report["seen"] == len(corpus) and report["kept"] == len(kept)
    by_reason: dict[str, set[str]] = {}
    for reason, entry in report["rejected"].items():
        by_reason[reason] = {e["key"] for e in entry["examples"]}
        assert entry["count"] == len(by_reason[reason])
    assert by_reason == {r: {k for k, v in rejected.items() if v == r} for r in set(rejected.values())}
    return report


@pytest.mark.parametrize("layout", ["folder", "tar_of_tars"])
def test_the_sharder_keeps_or_rejects_every_corpus_file_with_a_reason(tmp_path, layout) -> None:
    corpus = hostile.corpus()
    if layout == "folder":
        source = tmp_path / "train"
        (source / WNID).mkdir(parents=True)
        for name, (data, _) in corpus.items():
            (source / WNID / f"{WNID}_{name}.JPEG").write_bytes(data)
    else:
        inner = hostile.tar_bytes([(hostile.file_info(f"{WNID}_{n}.JPEG"), d) for n, (d, _) in corpus.items()])
        source = tmp_path / "train.tar"
        source.write_bytes(hostile.tar_bytes([(hostile.file_info(f"{WNID}.tar"), inner)]))
    before = files_under(tmp_path)
    out = tmp_path / "out"
    shard([str(source)], ShardOptions(out=str(out), workers=2, classes="in1k"))
    assert files_under(tmp_path, exclude=out) == before  # nothing written outside the output
    check_report(str(out), corpus)
    stored = stored_keys_and_meta(str(out))
    assert set(stored) == expected(corpus)[0]
    assert all(str(tmp_path) not in m["source"] and not m["source"].startswith("/") for m in stored.values())
    assert check_dataset(Store(str(out)), Manifest.load(Store(str(out)))) == []
    ds = ImageNetStream(str(out), size=32, batch_size=4, return_keys=True)
    got = [k for _, _, keys in DataLoader(ds, batch_size=4) for k in keys]
    assert sorted(got) == sorted(stored) and ds.stats()["corrupt_images"] == 0


def test_a_tar_whose_members_lie_is_read_safely(tmp_path) -> None:
    data, want = hostile.hostile_source_tar(WNID)
    (tmp_path / "src").mkdir()
    source = tmp_path / "src" / "lying.tar"
    source.write_bytes(data)
    before = files_under(tmp_path)
    out = tmp_path / "out"
    result = shard([str(source)], ShardOptions(out=str(out), workers=0, classes="in1k"))
    assert files_under(tmp_path, exclude=out) == before
    assert set(stored_keys_and_meta(str(out))) == {k for k, r in want.items() if r is None}
    assert result.report["rejected"]["undecodable"]["count"] == 1
    assert result.report["seen"] == len(want)  # links, the pickle and the outer non-image member are ignored


@pytest.mark.parametrize("case", ["random_bytes", "truncated_mid_member"])
def test_a_broken_source_tar_is_a_clear_error_or_a_counted_loss(tmp_path, capsys, case) -> None:
    corpus = hostile.corpus()
    inner = hostile.tar_bytes([(hostile.file_info(f"{WNID}_{n}.JPEG"), d) for n, (d, _) in corpus.items()])
    outer = hostile.tar_bytes([(hostile.file_info(f"{WNID}.tar"), inner),
                               (hostile.file_info(f"{OTHER}.tar"), inner.replace(WNID.encode(), OTHER.encode()))])
    path = tmp_path / "train.tar"
    if case == "random_bytes":
        path.write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 20_000, dtype=np.uint8)))
        assert main(["shard", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
        assert "cannot read" in capsys.readouterr().err
        return
    path.write_bytes(outer[: len(outer) // 2 + 3000])  # cut inside the second inner tar
    code = main(["shard", str(path), "--out", str(tmp_path / "out"), "--no-progress", "--classes", "in1k",
                 "--workers", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "the data of 'n01443537.tar' runs past the end" in err and "Traceback" not in err


def test_a_gzip_bomb_is_rejected_unread_with_bounded_memory(tmp_path) -> None:
    bomb = tmp_path / "bomb.tar.gz"
    hostile.write_gzip_bomb(bomb, WNID, member_bytes=400 << 20)
    assert bomb.stat().st_size < 2 << 20
    out = tmp_path / "out"
    proc, peak = procs.run_measured([sys.executable, "-m", "imagenet_stream.cli", "shard", str(bomb), "--out",
                                     str(out), "--no-progress", "--workers", "2", "--classes", "in1k"], timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["kept"] == 1 and report["rejected"]["too_large"]["count"] == 1
    assert "400" in report["rejected"]["too_large"]["examples"][0]["detail"] or "419" in \
        report["rejected"]["too_large"]["examples"][0]["detail"]
    assert peak.main_mb < 300 and peak.descendants_mb < 300, peak


# -- the streamer over hostile shards ------------------------------------------------------------------
def write_foreign(path: Path, samples: list[dict]) -> None:
    with wds.TarWriter(str(path)) as sink:
        for sample in samples:
            sink.write(sample)


def test_the_streamer_skips_and_counts_every_hostile_sample(tmp_path) -> None:
    corpus = hostile.corpus()
    good = corpus["plain"][0]
    folder = tmp_path / "shards"
    folder.mkdir()
    # shard 0: the image corpus, every sample with a valid class
    write_foreign(folder / "h-000000.tar", [{"__key__": f"c_{n}", "jpg": d, "cls": b"1"}
                                           for n, (d, _) in corpus.items()])
    # shard 1: members that lie
    lying = [
        (hostile.file_info("../../escape.jpg"), good), (hostile.file_info("../../escape.cls"), b"2"),
        (hostile.file_info("/abs/root.jpg"), good), (hostile.file_info("/abs/root.cls"), b"3"),
        (hostile.link_info("link.jpg", "/etc/passwd"), None), (hostile.file_info("link.cls"), b"1"),
        (hostile.file_info("nocls.jpg"), good),
        (hostile.file_info("word.jpg"), good), (hostile.file_info("word.cls"), b"seven"),
        (hostile.file_info("huge.jpg"), good), (hostile.file_info("huge.cls"), b"5000"),
        (hostile.file_info("meta.jpg"), good), (hostile.file_info("meta.cls"), b"4"),
        (hostile.file_info("meta.msgpack"), b"\xc1\xc1garbage"), (hostile.file_info("pkl.pyd"), hostile.pickle_bomb()),
        (hostile.file_info("pkl.jpg"), good), (hostile.file_info("pkl.cls"), b"6"),
        (hostile.file_info("pickle.pickle"), hostile.pickle_bomb()), (hostile.file_info("pickle.cls"), b"0"),
    ]
    (folder / "h-000001.tar").write_bytes(hostile.tar_bytes(lying))
    # shard 2: truncated in the middle of a member; shard 3: random bytes
    whole = hostile.tar_bytes([(hostile.file_info(f"t{i}.{ext}"), good if ext == "jpg" else b"1")
                               for i in range(4) for ext in ("jpg", "cls")])
    cut = len(whole) // 2 + 100
    (folder / "h-000002.tar").write_bytes(whole[:cut])
    with tarfile.open(fileobj=io.BytesIO(whole)) as tar:
        complete = {m.name.split(".")[0] for m in tar if m.name.endswith(".cls") and m.offset_data + 512 <= cut}
    (folder / "h-000003.tar").write_bytes(bytes(np.random.default_rng(2).integers(0, 256, 9000, dtype=np.uint8)))
    before = files_under(tmp_path)
    ds = ImageNetStream(f"{folder}/h-{{000000..000003}}.tar", size=32, batch_size=3, return_keys=True,
                        classes_in="in1k", transform="train")
    got = {}
    for loader_workers in (0, 2):
        got = {k: t for _, targets, keys in DataLoader(ds, batch_size=3, num_workers=loader_workers)
               for k, t in zip(keys, targets.tolist())}
    assert files_under(tmp_path) == before
    # too small for the sharder, but decodable: the streamer's job is to decode, not to curate
    kept_corpus = {f"c_{n}" for n, (_, reason) in corpus.items() if reason in (None, "too_small")}
    assert complete and set(got) == kept_corpus | {"../../escape", "/abs/root", "meta", "pkl"} | complete
    assert got["../../escape"] == 2 and got["meta"] == 4
    stats = ds.stats()
    corrupt = len(corpus) - len(kept_corpus)
    assert stats["corrupt_images"] == 2 * corrupt  # both passes
    assert stats["invalid_samples"] >= 4  # link (no file image), nocls, word, pickle (no image)
    assert stats["out_of_range_labels"] == 1  # huge

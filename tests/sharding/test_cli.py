"""The shard / inspect / demo commands, run in-process through ``imagenet_stream.cli.main``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imagenet_stream.cli import main
from imagenet_stream.format import MANIFEST_NAME, REPORT_NAME, Manifest, SideIndex
from imagenet_stream.format.integrity import check_dataset
from imagenet_stream.sharding.demo_tree import DEMO_CLASSES
from imagenet_stream.storage import Store
from imagenet_stream.synthetic import make_jpeg

WNIDS = ("n01440764", "n02084071", "n02085620")


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for c, wnid in enumerate(WNIDS):
        (src / wnid).mkdir(parents=True)
        for n in range(5):
            (src / wnid / f"{wnid}_{n}.JPEG").write_bytes(make_jpeg(48, 40, seed=c * 10 + n))
    out = tmp_path / "ds"
    assert main(["shard", str(src), "--out", str(out), "--shard-size", "4", "--workers", "0", "--no-progress",
                 "--name", "tiny", "--version", "2024.1", "--seed", "5"]) == 0
    return out


def test_shard_options_reach_the_manifest(dataset: Path) -> None:
    m = Manifest.from_json((dataset / MANIFEST_NAME).read_text())
    assert (m.name, m.version, m.extra["seed"], m.num_samples, len(m.shards)) == ("tiny", "2024.1", 5, 15, 4)
    assert m.tool.startswith("imagenet-stream ") and m.created.endswith("Z")
    assert json.loads((dataset / REPORT_NAME).read_text())["kept"] == 15


def test_inspect_summary(dataset: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["inspect", str(dataset)]) == 0
    out = capsys.readouterr().out
    assert "tiny version 2024.1" in out and "samples   15" in out
    assert "3 of 21841 in space in21k" in out
    assert "n02084071" in out and "dog" in out and "Chihuahua" in out  # top classes with WordNet names


def test_inspect_verify_passes(dataset: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["inspect", str(dataset), "--verify", "--no-progress"]) == 0
    assert "verify: OK" in capsys.readouterr().out


def test_inspect_verify_fails_on_a_flipped_byte(dataset: Path, capsys: pytest.CaptureFixture) -> None:
    shard = dataset / "train-000001.tar"
    data = bytearray(shard.read_bytes())
    side = SideIndex.from_bytes((dataset / "train-000001.idx").read_bytes())
    data[int(side.image_offsets[1]) + 100] ^= 0xFF  # inside the second image
    shard.write_bytes(bytes(data))
    assert main(["inspect", str(dataset), "--verify", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "verify: FAILED" in out
    assert "train-000001.tar: sha256 differs from the manifest" in out
    assert f"sample 1 ({side.keys[1]}): image sha256 differs from its metadata" in out
    problems = out.split("verify: FAILED", 1)[1]
    assert "train-000000.tar" not in problems and "problem(s)" in problems


def test_check_finds_offset_label_and_labels_bin_errors(dataset: Path) -> None:
    store = Store(str(dataset))
    manifest = Manifest.load(store)
    entry = manifest.shards[0]
    side = SideIndex.from_bytes(store.read(entry.index))
    bad = SideIndex(side.shard, side.keys[::-1], side.labels[::-1].copy(), side.offsets,
                    side.image_offsets + np.uint64(512), side.image_sizes)
    (dataset / entry.index).write_bytes(bad.to_bytes())
    labels = dataset / "labels.bin"
    raw = bytearray(labels.read_bytes())
    raw[-2] ^= 1
    labels.write_bytes(bytes(raw))
    problems = check_dataset(store, manifest)
    text = "\n".join(problems)
    assert f"{entry.index}: sha256 differs from the manifest" in text
    assert "side index has key" in text and "image at" in text
    assert "labels.bin: size or sha256 differs from the manifest" in text


def test_check_finds_a_missing_shard(dataset: Path) -> None:
    (dataset / "train-000002.tar").unlink()
    problems = check_dataset(Store(str(dataset)), Manifest.load(Store(str(dataset))))
    assert "train-000002.tar: missing" in problems


def test_inspect_without_a_manifest(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["inspect", str(tmp_path)]) == 2
    assert "index.json not found: not a dataset root, or an unfinished sharding run" in capsys.readouterr().err


def test_shard_refuses_to_overwrite(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["shard", str(tmp_path / "src"), "--out", str(dataset), "--workers", "0", "--no-progress"]
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["shard", str(tmp_path / "src"), "--out", str(dataset), "--workers", "0", "--no-progress",
                 "--overwrite", "--shard-size", "100", "--max-shard-bytes", "1M"]) == 0
    assert len(Manifest.load(Store(str(dataset))).shards) == 1


def test_bad_storage_options_are_not_echoed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    secret = '{"secret": "hunter2"'  # not valid JSON
    assert main(["shard", str(tmp_path), "--out", "memory://x", "--storage-options", secret]) == 2
    err = capsys.readouterr().err
    assert "not valid JSON" in err and "hunter2" not in err


def test_shard_reports_a_bad_source(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["shard", str(tmp_path / "nope"), "--out", str(tmp_path / "ds"), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_demo_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["demo", "--out", str(tmp_path), "--images-per-class", "1", "--no-progress"]
    assert main(args + ["--workers", "2"]) == 0
    out = capsys.readouterr().out
    tree = tmp_path / "tree"
    wnids = {p.name for p in tree.iterdir()}
    assert len(wnids) == len(DEMO_CLASSES) >= 20
    # nested classes: dog and domestic cat next to some of their breeds
    assert {"n02084071", "n02085620", "n02099601", "n02110958", "n02121808", "n02123045"} <= wnids
    assert (tree / "n02123045" / "n02123045_10004.JPEG").stat().st_size == 0
    assert (tree / "n02085620" / "n02085620_10002.JPEG").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((tmp_path / "shards" / REPORT_NAME).read_text())
    n = len(DEMO_CLASSES) + 5
    assert report["seen"] == n and report["kept"] == n - 3  # empty, truncated, duplicate
    assert {r: e["count"] for r, e in report["rejected"].items()} == {"empty_file": 1, "truncated": 1,
                                                                      "duplicate": 1}
    assert report["fixes"] == {"cmyk_to_rgb": 1, "png_to_jpeg": 1}
    assert "kept" in out and "quirk cmyk" in out
    # step 3 streamed the whole epoch through 2 DataLoader workers and showed WordNet lineages
    assert f"{n - 3} images in" in out
    assert "images (16, 3, 224, 224) torch.uint8" in out
    assert out.count(" < ...") == 4
    assert main(["inspect", str(tmp_path / "shards"), "--verify", "--no-progress"]) == 0
    # the demo is re-runnable over its own output
    assert main(args + ["--workers", "0"]) == 0


def test_unknown_output_protocol(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "src" / "n01440764").mkdir(parents=True)
    (tmp_path / "src" / "n01440764" / "a.JPEG").write_bytes(make_jpeg(20, 20))
    assert main(["shard", str(tmp_path / "src"), "--out", "nosuchproto://x", "--no-progress"]) == 2
    assert "cannot open nosuchproto://x: ValueError: Protocol not known" in capsys.readouterr().err
    assert main(["inspect", "nosuchproto://x"]) == 2

"""Near-duplicates and train <-> val leakage on planted copies, end to end: the sharder stores each
image's perceptual hash, ``dedup`` finds the planted pairs (recall >= 95 %, precision >= 99 % at the
default distance) without decoding an image, and ``exclude --from-dedup`` / ``--sha256`` publish
versions that two ranks stream with equal counts and none of the excluded samples."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from imagenet_stream.cli import main
from imagenet_stream.curation import dedup, exclude
from imagenet_stream.curation.duplicates import (
    LEAKAGE_REASON,
    NEAR_DUPLICATE_REASON,
    dedup_exclusions,
    read_report,
)
from imagenet_stream.errors import ConfigError, ManifestError
from imagenet_stream.format import Manifest
from imagenet_stream.sharding.coordinator import ShardOptions, shard
from imagenet_stream.storage import Store
from imagenet_stream.streaming import ImageNetStream
from imagenet_stream.synthetic import EDITS, encode, natural_array, near_copy

WNIDS = ("n01440764", "n01443537", "n01484850", "n01491361", "n01494475", "n01496331")
ORIGINALS = 180
LEAKS_PER_EDIT = 8
WITHIN = 10


def _jpeg(seed: int, rng: np.random.Generator) -> bytes:
    w, h = int(rng.integers(200, 420)), int(rng.integers(160, 320))
    return encode(Image.fromarray(natural_array(w, h, seed)), "JPEG", quality=90)


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict:
    """A train tree of originals plus within-train copies, a val tree of copies of train images (each
    edit of synthetic.EDITS) plus unrelated images; both sharded. Returns the URLs and the planted pairs."""
    root = tmp_path_factory.mktemp("planted")
    rng = np.random.default_rng(0)
    originals = {}
    for i in range(ORIGINALS):
        wnid = WNIDS[i % len(WNIDS)]
        originals[f"{wnid}_{i}"] = (wnid, _jpeg(i, rng))
    train, val = root / "train", root / "val"
    for key, (wnid, data) in originals.items():
        (train / wnid).mkdir(parents=True, exist_ok=True)
        (train / wnid / f"{key}.JPEG").write_bytes(data)
    names = list(originals)
    within = []
    for j in range(WITHIN):  # a near copy inside train, under another name
        key = names[j]
        wnid, data = originals[key]
        copy = f"{wnid}_copy{j}"
        (train / wnid / f"{copy}.JPEG").write_bytes(near_copy(data, EDITS[j % len(EDITS)], seed=j))
        within.append(tuple(sorted((key, copy))))
    leaks = []
    for e, edit in enumerate(EDITS):
        for j in range(LEAKS_PER_EDIT):
            key = names[WITHIN + e * LEAKS_PER_EDIT + j]
            wnid, data = originals[key]
            val_key = f"val_{edit}_{j}"
            (val / wnid).mkdir(parents=True, exist_ok=True)
            (val / wnid / f"{val_key}.JPEG").write_bytes(near_copy(data, edit, seed=100 + j))
            leaks.append((key, val_key, edit))
    for j in range(40):  # unrelated val images
        wnid = WNIDS[j % len(WNIDS)]
        (val / wnid).mkdir(parents=True, exist_ok=True)
        (val / wnid / f"val_new_{j}.JPEG").write_bytes(_jpeg(10_000 + j, rng))
    out = root / "shards"
    shard([str(train)], ShardOptions(out=str(out / "train"), shard_size=50, classes="in1k"))
    shard([str(val)], ShardOptions(out=str(out / "val"), shard_size=50, classes="in1k", prefix="val"))
    return {"train": str(out / "train"), "val": str(out / "val"), "within": within, "leaks": leaks,
            "root": root}


def test_planted_near_duplicates_and_leakage_are_found(planted) -> None:
    report = planted["root"] / "report"
    summary = dedup(planted["train"], str(report), against=[planted["val"]])
    _, rows = read_report(str(report))
    leaks = {(r["key_a"], r["key_b"]) for r in rows if r["kind"] == "leakage"}
    planted_leaks = {(a, b) for a, b, _ in planted["leaks"]}
    found = leaks & planted_leaks
    assert len(found) / len(planted_leaks) >= 0.95, sorted(planted_leaks - leaks)
    assert len(found) / max(1, len(leaks)) >= 0.99, sorted(leaks - planted_leaks)
    within = {tuple(sorted((r["key_a"], r["key_b"]))) for r in rows if r["kind"] == "within"}
    assert len(within & set(planted["within"])) / len(planted["within"]) >= 0.95
    assert within <= set(planted["within"])  # no false pair among 190 train images
    for row in rows:  # both sha256 and the distance are reported
        assert len(row["sha256_a"]) == len(row["sha256_b"]) == 64 and 0 <= int(row["distance"]) <= 10
    assert summary["dataset"]["samples"] == ORIGINALS + WITHIN
    assert summary["leaking_samples"] == {planted["val"]: len({a for a, _ in leaks})}
    assert summary["groups"]["count"] == len(within)
    assert json.loads((report / "summary.json").read_text())["max_distance"] == 10


def test_exclude_from_dedup_and_by_sha256_stream_under_two_ranks(planted, tmp_path, capsys, monkeypatch) -> None:
    report = tmp_path / "report"
    assert main(["dedup", planted["train"], "--against", planted["val"], "--out", str(report), "--no-progress"]) == 0
    assert "leakage" in capsys.readouterr().out
    summary, rows = read_report(str(report))
    chosen = dedup_exclusions(summary, rows)
    within = [r for r in rows if r["kind"] == "within"]
    v2 = tmp_path / "v2"
    assert main(["exclude", planted["train"], "--out", str(v2), "--from-dedup", str(report), "--no-progress"]) == 0
    manifest = Manifest.load(Store(str(v2)))
    reasons = manifest.exclusions.reasons
    assert reasons[LEAKAGE_REASON] == chosen[LEAKAGE_REASON].size and reasons[NEAR_DUPLICATE_REASON] == len(within)
    gone = {r["key_a"] for r in rows if r["kind"] == "leakage"} | {max(r["key_a"], r["key_b"]) for r in within}

    # by sha256: the kept member of a group (its stored image's digest), and a digest of no sample
    first = within[0]
    kept_key, kept_sha = min((first["key_a"], first["sha256_a"]), (first["key_b"], first["sha256_b"]))
    listed = tmp_path / "sha.txt"
    listed.write_text(f"sha256:{kept_sha}\ttakedown\n{'0' * 64}\n")
    v3 = tmp_path / "v3"
    assert main(["exclude", str(v2), "--out", str(v3), "--sha256", str(listed), "--no-progress"]) == 0
    assert "excluded 1 takedown" in capsys.readouterr().out
    gone.add(kept_key)

    monkeypatch.setenv("WORLD_SIZE", "2")
    per_rank = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        ds = ImageNetStream(str(v3), size=16, batch_size=4, return_keys=True, transform="eval", seed=1)
        per_rank.append([k for _, _, keys in DataLoader(ds, batch_size=4, num_workers=rank) for k in keys])
    available = Manifest.load(Store(str(v3))).num_available
    assert len(per_rank[0]) == len(per_rank[1]) == available // 2
    streamed = per_rank[0] + per_rank[1]
    assert not gone & set(streamed) and len(set(streamed)) == len(streamed)


def test_a_report_of_another_dataset_is_refused_and_old_side_indexes_are_named(planted, tmp_path, dsutil) -> None:
    report = tmp_path / "r"
    dedup(planted["val"], str(report))
    with pytest.raises(ConfigError, match="another dataset"):
        exclude(planted["train"], str(tmp_path / "x"), from_dedup=str(report))
    old = dsutil.build_dataset(str(tmp_path / "old"), 20, 10)  # written without perceptual hashes
    with pytest.raises(ManifestError, match="no perceptual hashes"):
        dedup(old.url, str(tmp_path / "r2"))
    with open(report / "pairs.csv", newline="") as f:
        assert next(csv.reader(f))[0] == "kind"

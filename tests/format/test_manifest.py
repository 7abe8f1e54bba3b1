"""index.json: JSON round trip, validation, and its size at ImageNet-21k scale."""
from __future__ import annotations

import hashlib
import json

import pytest

from imagenet_stream.errors import ManifestError
from imagenet_stream.format import (
    EXCLUSIONS_NAME,
    ClassesInfo,
    ExclusionsEntry,
    LabelsEntry,
    Manifest,
    ShardEntry,
    index_name,
    shard_name,
    wnids_sha256,
)
from imagenet_stream.hierarchy import standard_space

WNIDS = ("n01440764", "n01443537", "n02084071")


def entry(i: int, n: int) -> ShardEntry:
    name = shard_name("train", i)
    digest = hashlib.sha256(name.encode()).hexdigest()
    return ShardEntry(name, n, 1000 + i, digest, index_name(name), 77, "cd" * 32)


def manifest(**kw) -> Manifest:
    args = dict(name="imagenet", version="1", created="2024-01-01T00:00:00Z", tool="imagenet-stream 0.1.0",
                classes=ClassesInfo("custom:x", WNIDS), num_samples=5, class_counts=(2, 0, 3),
                shards=(entry(0, 3), entry(1, 2)), labels=LabelsEntry("labels.bin", "<u2", 10, "ef" * 32),
                extra={"seed": 3})
    return Manifest(**(args | kw))


def test_json_round_trip() -> None:
    m = manifest()
    text = m.to_json()
    doc = json.loads(text)
    assert list(doc)[:5] == ["format_version", "name", "version", "created", "tool"]
    assert doc["classes"] == {"space": "custom:x", "num_classes": 3, "sha256": wnids_sha256(WNIDS),
                              "wnids": list(WNIDS)}
    back = Manifest.from_json(text)
    assert back == m
    assert back.sample_counts == [3, 2] and back.total_bytes == 2001


@pytest.mark.parametrize("kw, match", [
    (dict(class_counts=(2, 3)), "class_counts has 2"),
    (dict(num_samples=6, class_counts=(3, 0, 3)), "shards hold 5"),
    (dict(class_counts=(2, 0, 2)), "sum to 4"),
    (dict(shards=(entry(0, 3), entry(0, 2))), "duplicate shard"),
    (dict(format_version=3), "not supported"),
])
def test_validation(kw: dict, match: str) -> None:
    with pytest.raises(ManifestError, match=match):
        manifest(**kw)


def test_classes_checksum_is_checked() -> None:
    with pytest.raises(ManifestError, match="does not match"):
        ClassesInfo("custom:x", WNIDS, sha256="00" * 32)


@pytest.mark.parametrize("mutate, match", [
    (lambda d: "not json{", "not valid JSON"),
    (lambda d: "[1]", "expected a JSON object"),
    (lambda d: json.dumps({**d, "format_version": 7}), "not supported"),
    (lambda d: json.dumps({k: v for k, v in d.items() if k != "shards"}), "malformed"),
    (lambda d: json.dumps({**d, "classes": {**d["classes"], "num_classes": 9}}), "num_classes disagrees"),
    (lambda d: json.dumps({**d, "classes": {**d["classes"], "wnids": ["n01440764"]}}), "does not match"),
])
def test_bad_json(mutate, match: str) -> None:
    doc = json.loads(manifest().to_json())
    with pytest.raises(ManifestError, match=match):
        Manifest.from_json(mutate(doc), where="x/index.json")


def test_size_at_imagenet21k_scale() -> None:
    """14.2M images in ~14.2k shards over 21,841 classes: every worker reads this, it must stay small."""
    space = standard_space("in21k")
    shards = tuple(entry(i, 1000) for i in range(14_200))
    counts = [650] * len(space)
    counts[0] += 14_200_000 - sum(counts)
    m = Manifest(name="imagenet21k", version="1", created="2024-01-01T00:00:00Z", tool="t",
                 classes=ClassesInfo("in21k", space.wnids), num_samples=14_200_000,
                 class_counts=tuple(counts),
                 shards=shards)
    assert len(m.to_json()) < 5_000_000


@pytest.mark.parametrize("field,value", [
    ("name", "../../../etc/hostname"), ("name", "/etc/passwd"), ("name", "s3://other-bucket/x-000000.tar"),
    ("name", "train-000000.tar/../../x"), ("name", "train-0.tar"), ("index", "../train-000000.idx"),
    ("index", "train-000001.idx"), ("bytes", -1), ("sha256", "../x"), ("num_samples", True),
])
def test_manifest_names_that_could_escape_the_root_are_refused(field: str, value) -> None:
    doc = json.loads(manifest().to_json())
    doc["shards"][0][field] = value
    with pytest.raises(ManifestError):
        Manifest.from_json(json.dumps(doc))


@pytest.mark.parametrize("value", ["../labels.bin", "/tmp/labels.bin", "other.bin"])
def test_a_labels_name_other_than_labels_bin_is_refused(value: str) -> None:
    doc = json.loads(manifest().to_json())
    doc["labels"]["name"] = value
    with pytest.raises(ManifestError, match="labels"):
        Manifest.from_json(json.dumps(doc))


def test_a_traversal_manifest_is_refused_by_the_streamer(tmp_path) -> None:
    from imagenet_stream.storage import Store
    from imagenet_stream.streaming.roots import manifest_source

    doc = json.loads(manifest().to_json())
    doc["shards"][0]["name"], doc["shards"][0]["index"] = "../../../etc/hostname", "../../../etc/hostname"
    (tmp_path / "index.json").write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match="not a shard name"):
        manifest_source(Store(str(tmp_path)))


def exclusions(count: int, reasons: dict | None = None) -> ExclusionsEntry:
    return ExclusionsEntry(EXCLUSIONS_NAME, "<u4", count, 4 * count, "ab" * 32, reasons or {"duplicate": count})


def test_an_exclusion_overlay_round_trips_and_lowers_the_available_count() -> None:
    m = manifest(class_counts=(1, 0, 3), exclusions=exclusions(1))
    back = Manifest.from_json(m.to_json())
    assert back == m and back.num_available == 4 and back.format_version == 2
    assert json.loads(m.to_json())["exclusions"]["reasons"] == {"duplicate": 1}


@pytest.mark.parametrize("make, match", [
    (lambda: manifest(exclusions=exclusions(1)), "sum to 5"),          # counts not lowered
    (lambda: manifest(class_counts=(1, 0, 3), exclusions=exclusions(1, {"x": 2})), "add up"),
    (lambda: manifest(class_counts=(1, 0, 3), exclusions=exclusions(1), format_version=1), "format_version 2"),
    (lambda: ExclusionsEntry("../x.bin", "<u4", 1, 4, "ab" * 32, {"duplicate": 1}), "name must be"),
])
def test_exclusion_overlay_validation(make, match) -> None:
    with pytest.raises(ManifestError, match=match):
        make()


def test_format_1_manifests_still_load() -> None:
    doc = json.loads(manifest().to_json())
    doc["format_version"] = 1
    assert Manifest.from_json(json.dumps(doc)).format_version == 1

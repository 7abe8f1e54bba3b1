"""``imagenet-stream exclude``: new versions over the same shards (none touched), their lineage, and
streaming them under 2 ranks with equal counts and no excluded sample."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from torch.utils.data import DataLoader

from imagenet_stream.cli import main
from imagenet_stream.curation import exclude, read_key_list
from imagenet_stream.errors import ConfigError
from imagenet_stream.format import Manifest
from imagenet_stream.format.integrity import check_dataset
from imagenet_stream.storage import Store
from imagenet_stream.streaming import ImageNetStream


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def keys_of(url: str, num_workers: int = 0, **kw) -> list[tuple[str, int]]:
    ds = ImageNetStream(url, size=16, batch_size=5, return_keys=True, transform="eval", **kw)
    got = [(k, t) for _, targets, keys in DataLoader(ds, batch_size=5, num_workers=num_workers)
           for k, t in zip(keys, targets.tolist())]
    assert len(got) == len(ds)
    return got


@pytest.fixture()
def parent(tmp_path, dsutil):
    return dsutil.build_dataset(str(tmp_path / "v1"), 120, 12)


def test_a_subtree_and_a_key_list_make_a_new_version_over_the_same_shards(parent, tmp_path, dsutil, capsys,
                                                                         monkeypatch) -> None:
    before = digests(Path(parent.url))
    not_dogs = [k for k in parent.all_keys if parent.wnid(k) not in dsutil.DOGS]
    listed = tmp_path / "optout.txt"
    listed.write_text(f"# takedown requests\n{not_dogs[0]}\n{not_dogs[1]}\ttakedown\n{not_dogs[2]}\nnot-a-key\n")
    out = tmp_path / "v2"
    assert main(["exclude", parent.url, "--out", str(out), "--synsets", "n02084071", "--keys", str(listed),
                 "--note", "winter-style release", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    dogs = [k for k in parent.all_keys if parent.wnid(k) in dsutil.DOGS]
    assert f"excluded {len(dogs)} synset_removed, 2 opt_out, 1 takedown" in printed
    assert "1 listed key(s) are not samples" in printed
    assert digests(Path(parent.url)) == before  # the parent is untouched
    assert sorted(p.name for p in out.iterdir()) == ["exclusions.bin", "index.json", "labels.bin"]  # no shard copied

    child = Manifest.load(Store(str(out)))
    assert child.shards_at == parent.url and child.indexes_at == parent.url and child.version == "1.1"
    assert child.num_available == 120 - len(dogs) - 3
    assert sum(child.class_counts) == child.num_available
    step = child.extra["lineage"][0]
    assert step["parent_sha256"] == hashlib.sha256((Path(parent.url) / "index.json").read_bytes()).hexdigest()
    assert step["excluded"] == {"synset_removed": len(dogs), "opt_out": 2, "takedown": 1}
    assert check_dataset(Store(str(out)), child) == []  # verifies through shards_at

    gone = set(dogs) | set(not_dogs[:3])
    monkeypatch.setenv("WORLD_SIZE", "2")
    per_rank = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        per_rank.append(keys_of(str(out), num_workers=2 if rank else 0, seed=3))
    assert len(per_rank[0]) == len(per_rank[1]) == child.num_available // 2
    streamed = [k for r in per_rank for k, _ in r]
    assert not gone & set(streamed) and len(set(streamed)) == len(streamed)
    assert len(streamed) >= child.num_available - 1  # drop: fewer than 2 left out
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("RANK")
    assert sorted(k for k, _ in keys_of(parent.url)) == sorted(parent.all_keys)  # the parent streams as before

    assert main(["inspect", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "lineage   1. from test version 1" in shown and "synsets n02084071" in shown
    assert f"shards at {parent.url}" in shown


def test_versions_stack_and_keep_the_original_shards(parent, tmp_path) -> None:
    v2 = exclude(parent.url, str(tmp_path / "v2"), keys={parent.all_keys[0]: "opt_out"})
    v3 = exclude(str(tmp_path / "v2"), str(tmp_path / "v3"), keys={parent.all_keys[0]: "opt_out",
                                                                    parent.all_keys[5]: "takedown"}, version="3")
    assert v2.added == {"opt_out": 1} and v3.added == {"takedown": 1}  # an excluded sample stays the parent's
    m = v3.manifest
    assert m.shards_at == parent.url and m.exclusions.reasons == {"opt_out": 1, "takedown": 1}
    assert [s["parent_version"] for s in m.extra["lineage"]] == ["1", "1.1"]
    assert sorted(k for k, _ in keys_of(str(tmp_path / "v3"))) == sorted(parent.all_keys[1:5] + parent.all_keys[6:])


def test_bad_requests_are_refused_with_reasons(parent, tmp_path) -> None:
    with pytest.raises(ConfigError, match="nothing to exclude"):
        exclude(parent.url, str(tmp_path / "x"))
    with pytest.raises(ConfigError, match="another folder"):
        exclude(parent.url, parent.url, keys={"s00001": "opt_out"})
    with pytest.raises(ConfigError, match="n04517823"):  # vacuum: no class of the dataset under it
        exclude(parent.url, str(tmp_path / "x"), synsets=["n04517823"])
    exclude(parent.url, str(tmp_path / "y"), keys={"s00001": "opt_out"})
    with pytest.raises(ConfigError, match="exists"):
        exclude(parent.url, str(tmp_path / "y"), keys={"s00002": "opt_out"})
    with pytest.raises(ConfigError, match="line 2"):
        read_key_list("ok\nbad key\n")
    assert json.loads((tmp_path / "y" / "index.json").read_text())["exclusions"]["count"] == 1

"""Train / val splits as versions: the plan's properties over many shapes and seeds, and a
long-tailed dataset split, streamed under 2 ranks in its own class space."""
from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from imagenet_stream.cli import main
from imagenet_stream.curation.split import plan_split, target_space
from imagenet_stream.format import Manifest
from imagenet_stream.hierarchy import Hierarchy, standard_space
from imagenet_stream.storage import Store
from imagenet_stream.streaming import ImageNetStream


def _dataset(draw_counts: list[int], seed: int, shard_size: int):
    """Labels, keys (``c<class>_<n>``) and a shuffled sample order cut into shards."""
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.full(n, c, dtype=np.int64) for c, n in enumerate(draw_counts)])
    keys = np.array([f"c{c}_{i}" for c, n in enumerate(draw_counts) for i in range(n)])
    order = rng.permutation(labels.size)
    labels, keys = labels[order], keys[order]
    starts = np.arange(0, labels.size + shard_size, shard_size)
    starts[-1] = labels.size
    starts = np.unique(starts)
    return labels, keys, starts


@settings(max_examples=80, deadline=None)
@given(counts=st.lists(st.integers(0, 40), min_size=1, max_size=12), k=st.integers(1, 8), n=st.integers(0, 30),
       select=st.sampled_from(["first", "random"]), seed=st.integers(0, 10), shard=st.integers(1, 17),
       drop=st.integers(0, 5))
def test_plan_split_properties(counts, k, n, select, seed, shard, drop) -> None:
    labels, keys, starts = _dataset(counts, seed, shard)
    available = np.ones(labels.size, dtype=bool)
    available[::7] = drop == 0  # some samples excluded by the parent already
    plan = plan_split(labels, available, lambda s: list(keys[starts[s]:starts[s + 1]]), starts,
                      holdout_per_class=k, min_class_images=n, select=select, seed=seed,
                      num_classes=len(counts))
    per_class = np.bincount(labels[available], minlength=len(counts))
    kept = np.flatnonzero(per_class >= max(n, k + 1))
    assert plan.kept_classes.tolist() == kept.tolist()  # classes below N (or K + 1) are gone
    val, train = set(plan.val_ids.tolist()), set(plan.train_ids.tolist())
    assert not val & train  # disjoint
    union = {i for i in np.flatnonzero(available).tolist() if labels[i] in set(kept.tolist())}
    assert val | train == union  # their union is the kept classes' available samples
    assert np.bincount(labels[plan.val_ids], minlength=len(counts))[kept].tolist() == [k] * len(kept)
    if select == "first":  # the K smallest keys of each class
        for c in kept.tolist():
            mine = sorted(keys[i] for i in union if labels[i] == c)
            assert sorted(keys[i] for i in val if labels[i] == c) == mine[:k]
    # stable under resharding: the same images in another order and other shards give the same val keys
    again_labels, again_keys, again_starts = _dataset(counts, seed + 1000, shard + 3)
    again_available = np.isin(again_keys, keys[available])
    again = plan_split(again_labels, again_available, lambda s: list(again_keys[again_starts[s]:again_starts[s + 1]]),
                       again_starts, holdout_per_class=k, min_class_images=n, select=select, seed=seed,
                       num_classes=len(counts))
    assert sorted(again_keys[again.val_ids]) == sorted(keys[plan.val_ids])


def test_target_space_names_a_matching_space() -> None:
    assert target_space(tuple(reversed(standard_space("imagenet-a").wnids))).space == "imagenet-a"
    custom = target_space(("n01443537", "n01440764"))
    assert custom.space == "custom:split" and custom.wnids == ("n01440764", "n01443537")


def test_a_long_tailed_dataset_splits_into_versions_streamed_in_their_space(tmp_path, dsutil, capsys,
                                                                             monkeypatch) -> None:
    wnids = standard_space("in1k").wnids[:8]
    sizes = [40, 30, 21, 20, 12, 6, 3, 0]  # some above N, one exactly N, some below, one below K + 1
    order = [c for c, n in enumerate(sizes) for _ in range(n)]
    built = dsutil.build_dataset(str(tmp_path / "v1"), len(order), 9, wnids=wnids,
                                 label_of=lambda i: order[(i * 37) % len(order)])
    assert main(["split", built.url, "--dry-run", "--holdout-per-class", "5", "--min-class-images", "12",
                 "--no-progress"]) == 0
    assert "would split" in capsys.readouterr().out and not (tmp_path / "train").exists()
    assert main(["split", built.url, "--out-train", str(tmp_path / "train"), "--out-val", str(tmp_path / "val"),
                 "--holdout-per-class", "5", "--min-class-images", "12", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "5 classes kept" in printed and "2 dropped (9 samples)" in printed
    train, val = (Manifest.load(Store(str(tmp_path / p))) for p in ("train", "val"))
    kept = [w for w, n in zip(wnids, sizes) if n >= 12]
    counts = {w: sum(1 for c in order if wnids[c] == w) for w in kept}
    assert train.targets.wnids == val.targets.wnids == tuple(sorted(kept))
    assert val.num_available == 5 * len(kept) and train.num_available == sum(counts.values()) - 5 * len(kept)
    assert [s["part"] for s in (train.extra["lineage"][-1], val.extra["lineage"][-1])] == ["train", "val"]
    assert sorted(p.name for p in (tmp_path / "val").iterdir()) == ["exclusions.bin", "index.json", "labels.bin"]
    assert json.loads((tmp_path / "val" / "index.json").read_text())["exclusions"]["dtype"] in ("bits", "<u4")

    monkeypatch.setenv("WORLD_SIZE", "2")
    seen = {}
    for part, manifest in (("train", train), ("val", val)):
        per_rank = []
        for rank in range(2):
            monkeypatch.setenv("RANK", str(rank))
            ds = ImageNetStream(str(tmp_path / part), size=16, batch_size=3, return_keys=True, transform="eval")
            assert ds.classes == sorted(kept) and ds.num_classes == len(kept)
            per_rank.append([(k, int(t)) for _, targets, keys in DataLoader(ds, batch_size=3, num_workers=rank)
                             for k, t in zip(keys, targets)])
        assert len(per_rank[0]) == len(per_rank[1])  # equal counts per rank
        got = per_rank[0] + per_rank[1]
        for key, target in got:  # targets in the version's own space, mapped by wnid
            assert ds.classes[target] == wnids[built.labels[key]]
        seen[part] = {k for k, _ in got}
        assert len(got) >= manifest.num_available - 1
    assert not seen["train"] & seen["val"]
    assert Hierarchy.for_space(ds.classes).classes == tuple(sorted(kept))
    assert main(["inspect", str(tmp_path / "val")]) == 0
    shown = capsys.readouterr().out
    assert "excluded class_too_small 9, in_train" in shown and f"samples   {val.num_available} " in shown
    assert "targets   5 classes in space custom:split" in shown

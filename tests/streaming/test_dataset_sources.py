"""Corrupt and truncated shards, class subsets (list, subtree, in1k) and brace-URL datasets."""
from __future__ import annotations

import logging

import pytest
from torch.utils.data import DataLoader

from imagenet_stream.errors import ConfigError
from imagenet_stream.format import SideIndex
from imagenet_stream.storage import Store
from imagenet_stream.streaming import ImageNetStream


def keys_of(ds: ImageNetStream, num_workers: int = 0) -> list[tuple[str, int]]:
    loader = DataLoader(ds, batch_size=ds.batch_size, num_workers=num_workers)
    return [(k, t) for _, targets, keys in loader for k, t in zip(keys, targets.tolist())]


def stream(url: str, **kw) -> ImageNetStream:
    return ImageNetStream(url, **{"size": 32, "batch_size": 4, "return_keys": True, **kw})


def test_corrupt_images_and_a_truncated_shard_are_replaced_counted_and_logged_once(tmp_path, dsutil, caplog) -> None:
    built = dsutil.build_dataset(str(tmp_path / "ds"), 40, 10, corrupt=[3, 25])
    index = SideIndex.from_bytes(Store(built.url).read("train-000002.idx"))
    dsutil.truncate_object(built.url, "train-000002.tar", int(index.offsets[7]) + 10)  # loses s00027..29
    ds = stream(built.url)
    with caplog.at_level(logging.WARNING, logger="imagenet_stream"):
        got = keys_of(ds, num_workers=2)
        again = keys_of(ds, num_workers=0)
    lost = {"s00003", "s00025", "s00027", "s00028", "s00029"}
    assert len(got) == len(again) == len(ds) == 40  # every planned slot is filled
    assert {k for k, _ in got} == set(built.all_keys) - lost  # each usable sample, plus 5 substitutes
    assert got == again  # the substitutes are deterministic
    assert all(t == built.labels[k] for k, t in got)
    stats = ds.stats()  # both passes: the workers' counters and the main process's
    assert stats["corrupt_images"] == 4 and stats["truncated_samples"] == 6
    assert stats["substituted_samples"] == 10
    assert 2 <= stats["truncated_shards"] <= 3  # once per process that read it (main + 1 or 2 workers)
    assert stats["samples_yielded"] == 2 * 40
    main_process_logs = [r.getMessage() for r in caplog.records]
    assert sum("s00003" in m and "train-000000.tar" in m for m in main_process_logs) == 1
    assert sum("train-000002.tar is truncated" in m for m in main_process_logs) == 1


def test_class_list_subset_remaps_targets_and_skips_unrelated_shards(tmp_path, dsutil) -> None:
    wnids = dsutil.WNIDS
    # shards 0-1 hold only fish, shards 2-5 dogs and cats mixed
    fish = [wnids.index(w) for w in dsutil.FISH]
    others = [i for i in range(len(wnids)) if i not in fish]
    built = dsutil.build_dataset(str(tmp_path / "ds"), 60, 10,
                                 label_of=lambda i: fish[i % 2] if i < 20 else others[i % len(others)])
    chosen = [dsutil.CATS[1], dsutil.DOGS[0]]
    ds = stream(built.url, classes=chosen, merge_gap=0)
    assert ds.classes == chosen and ds.num_classes == 2
    got = keys_of(ds)
    expected = {k for k in built.all_keys if built.wnid(k) in chosen}
    assert {k for k, _ in got} == expected and len(got) == len(expected) == len(ds)
    assert all(chosen[t] == built.wnid(k) for k, t in got)
    stats = ds.stats()
    assert stats["shards_read"] == 4  # the fish-only shards are never opened
    selected_bytes = sum(len(built.images[k]) for k in expected)
    assert stats["bytes_read"] < 0.6 * sum(s.bytes for s in built.manifest.shards[2:])
    assert stats["bytes_read"] > selected_bytes


def test_subtree_root_selects_every_class_under_it(small_ds, dsutil) -> None:
    dogs = stream(small_ds.url, classes="n02084071")  # dog: two parents in WordNet
    assert dogs.classes == sorted(dsutil.DOGS)
    got = keys_of(dogs, num_workers=2)
    assert {k for k, _ in got} == {k for k in small_ds.all_keys if small_ds.wnid(k) in dsutil.DOGS}
    assert all(dogs.classes[t] == small_ds.wnid(k) for k, t in got)
    cats = stream(small_ds.url, classes="n02121808")
    assert cats.classes == sorted(dsutil.CATS)


def test_hierarchy_objects_select_classes_and_come_back(small_ds, dsutil) -> None:
    """The hierarchy's class-space objects select subsets, and ds.hierarchy matches ds.classes."""
    from imagenet_stream.hierarchy import Hierarchy

    full = stream(small_ds.url)
    dogs = full.hierarchy.restrict_subtree("n02084071")
    ds = stream(small_ds.url, classes=dogs)
    assert ds.classes == list(dogs.classes) == sorted(dsutil.DOGS)
    got = keys_of(ds)
    assert got and all(dogs.classes[t] == small_ds.wnid(k) for k, t in got)
    h = ds.hierarchy
    assert isinstance(h, Hierarchy) and h.classes == tuple(ds.classes)
    assert all(h.is_a(w, "n02084071") for w in h.classes)
    assert stream(small_ds.url, classes=dogs.space).classes == ds.classes


def test_in1k_keeps_the_standard_ilsvrc_indices(small_ds) -> None:
    from imagenet_stream.hierarchy import standard_space

    in1k = standard_space("in1k")
    ds = stream(small_ds.url, classes="in1k")
    assert ds.classes == list(in1k.wnids) and ds.num_classes == 1000
    got = keys_of(ds)
    assert len(got) == 60
    assert all(in1k.index(small_ds.wnid(k)) == t for k, t in got)


def test_bad_class_selections_name_the_problem(small_ds) -> None:
    with pytest.raises(ConfigError, match="n09999999"):
        stream(small_ds.url, classes=["n02085620", "n09999999"])
    with pytest.raises(ConfigError, match="duplicate"):
        stream(small_ds.url, classes=["n02085620", "n02085620"])
    with pytest.raises(ConfigError, match="n04517823"):  # vacuum: a WordNet node with no class under it here
        stream(small_ds.url, classes="n04517823")


def test_brace_urls_without_manifest_discover_counts(tmp_path, small_ds, dsutil) -> None:
    folder = tmp_path / "bare"
    folder.mkdir()
    store = Store(small_ds.url)
    for i in range(6):  # shards 0-2 keep their .idx, 3-5 are bare tars
        (folder / f"train-{i:06d}.tar").write_bytes(store.read(f"train-{i:06d}.tar"))
        if i < 3:
            (folder / f"train-{i:06d}.idx").write_bytes(store.read(f"train-{i:06d}.idx"))
    ds = stream(f"file://{folder}/train-{{000000..000005}}.tar", seed=7)
    assert len(ds) == 60 and ds.classes is None and ds.num_classes == 7
    got = keys_of(ds, num_workers=2)
    assert sorted(got) == sorted((k, small_ds.labels[k]) for k in small_ds.all_keys)
    reference = stream(small_ds.url, seed=7)
    assert [k for k, _ in got] == [k for k, _ in keys_of(reference, num_workers=2)]
    with pytest.raises(ConfigError, match="classes_in"):
        stream(f"file://{folder}/train-{{000000..000001}}.tar", classes=["n02085620"])


def test_local_datasets_bypass_the_cache(small_ds, tmp_path) -> None:
    ds = stream(small_ds.url, cache_dir=str(tmp_path / "cache"))
    assert len(keys_of(ds)) == 60
    assert ds.stats()["cache_misses"] == 0
    assert not [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]


def test_class_subset_without_labels_bin_reads_the_side_indexes(tmp_path, dsutil) -> None:
    built = dsutil.build_dataset(str(tmp_path / "ds"), 30, 10, labels_bin=False)
    assert built.manifest.labels is None
    ds = stream(built.url, classes=list(dsutil.CATS))
    got = keys_of(ds)
    assert {k for k, _ in got} == {k for k in built.all_keys if built.wnid(k) in dsutil.CATS}
    assert all(dsutil.CATS[t] == built.wnid(k) for k, t in got)

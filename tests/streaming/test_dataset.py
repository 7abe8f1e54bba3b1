"""ImageNetStream through torch's DataLoader: exact-once, equal batches, targets, epochs, shapes."""
from __future__ import annotations

import collections
import gc

import pytest
import torch
from torch.utils.data import DataLoader

from imagenet_stream.errors import ConfigError, ManifestError, PlanError
from imagenet_stream.streaming import ImageNetStream

B = 4


def run_epoch(ds: ImageNetStream, num_workers: int, batch_size: int = B, **loader_kw) -> list[list[str]]:
    """Keys per batch of one pass, checking every batch's images, targets and key-target agreement."""
    loader = DataLoader(ds, batch_size=batch_size, num_workers=num_workers, **loader_kw)
    return collect(loader)


def collect(loader) -> list[list[str]]:
    batches = []
    for images, targets, keys in loader:
        assert images.dtype == torch.uint8 and images.shape[1:] == (3, 32, 32)
        assert targets.dtype == torch.int64 and len(keys) == len(targets) == images.shape[0]
        batches.append(list(keys))
        loader.batch_keys_targets = getattr(loader, "batch_keys_targets", []) + list(zip(keys, targets.tolist()))
    return batches


def stream(url: str, **kw) -> ImageNetStream:
    kw = {"size": 32, "batch_size": B, "return_keys": True, "seed": 3, **kw}
    return ImageNetStream(url, **kw)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_each_sample_once_per_epoch_with_right_targets(small_ds, num_workers: int) -> None:
    ds = stream(small_ds.url)
    assert len(ds) == 60 and ds.classes == list(small_ds.manifest.classes.wnids) and ds.num_classes == 7
    loader = DataLoader(ds, batch_size=B, num_workers=num_workers)
    batches = collect(loader)
    keys = [k for b in batches for k in b]
    assert sorted(keys) == sorted(small_ds.all_keys)
    assert len(batches) == 15 and all(len(b) == B for b in batches)
    for key, target in loader.batch_keys_targets:
        assert target == small_ds.labels[key]
    assert keys != sorted(keys)  # shuffled
    assert ds.stats()["samples_yielded"] == 60


def test_worker_count_does_not_change_which_samples_or_their_pixels(small_ds) -> None:
    one = stream(small_ds.url, return_keys=True)
    two = stream(small_ds.url, return_keys=True)
    pixels0 = {k: img for img, _, k in one}
    pixels2 = {}
    for images, _, keys in DataLoader(two, batch_size=B, num_workers=2):
        pixels2.update(zip(keys, images))
    assert pixels0.keys() == pixels2.keys()
    assert all(torch.equal(pixels0[k], pixels2[k]) for k in pixels0)  # per-sample rng: [seed, epoch, id]


def test_same_seed_and_epoch_same_order_other_epoch_differs(small_ds) -> None:
    a, b = stream(small_ds.url), stream(small_ds.url)
    first = run_epoch(a, 2)
    assert run_epoch(b, 2) == first
    b.set_epoch(1)
    second = run_epoch(b, 2)
    assert second != first and sorted(sum(second, [])) == sorted(sum(first, []))
    assert run_epoch(stream(small_ds.url, seed=4), 2) != first


def test_set_epoch_reaches_persistent_workers(small_ds) -> None:
    ds = stream(small_ds.url)
    loader = DataLoader(ds, batch_size=B, num_workers=2, persistent_workers=True)
    orders = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        orders.append(collect(loader))
    for epoch, order in enumerate(orders):
        assert sorted(sum(order, [])) == sorted(small_ds.all_keys)
        fresh = stream(small_ds.url)
        fresh.set_epoch(epoch)
        assert run_epoch(fresh, 2) == order  # what a non-persistent loader yields for that epoch
    assert orders[0] != orders[1] != orders[2]
    assert ds.stats()["samples_yielded"] == 180  # counters come back from the persistent workers
    del loader
    gc.collect()  # stop the persistent workers now, not during a later test


def test_no_shuffle_streams_in_manifest_order(small_ds) -> None:
    ds = stream(small_ds.url, shuffle=False, return_keys=True)
    assert [k for _, _, k in ds] == small_ds.all_keys


def test_transform_none_yields_full_images_and_eval_is_deterministic(small_ds) -> None:
    raw = ImageNetStream(small_ds.url, transform=None, shuffle=False)
    image, target = next(iter(raw))
    assert image.shape == (3, 48, 64) and image.dtype == torch.uint8 and target == small_ds.labels["s00000"]
    ev = ImageNetStream(small_ds.url, transform="eval", size=32, shuffle=False)
    assert torch.equal(next(iter(ev))[0], next(iter(ev))[0])
    pil = ImageNetStream(small_ds.url, transform=lambda im: im.size, shuffle=False)
    assert next(iter(pil))[0] == (64, 48)


def test_partial_pad_and_drop_with_ranks_from_the_environment(small_ds, monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "7")
    seen = collections.Counter()
    for rank in range(7):
        monkeypatch.setenv("RANK", str(rank))
        drop, pad = stream(small_ds.url), stream(small_ds.url, partial="pad")
        assert len(drop) == 8 and len(pad) == 9
        assert len(run_epoch(stream(small_ds.url, batch_size=None), 0, batch_size=3)) == 3  # follows the loader
        seen.update(k for _, _, k in pad)
    assert set(seen) == set(small_ds.all_keys) and sum(seen.values()) == 63


def test_state_requires_whole_batches_and_the_same_config(small_ds) -> None:
    ds = stream(small_ds.url)
    with pytest.raises(PlanError, match="multiple of batch_size"):
        ds.state_dict(samples_seen=6)
    state = ds.state_dict(samples_seen=8)
    assert state["consumed"] == 8
    other_batch = stream(small_ds.url, batch_size=8)
    other_batch.load_state_dict(state)  # another batch size resumes the same rest of the epoch
    assert len(other_batch) == 52
    with pytest.raises(PlanError, match="shuffle_window"):
        stream(small_ds.url, shuffle_window=2).load_state_dict(state)
    with pytest.raises(PlanError, match="seed"):
        stream(small_ds.url, seed=9).load_state_dict(state)
    with pytest.raises(ConfigError):
        ds.load_state_dict({"format": "something else"})


def test_invalid_arguments_are_rejected_with_the_value(small_ds, tmp_path) -> None:
    with pytest.raises(ConfigError, match="'sometimes'"):
        stream(small_ds.url, partial="sometimes")
    with pytest.raises(ConfigError, match="-1"):
        stream(small_ds.url, batch_size=-1)
    with pytest.raises(ConfigError, match="-2"):
        stream(small_ds.url).set_epoch(-2)
    with pytest.raises(ManifestError, match="index.json"):
        ImageNetStream(str(tmp_path / "nothing-here"))


def test_spawned_persistent_workers_follow_set_epoch_and_report_counters(small_ds) -> None:
    """Under the spawn start method the dataset is pickled into the workers; the shared state still works."""
    ds = stream(small_ds.url)
    loader = DataLoader(ds, batch_size=B, num_workers=2, persistent_workers=True, multiprocessing_context="spawn")
    orders = []
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        orders.append(collect(loader))
    reference = stream(small_ds.url)
    assert orders[0] == run_epoch(reference, 2)
    reference.set_epoch(1)
    assert orders[1] == run_epoch(reference, 2)
    assert ds.stats()["samples_yielded"] == 120
    del loader
    gc.collect()  # stop the persistent workers now, not during a later test

"""The drop-in path: ``DataLoader(ImageNetStream(url), batch_size=L)`` plans L-sample batches (learned
from the DataLoader's fetch), so it reads, orders and resumes exactly like ``ImageNetStream(url,
batch_size=L)``; a stream whose own batch size differs from its DataLoader's is refused."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from torch.utils.data import DataLoader

from imagenet_stream.errors import ConfigError
from imagenet_stream.streaming import ImageNetStream
from imagenet_stream.streaming.loader_batch import fetch_batch_size, loader_batch_size, planned_batch_size


def stream(url: str, **kw) -> ImageNetStream:
    return ImageNetStream(url, **{"size": 16, "return_keys": True, "seed": 5, "chunk": 4, **kw})


def keys_of(loader) -> list[list[str]]:
    return [list(keys) for _, _, keys in loader]


@pytest.mark.parametrize(("loader_batch", "workers"), [(8, 0), (8, 2), (5, 2), (16, 1)])
def test_following_the_loader_is_the_tuned_call(small_ds, loader_batch: int, workers: int) -> None:
    follow = stream(small_ds.url)
    tuned = stream(small_ds.url, batch_size=loader_batch)
    got = keys_of(DataLoader(follow, batch_size=loader_batch, num_workers=workers))
    want = keys_of(DataLoader(tuned, batch_size=loader_batch, num_workers=workers))
    assert got == want
    assert sorted(k for batch in got for k in batch) == sorted(small_ds.all_keys)
    assert follow.stats()["requests"] == tuned.stats()["requests"]


def test_following_reads_in_runs_not_one_request_per_sample(small_ds) -> None:
    follow = stream(small_ds.url)
    keys_of(DataLoader(follow, batch_size=20, num_workers=2))
    one = stream(small_ds.url)
    keys_of(DataLoader(one, batch_size=1, num_workers=2))  # what the drop-in planned before
    assert one.stats()["requests"] >= 40
    assert follow.stats()["requests"] <= one.stats()["requests"] / 2


def test_a_different_batch_size_is_refused_with_both_numbers(small_ds) -> None:
    for workers in (0, 2):
        with pytest.raises(ConfigError, match=r"ImageNetStream\(batch_size=4\) is read by a DataLoader with "
                                              r"batch_size=8"):
            keys_of(DataLoader(stream(small_ds.url, batch_size=4), batch_size=8, num_workers=workers))


def test_resume_of_a_following_stream_gives_the_very_next_batches(small_ds) -> None:
    whole = keys_of(DataLoader(stream(small_ds.url), batch_size=8, num_workers=2))
    first = stream(small_ds.url)
    seen = 0
    for _, _, keys in DataLoader(first, batch_size=8, num_workers=2):
        seen += len(keys)
        if seen == 24:
            break
    state = first.state_dict(samples_seen=seen)
    again = stream(small_ds.url)
    again.load_state_dict(state)
    assert len(again) == 60 - 24
    assert keys_of(DataLoader(again, batch_size=8, num_workers=2)) == whole[3:]


def test_without_automatic_batching_or_a_loader_the_stream_plans_single_samples(small_ds) -> None:
    single = [[k] for _, _, k in stream(small_ds.url, batch_size=1)]
    assert [[k] for _, _, k in stream(small_ds.url)] == single
    assert [[k] for _, _, k in DataLoader(stream(small_ds.url), batch_size=None)] == single


def test_the_fetch_frame_is_found_only_inside_a_dataloader_fetch() -> None:
    assert fetch_batch_size() is None

    class Probe(__import__("torch").utils.data.IterableDataset):
        def __iter__(self):
            yield fetch_batch_size()
            yield fetch_batch_size()

    # torch's fetcher calls next() on the iterator from its fetch(possibly_batched_index): pinned here
    assert [int(x) for x in next(iter(DataLoader(Probe(), batch_size=2)))] == [2, 2]


def test_batch_size_rules() -> None:
    assert planned_batch_size(None, None) == 1 and planned_batch_size(None, 64) == 64
    assert planned_batch_size(32, None) == 32 and planned_batch_size(32, 32) == 32
    with pytest.raises(ConfigError):
        planned_batch_size(32, 64)
    with pytest.raises(ConfigError, match="batch_size=None"):
        planned_batch_size(32, 32, batched=True)  # a stream yielding batches, read by a batching DataLoader
    assert planned_batch_size(32, None, batched=True) == 32

    def stream(batch_size: int | None, batched: bool = False) -> SimpleNamespace:
        return SimpleNamespace(batch_size=batch_size, batched=batched)

    assert loader_batch_size(stream(None), 8) == 8 and loader_batch_size(stream(8), None) == 8
    assert loader_batch_size(stream(8, batched=True), None) is None
    with pytest.raises(ConfigError, match="give batch_size"):
        loader_batch_size(stream(None), None)
    with pytest.raises(ConfigError, match="differs"):
        loader_batch_size(stream(8), 16)

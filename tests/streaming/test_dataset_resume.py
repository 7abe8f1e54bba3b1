"""Mid-epoch resumption: state_dict(samples_seen=n) + load_state_dict in a fresh dataset yields exactly
the batches an uninterrupted run yields next; torchdata's StatefulDataLoader when installed."""
from __future__ import annotations

import gc
import json

import pytest
import torch
from torch.utils.data import DataLoader

from imagenet_stream.streaming import ImageNetStream

B = 4


def stream(url: str, **kw) -> ImageNetStream:
    return ImageNetStream(url, **{"size": 32, "batch_size": B, "return_keys": True, "seed": 5, **kw})


def batches(ds: ImageNetStream, num_workers: int, **kw) -> list[list[str]]:
    return [list(keys) for _, _, keys in DataLoader(ds, batch_size=B, num_workers=num_workers, **kw)]


@pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")
@pytest.mark.parametrize("num_workers,k", [(0, 4), (2, 5), (2, 6), (3, 7)])
def test_resume_after_k_batches_yields_the_uninterrupted_tail(small_ds, num_workers: int, k: int) -> None:
    full_ds = stream(small_ds.url)
    full_ds.set_epoch(2)
    full = batches(full_ds, num_workers)

    interrupted = stream(small_ds.url)
    interrupted.set_epoch(2)
    loader = iter(DataLoader(interrupted, batch_size=B, num_workers=num_workers))
    head = [list(next(loader)[2]) for _ in range(k)]
    assert head == full[:k]
    state = json.loads(json.dumps(interrupted.state_dict(samples_seen=k * B)))  # JSON-serializable
    del loader

    resumed = stream(small_ds.url)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # the usual training loop calls it again: the resume survives
    assert len(resumed) == 60 - k * B
    tail = batches(resumed, num_workers)
    assert tail == full[k:]
    # decodes no skipped sample, and reads only the windows the tail needs
    assert resumed.stats()["samples_yielded"] == 60 - k * B
    resumed.set_epoch(3)  # the following epoch starts from its beginning
    assert len(resumed) == 60
    assert sorted(sum(batches(resumed, num_workers), [])) == sorted(small_ds.all_keys)


def test_resume_with_persistent_workers_lasts_until_another_epoch(small_ds) -> None:
    full = batches(stream(small_ds.url), 2)
    ds = stream(small_ds.url)
    ds.load_state_dict(stream(small_ds.url).state_dict(samples_seen=3 * B))
    loader = DataLoader(ds, batch_size=B, num_workers=2, persistent_workers=True)
    assert [list(b[2]) for b in loader] == full[3:]
    assert len(ds) == 60 - 3 * B
    assert [list(b[2]) for b in loader] == full[3:]  # a pass over the same epoch again: still its rest
    ds.set_epoch(1)
    assert len(ds) == 60
    assert sorted(k for b in loader for k in b[2]) == sorted(small_ds.all_keys)
    del loader
    gc.collect()  # stop the persistent workers now, not during a later test


def test_resume_at_the_end_of_the_epoch_yields_nothing(small_ds) -> None:
    ds = stream(small_ds.url)
    ds.load_state_dict(stream(small_ds.url).state_dict(samples_seen=60))
    assert batches(ds, 2) == []


@pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")
def test_resume_with_other_workers_and_batch_size_yields_exactly_the_rest(small_ds) -> None:
    full = sum(batches(stream(small_ds.url), 2), [])
    ds = stream(small_ds.url)
    it = iter(DataLoader(ds, batch_size=B, num_workers=2))
    head = [k for _ in range(5) for k in next(it)[2]]
    state = ds.state_dict(samples_seen=5 * B)
    del it
    assert head == full[:5 * B]
    fresh = stream(small_ds.url, batch_size=6)
    fresh.load_state_dict(state)
    assert len(fresh) == 60 - 5 * B
    got = [list(keys) for _, _, keys in DataLoader(fresh, batch_size=6, num_workers=3)]
    assert [len(b) for b in got] == [6] * 6 + [4]
    assert sum(got, []) == full[5 * B:]  # one rank: the same order, cut into other batches


def test_iterator_state_protocol_round_trip(small_ds) -> None:
    """state_dict() without samples_seen: the Stateful protocol, resumable in the same process."""
    ds = stream(small_ds.url)
    it = iter(ds)
    head = [next(it)[2] for _ in range(13)]
    state = ds.state_dict()
    assert (state["batch"], state["offset"]) == (3, 1)  # the next sample is slot 1 of batch 3
    rest = [k for _, _, k in it]
    other = stream(small_ds.url)
    other.load_state_dict(json.loads(json.dumps(state)))
    assert [k for _, _, k in other] == rest
    assert len(head) + len(rest) == 60


@pytest.mark.filterwarnings("ignore:'set_vital' is deprecated")
@pytest.mark.parametrize("num_workers", [0, 2])
def test_torchdata_stateful_dataloader(small_ds, num_workers: int) -> None:
    stateful = pytest.importorskip("torchdata.stateful_dataloader")
    full = batches(stream(small_ds.url), num_workers)
    loader = stateful.StatefulDataLoader(stream(small_ds.url), batch_size=B, num_workers=num_workers)
    it = iter(loader)
    head = [list(next(it)[2]) for _ in range(5)]
    state = loader.state_dict()
    del it
    dataset = stream(small_ds.url)
    resumed = stateful.StatefulDataLoader(dataset, batch_size=B, num_workers=num_workers)
    resumed.load_state_dict(state)
    assert head + [list(b[2]) for b in resumed] == full
    assert dataset.stats()["samples_yielded"] == 60 - 5 * B  # our state was used: no fast-forward
    assert torch.is_tensor(next(iter(resumed))[0])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_resumed_run_resumed_again_through_the_loader_wrapper(small_ds, num_workers: int) -> None:
    """``ResumableLoader`` counts what reached the loop, so a checkpoint of a resumed run is right
    without the loop keeping a count: three runs, two interruptions, every batch once, in order."""
    from imagenet_stream.streaming import ResumableLoader

    full = batches(stream(small_ds.url), num_workers)
    seen: list[list[str]] = []
    state = None
    for stop_after in (4, 3, None):  # the first run stops after 4 batches, the resumed one after 3 more
        ds = stream(small_ds.url)
        loader = ResumableLoader(ds, num_workers=num_workers)
        if state is not None:
            loader.load_state_dict(json.loads(json.dumps(state)))
        for i, (_, _, keys) in enumerate(loader):
            seen.append(list(keys))
            if stop_after is not None and i + 1 == stop_after:
                break
        state = loader.state_dict()
        assert loader.samples_seen == (stop_after or len(full) - 7) * B
    assert seen == full
    with pytest.raises(ValueError, match="batch_size"):
        ResumableLoader(stream(small_ds.url), batch_size=B + 1)

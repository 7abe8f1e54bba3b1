"""batched=True: the stream yields whole batches, the presets' images decoded straight into one batch
tensor. The batches are exactly those a DataLoader collates from the per-sample stream (pixels, keys,
targets, order, substitutions), in any DataLoader shape, with decoding threads, and they resume."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, IterableDataset

from imagenet_stream.errors import ConfigError
from imagenet_stream.streaming import ImageNetStream, ResumableLoader
from imagenet_stream.streaming.batch_output import BatchOutput

CORRUPT = (0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 31, 44)  # a whole batch of 8 unusable among them


@pytest.fixture(scope="module")
def bad_ds(tmp_path_factory, dsutil):
    return dsutil.build_dataset(str(tmp_path_factory.mktemp("batched") / "ds"), 90, 15, corrupt=CORRUPT)


def half_gray(image) -> torch.Tensor:
    """A PIL-image transform (no slots: its outputs are collated)."""
    return torch.from_numpy(np.array(image.convert("L").resize((6, 4))))


def epoch(url: str, *, batched: bool, batch: int, workers: int, seed: int, threads: int = 0,
          transform=None) -> tuple[list, dict]:
    ds = ImageNetStream(url, size=24, seed=seed, return_keys=True, batch_size=batch, batched=batched,
                        decode_threads=threads, transform=transform or "train")
    loader = DataLoader(ds, batch_size=None if batched else batch, num_workers=workers)
    out = [(images.clone(), targets.clone(), list(keys)) for images, targets, keys in loader]
    assert len(out) == len(loader)
    assert len(ds) == (len(out) if batched else sum(len(targets) for _, targets, _ in out))
    return out, ds.stats()


@settings(max_examples=14, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.sampled_from([1, 3, 8, 16]), seed=st.integers(0, 3), workers=st.sampled_from([0, 1, 2]),
       threads=st.sampled_from([0, 2]), transform=st.sampled_from(["train", "eval", half_gray]))
def test_batches_are_the_collated_samples_bit_for_bit(bad_ds, batch, seed, workers, threads, transform) -> None:
    samples, sample_stats = epoch(bad_ds.url, batched=False, batch=batch, workers=workers, seed=seed,
                                  transform=transform)
    batches, batch_stats = epoch(bad_ds.url, batched=True, batch=batch, workers=workers, seed=seed,
                                 threads=threads, transform=transform)
    assert [keys for _, _, keys in batches] == [keys for _, _, keys in samples]
    for (a, ta, _), (b, tb, _) in zip(batches, samples):
        assert a.dtype == b.dtype and torch.equal(a, b) and torch.equal(ta, tb) and ta.dtype == torch.int64
    for name in ("samples_yielded", "substituted_samples", "corrupt_images"):
        assert batch_stats[name] == sample_stats[name], name
    assert sample_stats["corrupt_images"] == len(CORRUPT)


def test_len_counts_batches_and_the_last_one_is_partial(bad_ds) -> None:
    ds = ImageNetStream(bad_ds.url, size=24, batch_size=16, batched=True)
    sizes = [len(targets) for _, targets in DataLoader(ds, batch_size=None)]
    assert len(ds) == len(sizes) == 6 and sizes == [16] * 5 + [10]


def test_it_needs_a_batch_size_and_a_dataloader_that_does_not_batch_again(bad_ds) -> None:
    with pytest.raises(ConfigError, match="give batch_size= too"):
        ImageNetStream(bad_ds.url, batched=True)
    ds = ImageNetStream(bad_ds.url, size=24, batch_size=8, batched=True)
    with pytest.raises(ConfigError, match=r"read it with DataLoader\(ds, batch_size=None\)"):
        next(iter(DataLoader(ds, batch_size=8)))


class _SlotsInWorker(IterableDataset):
    def __iter__(self):
        yield BatchOutput((3, 2, 2)).slots(4).is_shared(), BatchOutput(None).slots(4) is None


def test_a_worker_allocates_its_batch_in_shared_memory() -> None:
    # Shared memory from the start: the batch crosses to the main process without a copy.
    assert next(iter(DataLoader(_SlotsInWorker(), batch_size=None, num_workers=1))) == [True, True]
    assert not BatchOutput((3, 2, 2)).slots(4).is_shared()  # the main process keeps plain memory


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_resume_through_the_loader_wrapper_yields_the_rest_in_another_mode(bad_ds, num_workers) -> None:
    whole, _ = epoch(bad_ds.url, batched=False, batch=6, workers=0, seed=1)
    first = ResumableLoader(ImageNetStream(bad_ds.url, size=24, seed=1, return_keys=True, batch_size=6,
                                           batched=True), num_workers=num_workers)
    assert first.loader.batch_size is None
    for n, _ in enumerate(first, 1):
        if n == 4:
            break
    state = json.loads(json.dumps(first.state_dict()))
    again = ImageNetStream(bad_ds.url, size=24, seed=1, return_keys=True, batch_size=6)  # per sample now
    again.load_state_dict(state)
    rest = [list(keys) for _, _, keys in DataLoader(again, batch_size=6, num_workers=num_workers)]
    assert rest == [keys for _, _, keys in whole[4:]]


@pytest.mark.filterwarnings("ignore:'set_vital' is deprecated")
def test_torchdata_stateful_dataloader_resumes_a_batched_stream(bad_ds) -> None:
    stateful = pytest.importorskip("torchdata.stateful_dataloader")
    whole, _ = epoch(bad_ds.url, batched=True, batch=8, workers=2, seed=2)

    def stream() -> ImageNetStream:
        return ImageNetStream(bad_ds.url, size=24, seed=2, return_keys=True, batch_size=8, batched=True)

    loader = stateful.StatefulDataLoader(stream(), batch_size=None, num_workers=2)
    it = iter(loader)
    head = [list(next(it)[2]) for _ in range(5)]
    state = loader.state_dict()
    del it
    dataset = stream()
    resumed = stateful.StatefulDataLoader(dataset, batch_size=None, num_workers=2)
    resumed.load_state_dict(state)
    assert head + [list(b[2]) for b in resumed] == [keys for _, _, keys in whole]
    assert dataset.stats()["samples_yielded"] == 90 - 5 * 8  # our state was used: no fast-forward

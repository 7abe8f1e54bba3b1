"""decode_threads: decoding a batch on threads gives exactly the serial path's samples: the same
pixels, keys and targets in the same order, the same substitutions of bad samples, the same resume."""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from imagenet_stream.errors import ConfigError
from imagenet_stream.streaming import ImageNetStream

CORRUPT = (0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 31, 44)  # a whole batch of 8 unusable among them


@pytest.fixture(scope="module")
def bad_ds(tmp_path_factory, dsutil):
    return dsutil.build_dataset(str(tmp_path_factory.mktemp("threads") / "ds"), 90, 15, corrupt=CORRUPT)


def epoch(url: str, *, threads: int, batch: int, workers: int, seed: int, transform: str = "train"):
    ds = ImageNetStream(url, size=24, seed=seed, return_keys=True, decode_threads=threads, transform=transform)
    out = [(images.clone(), targets.clone(), list(keys))
           for images, targets, keys in DataLoader(ds, batch_size=batch, num_workers=workers)]
    return out, ds.stats()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(threads=st.integers(1, 4), batch=st.sampled_from([1, 3, 8, 16]), seed=st.integers(0, 3),
       workers=st.sampled_from([0, 1]), transform=st.sampled_from(["train", "eval"]))
def test_threads_give_the_serial_samples_bit_for_bit(bad_ds, threads, batch, seed, workers, transform) -> None:
    serial, serial_stats = epoch(bad_ds.url, threads=0, batch=batch, workers=workers, seed=seed, transform=transform)
    threaded, threaded_stats = epoch(bad_ds.url, threads=threads, batch=batch, workers=workers, seed=seed,
                                     transform=transform)
    assert [keys for _, _, keys in threaded] == [keys for _, _, keys in serial]
    for (a, ta, _), (b, tb, _) in zip(threaded, serial):
        assert torch.equal(a, b) and torch.equal(ta, tb)
    for name in ("samples_yielded", "substituted_samples", "corrupt_images"):
        assert threaded_stats[name] == serial_stats[name], name
    assert serial_stats["corrupt_images"] == len(CORRUPT)


def test_a_resume_with_threads_yields_the_rest(bad_ds) -> None:
    whole, _ = epoch(bad_ds.url, threads=0, batch=6, workers=0, seed=1)
    first = ImageNetStream(bad_ds.url, size=24, seed=1, return_keys=True, decode_threads=2)
    for n, _ in enumerate(DataLoader(first, batch_size=6), 1):
        if n == 4:
            break
    again = ImageNetStream(bad_ds.url, size=24, seed=1, return_keys=True, decode_threads=3)
    again.load_state_dict(first.state_dict(samples_seen=24))
    rest = [list(keys) for _, _, keys in DataLoader(again, batch_size=6)]
    assert rest == [keys for _, _, keys in whole[4:]]


def test_decode_threads_must_not_be_negative(bad_ds) -> None:
    with pytest.raises(ConfigError, match="decode_threads"):
        ImageNetStream(bad_ds.url, decode_threads=-1)

"""No silent hangs: a shard server that accepts a ranged GET and never answers, or stops in the middle
of a body, fails the stream within about ``stall_timeout`` x attempts with an error that names the
shard, the byte range and the rank, instead of waiting on aiohttp's 300 s limit or forever."""
from __future__ import annotations

import re
import time

import pytest
from torch.utils.data import DataLoader

from imagenet_stream.errors import StorageError
from imagenet_stream.retry import RetryPolicy
from imagenet_stream.storage import Store
from imagenet_stream.streaming import ImageNetStream

STALL = 3.0  # generous beside the test's other requests on a loaded 2-core machine
POLICY = RetryPolicy(attempts=2, backoff=0.05, max_backoff=0.05, deadline=60.0, stall_timeout=STALL)


@pytest.mark.parametrize("mode, num_workers", [("stall", 0), ("stall_mid", 2)])
def test_a_stalled_shard_read_fails_fast_naming_shard_range_and_rank(small_ds, httpserver, mode, num_workers) -> None:
    shard = small_ds.manifest.shards[1].name  # not the first: the dataset probes it for Range support
    with httpserver.serve(small_ds.url, **{mode: shard}) as (base, log):
        ds = ImageNetStream(base, size=32, batch_size=4, retry=POLICY, shuffle=False)
        started = time.monotonic()
        with pytest.raises(StorageError) as info:
            for _ in DataLoader(ds, batch_size=4, num_workers=num_workers):
                pass
        took = time.monotonic() - started
    message = str(info.value)
    assert shard in message and "rank 0 of 1" in message and "stall_timeout" in message
    assert re.search(re.escape(shard) + r"\[\d+:\d+\]", message)  # the byte range
    stalled = [g for g in log.gets if g[0] == shard]
    assert len(stalled) >= POLICY.attempts  # each attempt reached the server and was given up on
    # two attempts of STALL each, plus DataLoader start-up and the first shard's side-index reads
    assert took < POLICY.attempts * STALL + 20


def test_store_read_is_bounded_by_stall_timeout(small_ds, httpserver) -> None:
    shard = small_ds.manifest.shards[1].name
    with httpserver.serve(small_ds.url, stall=shard) as (base, _):
        store = Store(base, retry=RetryPolicy(attempts=1, stall_timeout=STALL))
        started = time.monotonic()
        with pytest.raises(StorageError, match=r"failed after 1 attempt.*stall_timeout"):
            store.read(shard, 0, 1024)
        assert time.monotonic() - started < 30  # bounded: not aiohttp's 300 s, not forever
        assert store.read("index.json")  # the server still answers other requests


def test_stall_timeout_is_validated() -> None:
    from imagenet_stream.errors import ConfigError

    with pytest.raises(ConfigError, match="stall_timeout"):
        RetryPolicy(stall_timeout=0)
    assert RetryPolicy(stall_timeout=None).stall_timeout is None

"""No silent hangs: a shard server that accepts a ranged GET and never answers, or stops in the middle
of a body, fails the stream within about ``stall_timeout`` x attempts with an error that names the
shard, the byte range and the rank, instead of waiting on aiohttp's 300 s limit or forever.

Each scenario runs in a fresh interpreter, as a training job would: the test process has forked
hundreds of DataLoader workers by then, and fsspec's one event loop per process is shared state.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from imagenet_stream.errors import ConfigError
from imagenet_stream.retry import RetryPolicy

STALL = 3.0  # generous beside the test's other requests on a loaded 2-core machine

STREAM = """
import json, sys, time
from torch.utils.data import DataLoader
from imagenet_stream.errors import StorageError
from imagenet_stream.retry import RetryPolicy
from imagenet_stream.streaming import ImageNetStream
base, workers, stall = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
policy = RetryPolicy(attempts=2, backoff=0.05, max_backoff=0.05, deadline=60.0, stall_timeout=stall)
ds = ImageNetStream(base, size=32, batch_size=4, retry=policy, shuffle=False)
started = time.monotonic()
try:
    for _ in DataLoader(ds, batch_size=4, num_workers=workers):
        pass
    message = None
except StorageError as exc:
    message = str(exc)
print(json.dumps({"message": message, "took": time.monotonic() - started}))
"""

READ = """
import json, sys, time
from imagenet_stream.errors import StorageError
from imagenet_stream.retry import RetryPolicy
from imagenet_stream.storage import Store
base, shard, stall = sys.argv[1], sys.argv[2], float(sys.argv[3])
store = Store(base, retry=RetryPolicy(attempts=1, stall_timeout=stall))
started = time.monotonic()
try:
    store.read(shard, 0, 1024)
    message = None
except StorageError as exc:
    message = str(exc)
took = time.monotonic() - started
after = len(store.read("index.json"))  # the server still answers, and this store still asks
print(json.dumps({"message": message, "took": took, "after": after}))
"""


def _run(code: str, *args: object) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                         timeout=240, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode, num_workers", [("stall", 0), ("stall_mid", 2)])
def test_a_stalled_shard_read_fails_fast_naming_shard_range_and_rank(small_ds, httpserver, mode, num_workers) -> None:
    shard = small_ds.manifest.shards[1].name  # not the first: the dataset probes it for Range support
    with httpserver.serve(small_ds.url, **{mode: shard}) as (base, log):
        result = _run(STREAM, base, num_workers, STALL)
    message = result["message"]
    assert message is not None, "the stalled read did not fail"
    assert shard in message and "rank 0 of 1" in message and "stall_timeout" in message
    assert re.search(re.escape(shard) + r"\[\d+:\d+\]", message)  # the byte range
    stalled = [g for g in log.gets if g[0] == shard]
    assert len(stalled) >= 2  # each attempt reached the server and was given up on
    # two attempts of STALL each, plus DataLoader start-up; bounded, not aiohttp's 300 s
    assert result["took"] < 2 * STALL + 20


def test_store_read_is_bounded_by_stall_timeout(small_ds, httpserver) -> None:
    shard = small_ds.manifest.shards[1].name
    with httpserver.serve(small_ds.url, stall=shard) as (base, _):
        result = _run(READ, base, shard, STALL)
    assert re.search(r"failed after 1 attempt.*stall_timeout", result["message"])
    assert result["took"] < 30  # bounded: not aiohttp's 300 s, not forever
    with open(f"{small_ds.url}/index.json", "rb") as f:
        assert result["after"] == len(f.read())


def test_stall_timeout_is_validated() -> None:
    with pytest.raises(ConfigError, match="stall_timeout"):
        RetryPolicy(stall_timeout=0)
    assert RetryPolicy(stall_timeout=None).stall_timeout is None

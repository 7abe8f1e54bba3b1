"""storage.Store on real file systems: local folder, memory://, and S3 through moto's server."""
from __future__ import annotations

import errno

import pytest

from imagenet_stream.errors import StorageError
from imagenet_stream.retry import RetryPolicy, is_transient, with_retries
from imagenet_stream.storage import Store
from imagenet_stream.streaming.fetch import read_range


@pytest.fixture(params=["local", "memory", "s3"])
def store(request, tmp_path) -> Store:
    if request.param == "local":
        return Store(str(tmp_path / "root"))
    if request.param == "memory":
        return Store(f"memory://store-{tmp_path.name}")
    opts = request.getfixturevalue("s3_options")
    bucket = request.getfixturevalue("s3_bucket")
    return Store(f"s3://{bucket}/root", opts)


def test_write_read_list_ranges(store: Store) -> None:
    store.makedirs()
    store.write_atomic("a.bin", bytes(range(256)) * 4)
    assert store.exists("a.bin")
    assert store.size("a.bin") == 1024
    assert store.read("a.bin", 10, 20) == bytes(range(10, 20))
    # chunked ranges (what the shard reader uses), on every protocol
    assert read_range(store, "a.bin", 5, 1000, chunk_size=97) == (bytes(range(256)) * 4)[5:1000]
    assert store.list() == ["a.bin"], "no temporary object may remain after an atomic write"


def test_put_file_atomic(store: Store, tmp_path) -> None:
    local = tmp_path / "payload"
    local.write_bytes(b"x" * 5000)
    store.makedirs()
    store.put_file_atomic(local, "p.tar")
    assert store.read("p.tar") == b"x" * 5000
    assert store.list("p") == ["p.tar"]


def test_missing_object_is_not_retried(store: Store) -> None:
    with pytest.raises(FileNotFoundError):
        store.read("nope.bin")


def test_range_past_the_end_is_short_not_an_error(store: Store) -> None:
    """A truncated object (S3 answers 416 past its end) gives short bytes, which the reader counts."""
    store.makedirs()
    store.write_atomic("short.bin", b"abc")
    assert read_range(store, "short.bin", 0, 10, chunk_size=2) == b"abc"
    assert read_range(store, "short.bin", 5, 10) == b""


def test_with_retries_recovers_then_gives_up() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError(errno.ECONNRESET, "reset")
        return "ok"

    assert with_retries(flaky, "flaky", RetryPolicy(attempts=6, backoff=0.001)) == "ok"
    assert len(calls) == 3

    def always() -> None:
        raise TimeoutError("slow")

    with pytest.raises(StorageError, match=r"after 3 attempt\(s\)"):
        with_retries(always, "always", RetryPolicy(attempts=3, backoff=0.001))


def test_transient_classification() -> None:
    assert is_transient(ConnectionResetError())
    assert is_transient(TimeoutError())
    assert not is_transient(FileNotFoundError())
    assert not is_transient(ValueError("bad"))

    class HTTPErr(Exception):
        status = 503

    assert is_transient(HTTPErr())
    HTTPErr.status = 404
    assert not is_transient(HTTPErr())


def test_repr_hides_options(tmp_path) -> None:
    s = Store(str(tmp_path))
    assert "SECRET" not in repr(s)

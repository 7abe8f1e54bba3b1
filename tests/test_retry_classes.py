"""What is retried is decided by what the raising library says: one case per class of error."""
from __future__ import annotations

import errno

import aiohttp
import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from s3fs.errors import translate_boto_error

from imagenet_stream.errors import StorageError
from imagenet_stream.retry import is_transient


def _s3(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} message"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")


@pytest.mark.parametrize("exc, expected", [
    # aiohttp (fsspec's http and s3fs's transport): broken connections, payloads, read timeouts
    (aiohttp.ServerDisconnectedError(), True),
    (aiohttp.ClientConnectionError("connection lost"), True),
    (aiohttp.ClientPayloadError("Response payload is not completed"), True),
    (aiohttp.ServerTimeoutError("Timeout on reading data from socket"), True),
    (aiohttp.ClientResponseError(None, (), status=503, message="Service Unavailable"), True),
    (aiohttp.ClientResponseError(None, (), status=429, message="Too Many Requests"), True),
    (aiohttp.ClientResponseError(None, (), status=400, message="Bad Request"), False),
    # botocore: throttling and passing faults by S3 error code, connection classes by class
    (_s3("SlowDown", 503), True),
    (_s3("InternalError", 500), True),
    (_s3("RequestTimeout", 400), True),
    (_s3("ThrottlingException", 400), True),
    (_s3("InvalidRange", 416), False),
    (_s3("SomethingNew", 502), True),     # an unknown code: its HTTP status decides
    (ReadTimeoutError(endpoint_url="http://127.0.0.1:1/b/k"), True),
    (ConnectTimeoutError(endpoint_url="http://127.0.0.1:1/b/k"), True),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:1/b/k"), True),
    # s3fs re-raises S3's codes as OSError with errno, the ClientError as the cause
    (translate_boto_error(_s3("SlowDown", 503)), True),
    (translate_boto_error(_s3("InternalError", 500)), True),
    (translate_boto_error(_s3("AccessDenied", 403)), False),
    (translate_boto_error(_s3("NoSuchKey", 404)), False),
    # the OS: errno
    (OSError(errno.ECONNRESET, "Connection reset by peer"), True),
    (OSError(errno.ENETUNREACH, "Network is unreachable"), True),
    (OSError(errno.ENOSPC, "No space left on device"), False),
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), True),
    (TimeoutError("no answer within 60 s (stall_timeout)"), True),
    (FileNotFoundError("gone"), False),
    # nothing a library says: throttling words only
    (RuntimeError("503 Slow Down: please reduce your request rate"), True),
    (RuntimeError("connection.jpg is not an image"), False),
    (ValueError("bad header"), False),
    # ours: the retries behind it are spent
    (StorageError("read x: failed after 12 attempt(s): SlowDown"), False),
])
def test_is_transient_by_what_the_library_says(exc: BaseException, expected: bool) -> None:
    assert is_transient(exc) is expected


def test_a_cause_deep_in_the_chain_counts() -> None:
    try:
        try:
            raise _s3("SlowDown", 503)
        except ClientError as inner:
            raise OSError(errno.EIO, "wrapped twice") from inner
    except OSError as outer:
        wrapped = RuntimeError("while reading a shard")
        wrapped.__cause__ = outer
    assert is_transient(wrapped)

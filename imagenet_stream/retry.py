"""Which storage errors are worth retrying, and how: :class:`RetryPolicy` and :func:`with_retries`.

Pure policy (no fsspec): :mod:`imagenet_stream.storage` and the streaming reader apply it to their
reads; messages go through :mod:`imagenet_stream.redaction`, so no credential reaches a log line.
"""
from __future__ import annotations

import errno
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from imagenet_stream.errors import ConfigError, ImageNetStreamError, StorageError
from imagenet_stream.redaction import describe

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Errors that retrying cannot fix (the object is not there, or not ours to read).
PERMANENT_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)
#: errno values of a connection or network path that failed on the way.
_TRANSIENT_ERRNOS = frozenset({errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED, errno.ETIMEDOUT,
                               errno.EPIPE, errno.EAGAIN, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN,
                               errno.ENETRESET})
#: Error codes of S3-style services that mean "throttled" or "a passing fault" (botocore's retry
#: handlers retry the same; GCS says ``rateLimitExceeded`` / ``backendError``).
RETRYABLE_CODES = frozenset({
    "SlowDown", "SlowDownRead", "SlowDownWrite", "Throttling", "ThrottlingException", "ThrottledException",
    "RequestThrottled", "RequestThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
    "BandwidthLimitExceeded", "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "EC2ThrottledException", "PriorRequestNotComplete", "RequestTimeout", "RequestTimeoutException",
    "InternalError", "ServiceUnavailable", "rateLimitExceeded", "backendError",
})
#: Exception classes of the storage clients that mean "the connection or the response broke: try
#: again", by the client's top-level module (matched along the class's MRO, so subclasses count and
#: no client library is imported here).
_TRANSIENT_CLASSES = {
    "aiohttp": frozenset({"ClientConnectionError", "ClientPayloadError", "ServerTimeoutError"}),
    "botocore": frozenset({"ConnectionError", "HTTPClientError", "ReadTimeoutError", "ConnectTimeoutError",
                           "EndpointConnectionError", "ConnectionClosedError", "ResponseStreamingError",
                           "IncompleteReadError"}),
    "urllib3": frozenset({"ProtocolError", "ReadTimeoutError", "NewConnectionError"}),
    "requests": frozenset({"ConnectionError", "Timeout", "ChunkedEncodingError"}),
}
#: The text fallback, for errors whose library gives no class, code or status: throttling phrases only.
_THROTTLING_WORDS = ("slowdown", "slow down", "reduce your request rate", "too many requests", "throttl",
                     "ratelimit", "rate limit exceeded")


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: connection failures and timeouts, HTTP 5xx / 408 / 429,
    throttling codes. Judged by what the raising library says: the exception's class (aiohttp,
    botocore, urllib3, requests), its S3 error code or HTTP status, its errno; along its cause
    chain, since s3fs re-raises S3's ``SlowDown`` as ``OSError(EBUSY)`` caused by botocore's
    ``ClientError``. Only an error none of those describe is judged by a few throttling words.
    This library's own errors are final: their retries are already spent."""
    if isinstance(exc, PERMANENT_ERRORS) or isinstance(exc, ImageNetStreamError):
        return False
    link: BaseException | None = exc
    for _ in range(_CHAIN_LIMIT):
        if link is None:
            break
        verdict = _verdict(link)
        if verdict is not None:
            return verdict
        link = link.__cause__ or link.__context__
    try:
        text = f"{type(exc).__name__} {exc}".lower()
    except Exception:  # noqa: BLE001 - a broken __str__: judge by the class name alone
        text = type(exc).__name__.lower()
    return any(word in text for word in _THROTTLING_WORDS)


_CHAIN_LIMIT = 6


def _verdict(exc: BaseException) -> bool | None:
    """What one exception of a chain says by itself (None: nothing)."""
    if isinstance(exc, PERMANENT_ERRORS):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    for cls in type(exc).__mro__:
        if cls.__name__ in _TRANSIENT_CLASSES.get(cls.__module__.split(".")[0], ()):
            return True
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore's ClientError: the service's code and HTTP status
        code = (response.get("Error") or {}).get("Code")
        if code in RETRYABLE_CODES:
            return True
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        return _status_verdict(status) if isinstance(status, int) else None
    for attribute in ("status", "status_code", "code"):  # aiohttp, requests, gcsfs / urllib
        status = getattr(exc, attribute, None)
        if isinstance(status, int) and not isinstance(status, bool) and 100 <= status < 600:
            return _status_verdict(status)
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return True
    return None


def _status_verdict(status: int) -> bool:
    return status >= 500 or status in (408, 429)


@dataclass(frozen=True)
class RetryPolicy:
    """How transient storage errors are retried: exponential backoff with full jitter.

    Attempt ``i`` (from 0) waits ``uniform(0, min(max_backoff, backoff * 2**i))`` before the next
    one; it gives up after ``attempts`` tries or once ``deadline`` seconds have passed since the
    first, whichever comes first. The defaults ride out minutes of S3 ``SlowDown`` or a restarting
    server, as long training jobs need; tests and interactive tools pass shorter ones.

    ``stall_timeout``: seconds one read request of an object store or HTTP server (a ranged GET of at
    most ``chunk_size`` bytes, a HEAD, a listing) may take before it is aborted and counted as a
    transient failure (None: wait as long as the client library does; aiohttp's own limit is 300 s).
    A server that accepts a request and never answers, or stops in the middle of a body, then costs
    at most about ``stall_timeout`` per attempt, and the read fails with a :class:`StorageError`
    once the attempts or the deadline are spent, instead of hanging every rank of a job.
    """

    attempts: int = 12
    backoff: float = 0.5
    max_backoff: float = 30.0
    deadline: float = 300.0
    jitter: bool = True
    stall_timeout: float | None = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise ConfigError(f"retry attempts must be an int >= 1, got {self.attempts!r}")
        for name in ("backoff", "max_backoff", "deadline"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"retry {name} must be a number >= 0, got {value!r}")
        timeout = self.stall_timeout
        if timeout is not None and (not isinstance(timeout, (int, float)) or isinstance(timeout, bool)
                                    or not timeout > 0):
            raise ConfigError(f"retry stall_timeout must be a number > 0 or None, got {timeout!r}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (0-based)."""
        cap = min(self.max_backoff, self.backoff * (2.0 ** min(attempt, 60)))
        return (rng or random).uniform(0.0, cap) if self.jitter else cap


#: A short policy for command-line tools (about 6 s at most), the old fixed budget.
QUICK_RETRIES = RetryPolicy(attempts=6, backoff=0.2, max_backoff=10.0, deadline=60.0, jitter=False)


def with_retries(fn: Callable[[], T], what: str, policy: RetryPolicy = QUICK_RETRIES,
                 describe_error: Callable[[BaseException], str] = describe) -> T:
    """Call ``fn``, retrying transient errors under ``policy``; raise :class:`StorageError` at the end.

    ``what`` names the operation for messages (it must carry no credentials); the error text comes
    from ``describe_error`` (redacted), and the original exception is not chained, since its
    ``repr`` may hold request headers.
    """
    started = time.monotonic()
    for attempt in range(policy.attempts):
        failure: str | None = None
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified just below
            if not is_transient(exc):
                raise
            elapsed = time.monotonic() - started
            wait = policy.delay(attempt)
            if attempt + 1 >= policy.attempts or elapsed + wait > policy.deadline:
                failure = f"{what}: failed after {attempt + 1} attempt(s) in {elapsed:.1f}s: {describe_error(exc)}"
            else:
                log.warning("%s: transient error (%s), retry %d/%d in %.1fs",
                            what, type(exc).__name__, attempt + 1, policy.attempts - 1, wait)
        if failure is not None:  # raised outside the handler: the original error is not even its context
            raise StorageError(failure)
        time.sleep(wait)
    raise AssertionError("unreachable")


__all__ = ["PERMANENT_ERRORS", "QUICK_RETRIES", "RetryPolicy", "is_transient", "with_retries"]

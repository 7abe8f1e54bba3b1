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

from imagenet_stream.errors import ConfigError, StorageError
from imagenet_stream.redaction import describe

log = logging.getLogger(__name__)

T = TypeVar("T")

_TRANSIENT_ERRNOS = frozenset(
    {errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED, errno.ETIMEDOUT, errno.EPIPE, errno.EAGAIN}
)
#: Errors that retrying cannot fix (the object is not there, or not ours to read).
PERMANENT_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)
#: Words in an error's class name or message that mark throttling or a passing server fault
#: (S3 ``SlowDown`` / ``503 Slow Down`` / ``InternalError``, GCS ``rateLimitExceeded``, ...).
_TRANSIENT_WORDS = ("timeout", "timed out", "connection", "disconnected", "payloaderror", "throttl", "slowdown",
                    "slow down", "reduce your request rate", "service unavailable", "internalerror",
                    "requesttimeout", "ratelimit", "too many requests", "temporarily unavailable")
def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: connection resets, timeouts, HTTP 5xx / 408 / 429, throttling."""
    if isinstance(exc, PERMANENT_ERRORS):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    status = getattr(exc, "status", None) or getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status >= 500 or status in (408, 429)
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return True
    try:
        text = f"{type(exc).__name__} {exc}".lower()
    except Exception:  # noqa: BLE001 - a broken __str__: judge by the class name alone
        text = type(exc).__name__.lower()
    return any(word in text for word in _TRANSIENT_WORDS)


@dataclass(frozen=True)
class RetryPolicy:
    """How transient storage errors are retried: exponential backoff with full jitter.

    Attempt ``i`` (from 0) waits ``uniform(0, min(max_backoff, backoff * 2**i))`` before the next
    one; it gives up after ``attempts`` tries or once ``deadline`` seconds have passed since the
    first, whichever comes first. The defaults ride out minutes of S3 ``SlowDown`` or a restarting
    server, as long training jobs need; tests and interactive tools pass shorter ones.

    """

    attempts: int = 12
    backoff: float = 0.5
    max_backoff: float = 30.0
    deadline: float = 300.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise ConfigError(f"retry attempts must be an int >= 1, got {self.attempts!r}")
        for name in ("backoff", "max_backoff", "deadline"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"retry {name} must be a number >= 0, got {value!r}")

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

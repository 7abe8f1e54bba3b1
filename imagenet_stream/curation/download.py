"""Downloading images from URL lists politely: per-host limits, retries, robots tags, size caps.

One :class:`Downloader` per process (the shard task's reading threads share it). Each URL gets:

* a ``User-Agent`` naming this tool and its version;
* at most ``per_host`` requests in flight to its host, and at least ``1 / host_rate`` seconds between
  two request starts to it (when ``host_rate`` is set);
* a ``timeout`` per request (connect and each read), at most ``max_redirects`` redirects, and a body
  cap (``max_bytes``: a larger ``Content-Length`` is refused unread, a longer body is cut off);
* retries of 429, 5xx, 408, timeouts, resets and DNS failures, up to ``attempts`` tries, waiting
  ``uniform(0, min(max_backoff, backoff * 2**i))`` (full jitter), or the server's ``Retry-After``
  when it says more (up to ``max_backoff``; a longer wait fails the URL as ``http_429``);
* ``X-Robots-Tag: noai`` / ``noimageai`` (optionally ``name: noai``) honoured: the image is dropped
  and the URL counted as ``skipped_by_robots`` (``honor_robots=False``, ``--ignore-robots-tag``,
  turns that off).

Every outcome is a :class:`Fetched`: ``success`` with the bytes, ``failed_to_download`` with an
error class (``http_404``, ``timeout``, ``dns``, ``connection_refused``, ``reset``, ``ssl``,
``too_many_redirects``, ``too_large``, ``bad_url``...) or ``skipped_by_robots``; with the final HTTP
status, the bytes received, the attempts and the seconds taken. HTML pages served with status 200
come back as ``success`` and are rejected by verification for what they are (not an image).
"""
from __future__ import annotations

import email.utils
import http.client
import random
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from imagenet_stream import __version__
from imagenet_stream.errors import ConfigError

SUCCESS, FAILED, ROBOTS = "success", "failed_to_download", "skipped_by_robots"
USER_AGENT = f"imagenet-stream/{__version__} (dataset downloader; honours X-Robots-Tag noai/noimageai)"
_ROBOT_DIRECTIVES = frozenset({"noai", "noimageai"})
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_CHUNK = 1 << 16


@dataclass(frozen=True)
class DownloadPolicy:
    """How URLs are fetched (module docstring); picklable, sent to shard workers with the run."""

    timeout: float = 20.0
    attempts: int = 4
    backoff: float = 1.0
    max_backoff: float = 30.0
    per_host: int = 4
    host_rate: float | None = None
    max_redirects: int = 5
    honor_robots: bool = True
    user_agent: str = USER_AGENT

    def __post_init__(self) -> None:
        for name in ("timeout", "backoff", "max_backoff"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"download {name} must be a number >= 0, got {value!r}")
        if self.timeout <= 0:
            raise ConfigError(f"download timeout must be > 0, got {self.timeout}")
        for name, low in (("attempts", 1), ("per_host", 1), ("max_redirects", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"download {name} must be an int >= {low}, got {value!r}")
        if self.host_rate is not None and not self.host_rate > 0:
            raise ConfigError(f"download host_rate must be > 0 requests/s, got {self.host_rate}")


@dataclass(frozen=True)
class Fetched:
    """The outcome of one URL."""

    url: str
    status: str                  # SUCCESS, FAILED or ROBOTS
    data: bytes | None = None
    error: str = ""              # the error class, for FAILED (and the directive, for ROBOTS)
    http_status: int | None = None
    bytes: int = 0
    attempts: int = 0
    seconds: float = 0.0

    def row(self) -> dict[str, object]:
        """The status-row fields of this download (everything but the bytes)."""
        return {"url": self.url, "status": self.status, "error": self.error, "http_status": self.http_status,
                "bytes": self.bytes, "attempts": self.attempts, "seconds": round(self.seconds, 3)}


class _Gate:
    """One host's limits: a semaphore of ``per_host`` and the earliest next start."""

    def __init__(self, per_host: int) -> None:
        self.slots = threading.BoundedSemaphore(per_host)
        self.lock = threading.Lock()
        self.next_start = 0.0


class _Failure(Exception):
    """Internal: one attempt failed with an error class; ``retry_after`` when the server asked."""

    def __init__(self, error: str, status: int | None = None, transient: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(error)
        self.error, self.status, self.transient, self.retry_after = error, status, transient, retry_after


class _Redirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, limit: int) -> None:
        self.max_redirections = limit


class Downloader:
    """Fetches URLs under one :class:`DownloadPolicy`; thread-safe; one per process."""

    def __init__(self, policy: DownloadPolicy, max_bytes: int) -> None:
        self.policy = policy
        self.max_bytes = max_bytes
        self._gates: dict[str, _Gate] = {}
        self._lock = threading.Lock()
        self._opener = urllib.request.build_opener(_Redirects(policy.max_redirects))
        self._rng = random.Random()

    def _gate(self, host: str) -> _Gate:
        with self._lock:
            gate = self._gates.get(host)
            if gate is None:
                gate = self._gates[host] = _Gate(self.policy.per_host)
            return gate

    def fetch(self, url: str) -> Fetched:
        started = time.monotonic()
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return Fetched(url, FAILED, error="bad_url", seconds=time.monotonic() - started)
        gate = self._gate(parts.hostname.lower())
        policy = self.policy
        failure = _Failure("unknown")
        for attempt in range(policy.attempts):
            try:
                with gate.slots:
                    self._wait_turn(gate)
                    data, status, robots = self._get(url)
            except _Failure as exc:
                failure = exc
                if not exc.transient or attempt + 1 == policy.attempts:
                    break
                wait = self._rng.uniform(0.0, min(policy.max_backoff, policy.backoff * 2.0 ** attempt))
                if exc.retry_after is not None:
                    if exc.retry_after > policy.max_backoff:
                        break  # the server wants more patience than the policy has
                    wait = max(wait, exc.retry_after)
                time.sleep(wait)
                continue
            seconds = time.monotonic() - started
            if robots and policy.honor_robots:
                return Fetched(url, ROBOTS, error=robots, http_status=status, bytes=len(data),
                               attempts=attempt + 1, seconds=seconds)
            return Fetched(url, SUCCESS, data=data, http_status=status, bytes=len(data), attempts=attempt + 1,
                           seconds=seconds)
        return Fetched(url, FAILED, error=failure.error, http_status=failure.status,
                       attempts=min(attempt + 1, policy.attempts), seconds=time.monotonic() - started)

    def _wait_turn(self, gate: _Gate) -> None:
        if self.policy.host_rate is None:
            return
        with gate.lock:
            now = time.monotonic()
            start = max(now, gate.next_start)
            gate.next_start = start + 1.0 / self.policy.host_rate
        if start > now:
            time.sleep(start - now)

    def _get(self, url: str) -> tuple[bytes, int, str]:
        """``(body, status, robots directive or "")`` of one attempt; raises :class:`_Failure`."""
        request = urllib.request.Request(url, headers={"User-Agent": self.policy.user_agent, "Accept": "image/*,*/*"})
        try:
            with self._opener.open(request, timeout=self.policy.timeout) as response:
                status = int(response.status)
                robots = _robots_directive(response.headers.get_all("X-Robots-Tag") or [])
                length = response.headers.get("Content-Length")
                if length is not None and length.isdigit() and int(length) > self.max_bytes:
                    raise _Failure("too_large", status)
                body = bytearray()
                while chunk := response.read(_CHUNK):
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise _Failure("too_large", status)
                return bytes(body), status, robots
        except _Failure:
            raise
        except urllib.error.HTTPError as exc:
            code = int(exc.code)
            if 300 <= code < 400:
                raise _Failure("too_many_redirects", code) from None
            retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            raise _Failure(f"http_{code}", code, transient=code in _RETRY_STATUS, retry_after=retry_after) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            raise _classify(exc) from None


def _classify(exc: BaseException) -> _Failure:
    """The error class of a failed connection or response (DNS, refused, reset, timeout, TLS...)."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, socket.gaierror):
        return _Failure("dns", transient=True)
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return _Failure("timeout", transient=True)
    if isinstance(reason, ConnectionRefusedError):
        return _Failure("connection_refused", transient=True)
    if isinstance(reason, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError,
                           http.client.RemoteDisconnected, http.client.IncompleteRead)):
        return _Failure("reset", transient=True)
    if isinstance(reason, ssl.SSLError):
        return _Failure("ssl")
    if isinstance(reason, ValueError):
        return _Failure("bad_url")
    return _Failure(type(reason).__name__.lower(), transient=isinstance(reason, OSError))


def _robots_directive(values: list[str]) -> str:
    """The ``noai`` / ``noimageai`` directive among ``X-Robots-Tag`` header values, or ""."""
    for value in values:
        for part in value.split(","):
            token = part.strip().lower()
            if ":" in token:  # "name: directive" applies to that crawler; ours and "*" are honoured
                name, _, token = token.partition(":")
                if name.strip() not in ("imagenet-stream", "*", "all"):
                    continue
                token = token.strip()
            if token in _ROBOT_DIRECTIVES:
                return token
    return ""


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


__all__ = ["FAILED", "ROBOTS", "SUCCESS", "USER_AGENT", "DownloadPolicy", "Downloader", "Fetched"]

"""Object-store access: the only module that imports fsspec.

A :class:`Store` is a dataset root on any fsspec URL (local path, ``file://``,
``memory://``, ``s3://``, ``https://``...). It offers ranged reads with retries
and backoff on transient errors (chunked reads that resume at the byte offset are
``streaming.fetch.read_range``), and atomic writes (a partly written object is never
visible under its final name). Storage options (credentials) are never logged.
"""
from __future__ import annotations

import errno
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO, TypeVar

from fsspec.core import url_to_fs

from .errors import StorageError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Protocols whose single PUT (or completed multipart upload) is already atomic.
OBJECT_STORE_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "az", "adl", "oss", "r2"})

_TRANSIENT_ERRNOS = frozenset(
    {errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED, errno.ETIMEDOUT, errno.EPIPE, errno.EAGAIN}
)
_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: connection resets, timeouts, HTTP 5xx / throttling."""
    if isinstance(exc, _PERMANENT):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    status = getattr(exc, "status", None) or getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status >= 500 or status in (408, 429)
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return True
    name = type(exc).__name__.lower()
    return any(word in name for word in ("timeout", "connection", "disconnected", "payloaderror", "throttl"))


def with_retries(fn: Callable[[], T], what: str, retries: int = 5, backoff: float = 0.2,
                 max_backoff: float = 10.0) -> T:
    """Call ``fn``, retrying transient errors with exponential backoff; raise :class:`StorageError` at the end."""
    delay = backoff
    for attempt in range(retries + 1):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified just below
            if not is_transient(exc):
                raise
            if attempt == retries:
                raise StorageError(f"{what}: failed after {retries + 1} attempts: {exc!r}") from exc
            log.warning("%s: transient error (%s), retry %d/%d in %.1fs",
                        what, type(exc).__name__, attempt + 1, retries, delay)
            time.sleep(delay)
            delay = min(delay * 2, max_backoff)
    raise AssertionError("unreachable")


class Store:
    """A dataset root on an fsspec URL; object names are relative to it (``"index.json"``)."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None, *,
                 retries: int = 5, backoff: float = 0.2) -> None:
        if not url:
            raise StorageError("empty storage URL")
        self.url = url.rstrip("/") or url
        self.retries = retries
        self.backoff = backoff
        self.fs, self.root = url_to_fs(self.url, **dict(storage_options or {}))
        self.root = self.root.rstrip("/")
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self.protocol = protocols[0]
        self.is_object_store = any(p in OBJECT_STORE_PROTOCOLS for p in protocols)
        self.is_local = any(p in ("file", "local") for p in protocols)

    def __repr__(self) -> str:  # never show storage options
        return f"Store({self.url!r})"

    # -- naming ---------------------------------------------------------------------------
    def path(self, name: str) -> str:
        """The fsspec path of ``name`` under the root."""
        return f"{self.root}/{name}" if name else self.root

    def url_of(self, name: str) -> str:
        """A human-readable URL of ``name`` (for messages; carries no credentials)."""
        return f"{self.url}/{name}"

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        try:
            return with_retries(fn, what, self.retries, self.backoff)
        except (StorageError, *_PERMANENT):
            raise
        except OSError as exc:  # e.g. S3's 416 "range not satisfiable": name the object
            raise StorageError(f"{what}: {exc}") from exc

    # -- reading --------------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        return self._retry(lambda: self.fs.exists(self.path(name)), f"exists {self.url_of(name)}")

    def size(self, name: str) -> int:
        return int(self._retry(lambda: self.fs.size(self.path(name)), f"size {self.url_of(name)}"))

    def read(self, name: str, start: int | None = None, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` of ``name`` (whole object by default), retried on transient errors."""
        path = self.path(name)
        return self._retry(lambda: self.fs.cat_file(path, start=start, end=end),
                           f"read {self.url_of(name)}[{start}:{end}]")

    def open(self, name: str, mode: str = "rb", **kwargs: Any) -> BinaryIO:
        """An fsspec file object (streaming read or write, not atomic)."""
        return self.fs.open(self.path(name), mode, **kwargs)

    def list(self, prefix: str = "") -> list[str]:
        """Names of the objects directly under the root that start with ``prefix`` (sorted)."""
        try:
            entries = self._retry(lambda: self.fs.ls(self.root, detail=False), f"list {self.url}")
        except FileNotFoundError:
            return []
        names = [e.rstrip("/").rsplit("/", 1)[-1] for e in entries]
        return sorted(n for n in names if n.startswith(prefix))

    # -- writing --------------------------------------------------------------------------
    def makedirs(self) -> None:
        """Create the root where the file system has directories (no-op on object stores)."""
        if not self.is_object_store:
            self.fs.makedirs(self.root, exist_ok=True)

    def _temp_name(self, name: str) -> str:
        return f"{name}.tmp-{uuid.uuid4().hex[:12]}"

    def write_atomic(self, name: str, data: bytes) -> None:
        """Write ``data`` so that ``name`` appears only complete (temp name + rename, or one PUT)."""
        if self.is_object_store:
            self._retry(lambda: self.fs.pipe_file(self.path(name), data), f"write {self.url_of(name)}")
            return
        tmp = self._temp_name(name)
        try:
            self.fs.pipe_file(self.path(tmp), data)
            self._commit(tmp, name)
        except BaseException:
            self._discard(tmp)
            raise

    def put_file_atomic(self, local_path: str | os.PathLike[str], name: str) -> None:
        """Upload a local file so that ``name`` appears only complete."""
        local_path = os.fspath(local_path)
        if self.is_object_store:
            self._retry(lambda: self.fs.put_file(local_path, self.path(name)), f"upload {self.url_of(name)}")
            return
        tmp = self._temp_name(name)
        try:
            self.fs.put_file(local_path, self.path(tmp))
            self._commit(tmp, name)
        except BaseException:
            self._discard(tmp)
            raise

    def _commit(self, tmp: str, name: str) -> None:
        if self.is_local:
            os.replace(self.path(tmp), self.path(name))  # atomic on POSIX
        else:
            self.fs.mv(self.path(tmp), self.path(name))

    def _discard(self, name: str) -> None:
        try:
            self.fs.rm_file(self.path(name))
        except Exception:  # noqa: BLE001 - best effort cleanup of a temp object
            pass

    def remove(self, name: str) -> None:
        self._retry(lambda: self.fs.rm_file(self.path(name)), f"remove {self.url_of(name)}")


def expand_urls(pattern: str) -> list[str]:
    """Expand a webdataset-style brace pattern (``shard-{000000..000009}.tar``) into URLs."""
    from braceexpand import braceexpand  # installed with webdataset

    return list(braceexpand(pattern))


# -- fork safety --------------------------------------------------------------------------------
# fsspec clears its filesystem instance caches in a forked child (e.g. a DataLoader worker). An
# instance then garbage-collected in the child runs its finalizer, which closes the *parent's*
# connections through the event-loop (epoll) instance that fork shares between the two processes:
# the parent's loop stops seeing those sockets and its remote reads stall until they time out.
# Keeping every instance that existed at fork time referenced in the child (never used there)
# prevents the finalizers from running.
_PINNED_AT_FORK: list[Any] = []


def _pin_instances_before_fork() -> None:
    from fsspec import spec

    classes = list(getattr(spec, "_registered_classes", ()))
    _PINNED_AT_FORK[:] = [inst for cls in classes for inst in list(getattr(cls, "_cache", {}).values())]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_pin_instances_before_fork, after_in_parent=_PINNED_AT_FORK.clear)


__all__ = ["Store", "with_retries", "is_transient", "expand_urls"]

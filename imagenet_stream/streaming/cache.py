"""A local LRU cache of whole remote objects (shards, side indexes), safe to share between processes.

Layout of ``cache_dir``: one file per cached object, named ``<sha256 of (dataset URL, object name,
manifest sha256)>.<ext>`` (never derived from tar member names); hidden ``.<name>.<pid>.<rand>.tmp``
files while downloading; ``.locks/`` with one lock file per entry plus ``.locks/cache.lock``.

Concurrency (several DataLoader workers and DDP ranks on one machine):

* a download goes to a private temp file and appears under its final name only through
  ``os.replace`` (atomic on POSIX), so no reader ever sees a torn file;
* an exclusive ``fcntl.flock`` on the entry's lock file makes one process download while the
  others wait and then read the finished file (no duplicate downloads);
* opening an entry holds ``cache.lock`` shared; committing + evicting holds it exclusive, so an
  entry is never deleted between "exists" and "open". An evicted file that another process still
  has open stays readable until closed (POSIX unlink semantics).

LRU: every open touches the entry's mtime; eviction deletes the least recently used entries until
the total size is at most ``limit`` bytes (the entry just added is always kept, even when alone it
exceeds the limit). On systems without ``fcntl`` the locks are no-ops: writes stay atomic, but two
processes may download the same object.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from imagenet_stream.errors import ConfigError, ShardIntegrityError
from imagenet_stream.storage import Store
from imagenet_stream.streaming.fetch import DEFAULT_CHUNK, read_range

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

_EXT_RE = re.compile(r"\.([A-Za-z0-9]{1,8})$")
STALE_TEMP_SECONDS = 3600.0


@contextlib.contextmanager
def _flock(path: Path, exclusive: bool) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class ShardCache:
    """Whole-object LRU cache in ``cache_dir``, bounded by ``limit`` bytes (None: unbounded)."""

    def __init__(self, cache_dir: str | os.PathLike[str], limit: int | None = None, *,
                 chunk_size: int = DEFAULT_CHUNK) -> None:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ConfigError(f"cache_limit must be a number of bytes >= 0 or None, got {limit!r}")
        self.dir = Path(cache_dir).expanduser()
        self.limit = limit
        self.chunk_size = chunk_size
        self._locks = self.dir / ".locks"
        self._locks.mkdir(parents=True, exist_ok=True)
        self._global_lock = self._locks / "cache.lock"

    def __repr__(self) -> str:
        return f"ShardCache({str(self.dir)!r}, limit={self.limit})"

    # -- naming ----------------------------------------------------------------------------
    @staticmethod
    def entry_name(dataset_url: str, name: str, sha256: str | None) -> str:
        """The cache file name of object ``name`` of the dataset at ``dataset_url``."""
        digest = hashlib.sha256("\0".join((dataset_url, name, sha256 or "")).encode("utf-8")).hexdigest()
        match = _EXT_RE.search(name)
        return f"{digest[:40]}.{match.group(1).lower()}" if match else digest[:40]

    def path_of(self, store: Store, name: str, sha256: str | None = None) -> Path:
        return self.dir / self.entry_name(store.url, name, sha256)

    # -- use -------------------------------------------------------------------------------
    def open(self, store: Store, name: str, *, size: int | None = None, sha256: str | None = None,
             on_event: Callable[[str, int], None] | None = None) -> BinaryIO:
        """An open local file holding object ``name`` of ``store``, downloading it first if needed.

        ``size`` / ``sha256`` (from the manifest) are verified on download; a mismatch raises
        :class:`ShardIntegrityError` and caches nothing. ``on_event(counter, n)`` reports
        ``cache_hits`` / ``cache_misses`` / ``bytes_read`` / ``requests``.
        """
        report = on_event or (lambda _name, _n: None)
        entry = self.entry_name(store.url, name, sha256)
        path = self.dir / entry
        handle = self._open_existing(path, size)
        if handle is not None:
            report("cache_hits", 1)
            return handle
        with _flock(self._locks / f"{entry}.lock", exclusive=True):
            handle = self._open_existing(path, size)  # another process may have downloaded it meanwhile
            if handle is not None:
                report("cache_hits", 1)
                return handle
            report("cache_misses", 1)
            tmp = self._download(store, name, entry, size, sha256, report)
            try:
                with _flock(self._global_lock, exclusive=True):
                    os.replace(tmp, path)
                    handle = open(path, "rb")
                    self._evict(keep=path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            return handle

    def _open_existing(self, path: Path, size: int | None) -> BinaryIO | None:
        """The cached entry, opened; None when absent or of the wrong size (a short or empty file,
        say after a crash on a file system that lost unsynced data), which is then deleted."""
        with _flock(self._global_lock, exclusive=False):
            try:
                handle = open(path, "rb")
            except FileNotFoundError:
                return None
            st = os.fstat(handle.fileno())
            if (size is not None and st.st_size != size) or (size is None and st.st_size == 0):
                handle.close()
                log.warning("cache: %s has %d bytes, expected %s; downloading it again", path.name, st.st_size,
                            size if size is not None else "more than 0")
                self._unlink_if_same(path, st.st_ino)
                return None
            with contextlib.suppress(OSError):
                os.utime(path)  # LRU: most recently used now
            return handle

    @staticmethod
    def _unlink_if_same(path: Path, inode: int) -> None:
        """Delete ``path`` unless another process has meanwhile replaced it with a new file."""
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == inode:
                os.unlink(path)

    def drop(self, store: Store, name: str, sha256: str | None = None) -> None:
        """Forget the cached copy of ``name`` (it failed a check after it was read)."""
        path = self.path_of(store, name, sha256)
        with contextlib.suppress(OSError):
            self._unlink_if_same(path, os.stat(path).st_ino)

    def _download(self, store: Store, name: str, entry: str, size: int | None, sha256: str | None,
                  report: Callable[[str, int], None]) -> Path:
        expected = store.size(name) if size is None else size
        tmp = self.dir / f".{entry}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        digest = hashlib.sha256()
        written = 0
        try:
            with open(tmp, "wb") as out:
                pos = 0
                while pos < expected:
                    stop = min(pos + self.chunk_size, expected)
                    data = read_range(store, name, pos, stop, chunk_size=self.chunk_size,
                                      on_bytes=lambda n: report("bytes_read", n))
                    report("requests", 1)
                    out.write(data)
                    digest.update(data)
                    written += len(data)
                    if len(data) < stop - pos:
                        break
                    pos = stop
                out.flush()
                os.fsync(out.fileno())  # durable before it is published under its final name
            if written != expected:
                raise ShardIntegrityError(f"{store.url_of(name)}: {written} bytes, expected {expected}; not cached")
            if sha256 and digest.hexdigest() != sha256:
                raise ShardIntegrityError(f"{store.url_of(name)}: sha256 {digest.hexdigest()} does not match "
                                          f"the manifest ({sha256}); not cached")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return tmp

    # -- eviction --------------------------------------------------------------------------
    def entries(self) -> list[tuple[Path, int, float]]:
        """``(path, size, mtime)`` of every cached entry, least recently used first."""
        found = []
        for item in self.dir.iterdir():
            if item.name.startswith(".") or not item.is_file():
                continue
            with contextlib.suppress(FileNotFoundError):
                st = item.stat()
                found.append((item, st.st_size, st.st_mtime))
        return sorted(found, key=lambda e: (e[2], e[0].name))

    def total_bytes(self) -> int:
        return sum(size for _, size, _ in self.entries())

    def _evict(self, keep: Path) -> None:
        """Delete LRU entries until under the limit (caller holds the global lock exclusively)."""
        now = time.time()
        for item in self.dir.glob(".*.tmp"):  # temp files of crashed downloads
            with contextlib.suppress(FileNotFoundError):
                if now - item.stat().st_mtime > STALE_TEMP_SECONDS:
                    item.unlink()
        if self.limit is None:
            return
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        for path, size, _ in entries:
            if total <= self.limit:
                break
            if path == keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                log.debug("cache: evicted %s (%d bytes)", path.name, size)
            total -= size
        if total > self.limit:
            log.warning("cache %s: %s alone exceeds cache_limit=%d bytes", self.dir, keep.name, self.limit)


__all__ = ["ShardCache"]

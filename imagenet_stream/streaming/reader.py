"""Shard bytes -> samples: one ranged read per run of samples, sliced with the side index.

A worker's yield order is cut into *windows* (see :meth:`EpochPlan.windows`); each window draws
from a few contiguous in-shard ranges. For every window the reader sorts the needed samples, turns
them into byte ranges of the tar (neighbouring samples share one request; ranges closer than
``merge_gap`` bytes are merged), fetches the ranges on a background thread (bounded by
``prefetch`` ranges ahead of the consumer, so the next window downloads while this one decodes),
and yields the samples in the window's order as :class:`RawSample` with their JPEG bytes.

Memory: the fetched bytes of the current window plus up to ``prefetch`` ranges. A shard whose
bytes end early (truncated) loses only the samples past its end: they are skipped, counted
(``truncated_samples``, ``truncated_shards``) and the shard is logged once per process.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from imagenet_stream.errors import ManifestError, ShardIntegrityError, StorageError
from imagenet_stream.shards import SideIndex
from imagenet_stream.storage import Store
from imagenet_stream.streaming.cache import ShardCache
from imagenet_stream.streaming.fetch import DEFAULT_CHUNK, read_range

log = logging.getLogger(__name__)

DEFAULT_MERGE_GAP = 256 << 10
DEFAULT_PREFETCH = 8
_OPEN_FILES = 8
_JOIN_WARN_SECONDS = 30.0


@dataclass(frozen=True)
class ShardInfo:
    """What the reader needs to know of one shard (from the manifest or discovered)."""

    name: str                    # object name under the store root
    num_samples: int
    bytes: int | None = None     # size of the tar, when known
    sha256: str | None = None    # of the tar, when known (verified by the cache)
    index: str | None = None     # side index object name; None: ``side_indexes`` are given
    index_bytes: int | None = None
    index_sha256: str | None = None


@dataclass(frozen=True)
class RawSample:
    """One sample as fetched: where it is in the yield order and in the dataset, and its image bytes."""

    position: int                # index into the windows' concatenated order
    shard: int
    index: int                   # within the shard
    key: str
    label: int
    data: memoryview


@dataclass(frozen=True)
class _Range:
    window: int
    shard: int
    members: np.ndarray          # in-shard sample indices whose bytes lie in [begin, end)
    begin: int
    data: bytes
    index: SideIndex             # the shard's side index (slicing never looks it up again)


_END = object()


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc
    except (AttributeError, OSError):
        return None


_MALLOC_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Hand the heap's free pages back to the OS (glibc's ``malloc_trim``; a no-op elsewhere).

    A pass frees its range buffers (MBs each) as it goes, but glibc keeps freed memory in its
    arenas, so without this a process's RSS after an epoch depends on where its last windows
    happened to land. Called once per pass; it takes about a millisecond.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def byte_ranges(index: SideIndex, members: np.ndarray, merge_gap: int) -> list[tuple[np.ndarray, int, int]]:
    """Group sorted in-shard indices into ``(members, begin, end)`` tar byte ranges.

    Consecutive samples always share a range; two ranges are merged when the bytes between them
    are at most ``merge_gap`` (0: only adjacent samples share a request).
    """
    if members.size == 0:
        return []
    begins = index.offsets[members].astype(np.int64)
    ends = index.offsets[members + 1].astype(np.int64)
    breaks = np.flatnonzero(begins[1:] - ends[:-1] > merge_gap) + 1
    groups = np.split(np.arange(members.size), breaks)
    return [(members[g], int(begins[g[0]]), int(ends[g[-1]])) for g in groups]


class ShardReader:
    """Fetches samples of the shards of one dataset; create one per process (it holds threads' state).

    ``count(name, n)`` receives the counters of :mod:`imagenet_stream.streaming.shared`.
    ``side_indexes`` may pre-supply indexes (brace-URL datasets discover them up front).
    """

    def __init__(self, store: Store, shards: Sequence[ShardInfo], *, cache: ShardCache | None = None,
                 count: Callable[[str, int], None] | None = None,
                 side_indexes: dict[int, SideIndex] | None = None, merge_gap: int = DEFAULT_MERGE_GAP,
                 chunk_size: int = DEFAULT_CHUNK, prefetch: int = DEFAULT_PREFETCH) -> None:
        self.store = store
        self.shards = tuple(shards)
        self.cache = cache if (cache is not None and not store.is_local) else None
        self.count = count or (lambda _name, _n: None)
        self.merge_gap = int(merge_gap)
        self.chunk_size = int(chunk_size)
        self.prefetch = max(1, int(prefetch))
        self._indexes: dict[int, SideIndex] = dict(side_indexes or {})
        self._index_lock = threading.Lock()
        self._uncacheable: set[int] = set()
        self._read_shards: set[int] = set()
        self._truncated: set[int] = set()
        self._bad: set[int] = set()   # shards whose side index failed its checks

    def close(self) -> None:
        """Nothing to release between passes: each pass owns (and closes) its open cache files."""

    # -- side indexes ------------------------------------------------------------------------
    def side_index(self, shard: int) -> SideIndex:
        """The side index of ``shard`` (read once per reader, then kept).

        Its size and sha256 are checked against the manifest on every path (cache hit, download,
        direct read); a cached copy that fails is dropped and read again directly, a direct read
        that fails raises :class:`ShardIntegrityError`.
        """
        with self._index_lock:
            found = self._indexes.get(shard)
        if found is not None:
            return found
        info = self.shards[shard]
        if info.index is None:
            raise ManifestError(f"shard {info.name!r} has no side index")
        raw = None
        if self.cache is not None:
            with self.cache.open(self.store, info.index, size=info.index_bytes, sha256=info.index_sha256,
                                 on_event=self.count) as handle:
                raw = handle.read()
            if not self._index_ok(info, raw):
                self.cache.drop(self.store, info.index, info.index_sha256)
                self.count("cache_rejects", 1)
                raw = None
        if raw is None:
            want = info.index_bytes + 1 if info.index_bytes is not None else self.store.size(info.index)
            raw = read_range(self.store, info.index, 0, want, chunk_size=self.chunk_size,
                             on_bytes=lambda n: self.count("bytes_read", n))
            self.count("requests", 1)
            if not self._index_ok(info, raw):
                raise ShardIntegrityError(
                    f"{self.store.url_of(info.index)}: {len(raw)} bytes with sha256 "
                    f"{hashlib.sha256(raw).hexdigest()[:16]}..., the manifest says {info.index_bytes} bytes "
                    f"with sha256 {(info.index_sha256 or '?')[:16]}...")
        index = SideIndex.from_bytes(raw, where=self.store.url_of(info.index))
        if index.num_samples != info.num_samples:
            raise ManifestError(f"{self.store.url_of(info.index)}: {index.num_samples} samples, "
                                f"the manifest says {info.num_samples}")
        with self._index_lock:
            self._indexes[shard] = index
        return index

    @staticmethod
    def _index_ok(info: ShardInfo, raw: bytes) -> bool:
        if info.index_bytes is not None and len(raw) != info.index_bytes:
            return False
        return info.index_sha256 is None or hashlib.sha256(raw).hexdigest() == info.index_sha256

    # -- bytes -------------------------------------------------------------------------------
    def _cached_file(self, shard: int, files: OrderedDict[int, BinaryIO]) -> BinaryIO | None:
        """The open cache file of ``shard`` from this pass's table ``files`` (LRU of _OPEN_FILES)."""
        if self.cache is None or shard in self._uncacheable:
            return None
        handle = files.get(shard)
        if handle is not None:
            files.move_to_end(shard)
            return handle
        info = self.shards[shard]
        try:
            handle = self.cache.open(self.store, info.name, size=info.bytes, sha256=info.sha256,
                                     on_event=self.count)
        except ShardIntegrityError as exc:
            log.warning("%s; reading it without the cache", exc)
            self.count("cache_rejects", 1)
            self._uncacheable.add(shard)
            return None
        files[shard] = handle
        while len(files) > _OPEN_FILES:
            files.popitem(last=False)[1].close()
        return handle

    def fetch(self, shard: int, begin: int, end: int, files: OrderedDict[int, BinaryIO] | None = None) -> bytes:
        """Tar bytes ``[begin, end)`` of ``shard``; shorter only when the shard is truncated.

        ``files``: the calling pass's table of open cache files (None: read without the cache).
        """
        if shard not in self._read_shards:
            self._read_shards.add(shard)
            self.count("shards_read", 1)
        handle = self._cached_file(shard, files) if files is not None else None
        if handle is not None:
            data = os.pread(handle.fileno(), end - begin, begin)
        else:
            name = self.shards[shard].name
            try:
                data = read_range(self.store, name, begin, end, chunk_size=self.chunk_size,
                                  on_bytes=lambda n: self.count("bytes_read", n))
            except FileNotFoundError:
                data = None
            if data is None:
                raise StorageError(f"shard {self.store.url_of(name)} not found")
            self.count("requests", 1)
        if len(data) < end - begin:
            self._note_truncated(shard, begin + len(data))
        return data

    def _note_truncated(self, shard: int, size: int) -> None:
        if shard in self._truncated:
            return
        self._truncated.add(shard)
        self.count("truncated_shards", 1)
        log.warning("shard %s is truncated at byte %d: skipping the samples past its end",
                    self.store.url_of(self.shards[shard].name), size)

    # -- samples -----------------------------------------------------------------------------
    def read(self, windows: Sequence[tuple[np.ndarray, np.ndarray]]) -> Iterator[RawSample]:
        """Yield the samples of ``windows`` (each ``(shards, in-shard indices)`` in yield order).

        ``RawSample.position`` counts over all windows; skipped (truncated) samples leave gaps.
        A background thread fetches ahead; when the iterator is closed (exhausted, dropped after
        a ``break``, or garbage-collected) the thread is stopped and joined, and the cache files
        it opened are closed, so no two passes ever share a file table.
        """
        ranges: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        thread = threading.Thread(target=self._produce, args=(windows, ranges, stop), daemon=True,
                                  name="imagenet-stream-prefetch")
        thread.start()
        try:
            yield from self._consume(windows, ranges)
        finally:
            stop.set()
            with contextlib.suppress(queue.Empty):
                while True:
                    ranges.get_nowait()
            # The producer sees ``stop`` within 0.1 s, or after the fetch in progress (bounded by the
            # store's retry policy); the join waits for it, warning if that takes unusually long.
            thread.join(timeout=_JOIN_WARN_SECONDS)
            if thread.is_alive():
                log.warning("prefetch thread still busy %.0f s after its pass ended; waiting for it",
                            _JOIN_WARN_SECONDS)
                thread.join()
            release_free_memory()

    def _produce(self, windows: Sequence[tuple[np.ndarray, np.ndarray]], out: queue.Queue,
                 stop: threading.Event) -> None:
        def put(item: object) -> bool:
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        files: OrderedDict[int, BinaryIO] = OrderedDict()  # this pass's open cache files
        try:
            for w, (shards, indices) in enumerate(windows):
                for shard in np.unique(shards):
                    members = np.unique(indices[shards == shard])
                    index = self._usable_index(int(shard))
                    if index is None:
                        continue  # a bad shard: the consumer skips and counts its samples
                    for group, begin, end in byte_ranges(index, members, self.merge_gap):
                        if stop.is_set():
                            return
                        data = self.fetch(int(shard), begin, end, files)
                        if not put(_Range(w, int(shard), group, begin, data, index)):
                            return
                if not put((_END, w)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises
            put(exc)
        finally:
            while files:
                files.popitem(last=False)[1].close()

    def _usable_index(self, shard: int) -> SideIndex | None:
        """The side index of ``shard``, or None (counted and logged once) when it fails its checks."""
        if shard in self._bad:
            return None
        try:
            return self.side_index(shard)
        except (ShardIntegrityError, ManifestError) as exc:
            self._bad.add(shard)
            self.count("bad_shards", 1)
            log.error("skipping every sample of shard %s: %s", self.store.url_of(self.shards[shard].name), exc)
            return None

    def _consume(self, windows: Sequence[tuple[np.ndarray, np.ndarray]], ranges: queue.Queue) -> Iterator[RawSample]:
        position = 0
        for w, (shards, indices) in enumerate(windows):
            have: dict[tuple[int, int], _Range] = {}
            ended = False
            for shard, i in zip(shards.tolist(), indices.tolist()):
                while (shard, i) not in have and not ended:
                    item = ranges.get()
                    if isinstance(item, BaseException):
                        raise item
                    if isinstance(item, tuple):  # (_END, window)
                        ended = True
                        continue
                    for member in item.members.tolist():
                        have[(item.shard, member)] = item
                sample = self._slice(position, shard, i, have.get((shard, i)))
                position += 1
                if sample is not None:
                    yield sample
            while not ended:  # drain this window's end marker
                item = ranges.get()
                if isinstance(item, BaseException):
                    raise item
                ended = isinstance(item, tuple)

    def _slice(self, position: int, shard: int, i: int, found: _Range | None) -> RawSample | None:
        if found is None:
            self.count("unreadable_samples" if shard in self._bad else "truncated_samples", 1)
            if shard not in self._bad:
                self._note_truncated(shard, -1)
            return None
        index = found.index
        lo = int(index.image_offsets[i]) - found.begin
        hi = lo + int(index.image_sizes[i])
        if lo < 0 or hi > len(found.data):
            self.count("truncated_samples", 1)
            self._note_truncated(shard, -1)
            return None
        return RawSample(position, shard, i, index.keys[i], int(index.labels[i]), memoryview(found.data)[lo:hi])


__all__ = ["DEFAULT_MERGE_GAP", "DEFAULT_PREFETCH", "RawSample", "ShardInfo", "ShardReader", "byte_ranges"]

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
        self._files: OrderedDict[int, BinaryIO] = OrderedDict()
        self._uncacheable: set[int] = set()
        self._read_shards: set[int] = set()
        self._truncated: set[int] = set()

    def close(self) -> None:
        """Close the cached shard files this reader holds open."""
        while self._files:
            self._files.popitem(last=False)[1].close()

    # -- side indexes ------------------------------------------------------------------------
    def side_index(self, shard: int) -> SideIndex:
        """The side index of ``shard`` (read once per reader, then kept)."""
        with self._index_lock:
            found = self._indexes.get(shard)
        if found is not None:
            return found
        info = self.shards[shard]
        if info.index is None:
            raise ManifestError(f"shard {info.name!r} has no side index")
        if self.cache is not None:
            with self.cache.open(self.store, info.index, size=info.index_bytes, sha256=info.index_sha256,
                                 on_event=self.count) as handle:
                raw = handle.read()
        else:
            raw = read_range(self.store, info.index, 0, info.index_bytes or self.store.size(info.index),
                             chunk_size=self.chunk_size, on_bytes=lambda n: self.count("bytes_read", n))
            self.count("requests", 1)
        index = SideIndex.from_bytes(raw, where=self.store.url_of(info.index))
        if index.num_samples != info.num_samples:
            raise ManifestError(f"{self.store.url_of(info.index)}: {index.num_samples} samples, "
                                f"the manifest says {info.num_samples}")
        with self._index_lock:
            self._indexes[shard] = index
        return index

    # -- bytes -------------------------------------------------------------------------------
    def _cached_file(self, shard: int) -> BinaryIO | None:
        if self.cache is None or shard in self._uncacheable:
            return None
        handle = self._files.get(shard)
        if handle is not None:
            self._files.move_to_end(shard)
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
        self._files[shard] = handle
        while len(self._files) > _OPEN_FILES:
            self._files.popitem(last=False)[1].close()
        return handle

    def fetch(self, shard: int, begin: int, end: int) -> bytes:
        """Tar bytes ``[begin, end)`` of ``shard``; shorter only when the shard is truncated."""
        if shard not in self._read_shards:
            self._read_shards.add(shard)
            self.count("shards_read", 1)
        handle = self._cached_file(shard)
        if handle is not None:
            data = os.pread(handle.fileno(), end - begin, begin)
        else:
            name = self.shards[shard].name
            try:
                data = read_range(self.store, name, begin, end, chunk_size=self.chunk_size,
                                  on_bytes=lambda n: self.count("bytes_read", n))
            except FileNotFoundError as exc:
                raise StorageError(f"shard {self.store.url_of(name)} not found") from exc
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
        """
        ranges: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        thread = threading.Thread(target=self._produce, args=(windows, ranges, stop), daemon=True,
                                  name="imagenet-stream-prefetch")
        thread.start()
        try:
            yield from self._consume(windows, ranges)
        finally:
            # The producer sees ``stop`` within 0.1 s (or after its current fetch) and exits; it is
            # not joined, so closing never blocks (not even at interpreter shutdown).
            stop.set()
            with contextlib.suppress(queue.Empty):
                while True:
                    ranges.get_nowait()
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

        try:
            for w, (shards, indices) in enumerate(windows):
                for shard in np.unique(shards):
                    members = np.unique(indices[shards == shard])
                    index = self.side_index(int(shard))
                    for group, begin, end in byte_ranges(index, members, self.merge_gap):
                        if stop.is_set():
                            return
                        data = self.fetch(int(shard), begin, end)
                        if not put(_Range(w, int(shard), group, begin, data)):
                            return
                if not put((_END, w)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises
            put(exc)

    def _consume(self, windows: Sequence[tuple[np.ndarray, np.ndarray]], ranges: queue.Queue) -> Iterator[RawSample]:
        position = 0
        for w, (shards, indices) in enumerate(windows):
            have: dict[tuple[int, int], tuple[bytes, int]] = {}
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
                        have[(item.shard, member)] = (item.data, item.begin)
                found = have.get((shard, i))
                sample = self._slice(position, shard, i, found)
                position += 1
                if sample is not None:
                    yield sample
            while not ended:  # drain this window's end marker
                item = ranges.get()
                if isinstance(item, BaseException):
                    raise item
                ended = isinstance(item, tuple)

    def _slice(self, position: int, shard: int, i: int, found: tuple[bytes, int] | None) -> RawSample | None:
        index = self.side_index(shard)
        lo = hi = -1
        if found is not None:
            data, begin = found
            lo = int(index.image_offsets[i]) - begin
            hi = lo + int(index.image_sizes[i])
        if found is None or lo < 0 or hi > len(found[0]):
            self.count("truncated_samples", 1)
            self._note_truncated(shard, -1)
            return None
        return RawSample(position, shard, i, index.keys[i], int(index.labels[i]), memoryview(found[0])[lo:hi])


__all__ = ["DEFAULT_MERGE_GAP", "DEFAULT_PREFETCH", "RawSample", "ShardInfo", "ShardReader", "byte_ranges"]

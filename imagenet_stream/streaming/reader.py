"""Shard bytes -> samples: one ranged read per run of samples, sliced with the side index.

A worker's yield order is cut into *windows* (the dataset makes one per batch); each window draws
from a few contiguous in-shard ranges. For every window the reader sorts the needed samples, turns
them into byte ranges of the tar (neighbouring samples share one request; ranges closer than
``merge_gap`` bytes are merged), fetches the ranges on a background thread (bounded by
``prefetch`` ranges ahead of the consumer, so the next window downloads while this one decodes;
remote shards read without a local cache with ``fetch_threads`` requests in flight, more as latency
demands, handed on in order), and yields the samples in the window's order as :class:`RawSample`
with their JPEG bytes.

Memory: the fetched bytes of the current window plus up to ``prefetch`` + ``MAX_IN_FLIGHT`` (16)
ranges. A sample that cannot be read comes out as a :class:`MissingSample` in its place (the caller
substitutes it): the samples past the end of a truncated shard (``truncated_samples``, ``truncated_shards``), and every sample of a
shard that is gone, unreadable, or whose side index fails its checks (``unreadable_samples``,
``bad_shards``); each such shard is logged once per process.
"""
from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from imagenet_stream.errors import ManifestError, ShardIntegrityError
from imagenet_stream.format import SideIndex
from imagenet_stream.storage import Store
from imagenet_stream.streaming.cache import ShardCache
from imagenet_stream.streaming.fetch import DEFAULT_CHUNK, read_range
from imagenet_stream.streaming.reader_items import MissingSample, RawSample, ShardInfo, byte_ranges
from imagenet_stream.streaming.side_indexes import DEFAULT_INDEX_CACHE, SideIndexes

log = logging.getLogger(__name__)

DEFAULT_MERGE_GAP = 256 << 10
DEFAULT_PREFETCH = 8
#: Requests in flight at once per reading pass, for remote shards read without a local cache.
DEFAULT_FETCH_THREADS = 4
#: Most ranged requests one reader keeps in flight, once latency has made it raise its limit.
MAX_IN_FLIGHT = 16
#: Windows ahead whose side indexes a remote reader fetches before it needs them.
INDEX_LOOKAHEAD = 4
_OPEN_FILES = 8
_JOIN_WARN_SECONDS = 30.0


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


class ShardReader:
    """Fetches samples of the shards of one or more datasets; create one per process (it holds
    threads' state). Shard ``s``'s tar is in ``stores[shards[s].data_store]``, its side index in
    ``stores[shards[s].index_store]``.

    ``count(name, n)`` receives the counters of :mod:`imagenet_stream.streaming.shared_state`. Side
    indexes are kept in an LRU of at most ``index_cache_bytes`` (their encoded size).
    """

    def __init__(self, stores: Store | Sequence[Store], shards: Sequence[ShardInfo], *,
                 cache: ShardCache | None = None, count: Callable[[str, int], None] | None = None,
                 merge_gap: int = DEFAULT_MERGE_GAP, chunk_size: int = DEFAULT_CHUNK,
                 prefetch: int = DEFAULT_PREFETCH, index_cache_bytes: int = DEFAULT_INDEX_CACHE,
                 fetch_threads: int = DEFAULT_FETCH_THREADS) -> None:
        self.stores = (stores,) if isinstance(stores, Store) else tuple(stores)
        self.store = self.stores[0]
        self.shards = tuple(shards)
        self.cache = cache
        counted = count or (lambda _name, _n: None)
        count_lock = threading.Lock()  # the fetching threads and the consumer all count

        def locked_count(name: str, n: int) -> None:
            with count_lock:
                counted(name, n)
        self.count = locked_count
        self.merge_gap = int(merge_gap)
        self.chunk_size = int(chunk_size)
        self.prefetch = max(1, int(prefetch))
        self.fetch_threads = max(1, int(fetch_threads))
        self.in_flight_limit = self.fetch_threads  # raised by passes that find the store slow to answer
        self._indexes = SideIndexes(self.stores, self.shards, cache=cache, count=self.count,
                                    chunk_size=self.chunk_size, capacity=int(index_cache_bytes))
        self._uncacheable: set[int] = set()
        self._read_shards: set[int] = set()
        self._truncated: set[int] = set()
        self._bad: set[int] = set()   # shards whose side index failed its checks

    def close(self) -> None:
        """Nothing to release between passes: each pass owns (and closes) its open cache files."""

    # -- side indexes ------------------------------------------------------------------------
    def side_index(self, shard: int) -> SideIndex:
        """The side index of ``shard`` (see :meth:`SideIndexes.get`)."""
        return self._indexes.get(shard)

    @property
    def cached_index_bytes(self) -> int:
        """Encoded bytes of the side indexes this reader holds (at most ``index_cache_bytes``)."""
        return self._indexes.bytes

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
        store = self.stores[info.data_store]
        if store.is_local:
            return None
        try:
            handle = self.cache.open(store, info.name, size=info.bytes, sha256=info.sha256,
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
        ``FileNotFoundError`` / ``PermissionError`` when the shard is gone or forbidden.

        ``files``: the calling pass's table of open cache files (None: read without the cache).
        """
        if shard not in self._read_shards:
            self._read_shards.add(shard)
            self.count("shards_read", 1)
        handle = self._cached_file(shard, files) if files is not None else None
        if handle is not None:
            data = os.pread(handle.fileno(), end - begin, begin)
        else:
            info = self.shards[shard]
            store = self.stores[info.data_store]
            data = read_range(store, info.name, begin, end, chunk_size=self.chunk_size,
                              on_bytes=lambda n: self.count("bytes_read", n))
            self.count("requests", 1)
        if len(data) < end - begin:
            self._note_truncated(shard, begin + len(data))
        return data

    def _note_truncated(self, shard: int, size: int) -> None:
        if shard in self._truncated:
            return
        self._truncated.add(shard)
        self.count("truncated_shards", 1)
        info = self.shards[shard]
        where = f"at byte {size}" if size >= 0 else "(shorter than its side index says)"
        log.warning("shard %s is truncated %s: the samples past its end are replaced by substitutes",
                    self.stores[info.data_store].url_of(info.name), where)

    # -- samples -----------------------------------------------------------------------------
    def read(self, windows: Sequence[tuple[np.ndarray, np.ndarray]], *,
             quiet: bool = False) -> Iterator[RawSample | MissingSample]:
        """Yield the samples of ``windows`` (each ``(shards, in-shard indices)`` in yield order), one
        item per requested sample: a :class:`RawSample`, or a :class:`MissingSample` in its place.

        ``position`` counts over all windows. ``windows`` is read twice (by the fetching thread
        and by the consumer), so it may be a lazy sequence that computes its items on demand.
        ``quiet``: missing samples are not counted (a search for a substitute, not the epoch's own samples).
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
            yield from self._consume(windows, ranges, quiet)
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
        # Remote ranges without a local cache are fetched by several threads at once (an object store
        # answers each request after tens of ms: one at a time would starve the decoder) and handed
        # on in order. How many are in flight adapts to the latency: it starts at ``fetch_threads``
        # and grows (up to ``MAX_IN_FLIGHT``) each time the consumer has drained the queue while the
        # oldest request is still unanswered. Window ends queue behind the requests, so requests stay
        # in flight across windows; the next windows' side indexes are fetched ahead.
        pool = (ThreadPoolExecutor(MAX_IN_FLIGHT, thread_name_prefix="imagenet-stream-fetch")
                if self.fetch_threads > 1 and self.cache is None else None)
        pending: deque[tuple] = deque()  # ("range", w, shard, group, begin, index, future) | ("end", w)
        in_flight = [0, self.in_flight_limit]  # ranges in ``pending``, the limit (learned by earlier passes too)
        index_fetches: dict[int, Future] = {}  # side indexes fetched ahead, not yet needed

        def hand_on_oldest() -> bool:
            entry = pending.popleft()
            if entry[0] == "end":
                return put((_END, entry[1]))
            _, w, shard, group, begin, index, future = entry
            in_flight[0] -= 1
            if not future.done() and out.empty() and in_flight[1] < MAX_IN_FLIGHT:
                in_flight[1] += 1  # the consumer is starving on this request: keep more in flight
                self.in_flight_limit = max(self.in_flight_limit, in_flight[1])
            try:
                data = future.result()
            except (FileNotFoundError, PermissionError) as exc:
                self._mark_bad(shard, exc)
                data = None
            if data is None:
                return True  # the consumer substitutes what this range held
            return put(_Range(w, shard, group, begin, data, index))

        looked_ahead = [0]  # windows before this one have had their side indexes asked for

        def fetch_indexes_ahead(w: int) -> None:
            first, looked_ahead[0] = max(w + 1, looked_ahead[0]), min(w + 1 + INDEX_LOOKAHEAD, len(windows))
            for ahead in range(first, looked_ahead[0]):
                for x in np.unique(windows[ahead][0]).tolist():
                    if (x not in index_fetches and x not in self._bad and not self._indexes.holds(x)
                            and not self.stores[self.shards[x].index_store].is_local):
                        index_fetches[x] = pool.submit(self._usable_index, int(x))  # type: ignore[union-attr]

        try:
            for w, (shards, indices) in enumerate(windows):
                needed = [int(x) for x in np.unique(shards)]
                for x in needed:  # fetched ahead: wait for that request rather than send another
                    if x in index_fetches:
                        index_fetches.pop(x).result()
                if pool is not None:  # the window's side indexes not held yet, fetched at once
                    missing = [x for x in needed if not self._indexes.holds(x) and x not in self._bad]
                    if len(missing) > 1:
                        list(pool.map(self._usable_index, missing))
                indexes = {x: self._usable_index(x) for x in needed}
                if pool is not None:
                    fetch_indexes_ahead(w)
                for shard in needed:
                    members = np.unique(indices[shards == shard])
                    index = indexes[shard]
                    if index is None:
                        continue  # a bad shard: the consumer skips and counts its samples
                    remote = pool is not None and not self.stores[self.shards[shard].data_store].is_local
                    for group, begin, end in byte_ranges(index, members, self.merge_gap):
                        if stop.is_set():
                            return
                        if remote:
                            while in_flight[0] >= in_flight[1]:
                                if not hand_on_oldest():
                                    return
                            pending.append(("range", w, shard, group, begin, index,
                                            pool.submit(self.fetch, shard, begin, end, None)))
                            in_flight[0] += 1
                            continue
                        while pending:  # keep the order: what is in flight goes first
                            if not hand_on_oldest():
                                return
                        if shard in self._bad:
                            break
                        try:
                            data = self.fetch(shard, begin, end, files)
                        except (FileNotFoundError, PermissionError) as exc:
                            self._mark_bad(shard, exc)
                            break  # the consumer substitutes every sample of this shard
                        if not put(_Range(w, shard, group, begin, data, index)):
                            return
                if pending:
                    pending.append(("end", w))  # after this window's requests, which stay in flight
                elif not put((_END, w)):
                    return
            while pending:
                if not hand_on_oldest():
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises
            put(exc)
        finally:
            if pool is not None:
                for entry in pending:
                    if entry[0] == "range":
                        entry[-1].cancel()
                pool.shutdown(wait=True)
            while files:
                files.popitem(last=False)[1].close()

    def _usable_index(self, shard: int) -> SideIndex | None:
        """The side index of ``shard``, or None (counted and logged once) when it fails its checks."""
        if shard in self._bad:
            return None
        try:
            return self.side_index(shard)
        except (ShardIntegrityError, ManifestError, FileNotFoundError, PermissionError) as exc:
            self._mark_bad(shard, exc)
            return None

    def _mark_bad(self, shard: int, exc: BaseException) -> None:
        if shard in self._bad:
            return
        self._bad.add(shard)
        self.count("bad_shards", 1)
        info = self.shards[shard]
        log.error("cannot read shard %s (%s): its samples are replaced by substitutes",
                  self.stores[info.data_store].url_of(info.name), exc)

    def _consume(self, windows: Sequence[tuple[np.ndarray, np.ndarray]], ranges: queue.Queue,
                 quiet: bool) -> Iterator[RawSample | MissingSample]:
        position = 0
        for w, (shards, indices) in enumerate(windows):
            have: dict[tuple[int, int], _Range] = {}
            ended = False
            for shard, i in zip(shards.tolist(), indices.tolist()):
                while (shard, i) not in have and not ended:
                    item = self._next_range(ranges)
                    if isinstance(item, BaseException):
                        raise item
                    if isinstance(item, tuple):  # (_END, window)
                        ended = True
                        continue
                    for member in item.members.tolist():
                        have[(item.shard, member)] = item
                yield self._slice(position, shard, i, have.get((shard, i)), quiet)
                position += 1
            while not ended:  # drain this window's end marker
                item = self._next_range(ranges)
                if isinstance(item, BaseException):
                    raise item
                ended = isinstance(item, tuple)

    def _next_range(self, ranges: queue.Queue) -> object:
        """The next fetched range; the time spent waiting for it is counted (``wait_ns``)."""
        try:
            return ranges.get_nowait()
        except queue.Empty:
            started = time.perf_counter_ns()
            item = ranges.get()
            self.count("wait_ns", time.perf_counter_ns() - started)
            return item

    def _slice(self, position: int, shard: int, i: int, found: _Range | None,
               quiet: bool = False) -> RawSample | MissingSample:
        if found is None:
            reason = "unreadable" if shard in self._bad else "truncated"
        else:
            index = found.index
            lo = int(index.image_offsets[i]) - found.begin
            hi = lo + int(index.image_sizes[i])
            reason = "truncated" if lo < 0 or hi > len(found.data) else ""
        if reason:
            if not quiet:
                self.count(f"{reason}_samples", 1)
                if reason == "truncated":
                    self._note_truncated(shard, -1)
            return MissingSample(position, shard, i, reason)
        return RawSample(position, shard, i, index.keys[i], int(index.labels[i]), memoryview(found.data)[lo:hi])


__all__ = ["DEFAULT_INDEX_CACHE", "DEFAULT_MERGE_GAP", "DEFAULT_PREFETCH", "MissingSample", "RawSample", "ShardInfo",
           "ShardReader", "byte_ranges"]

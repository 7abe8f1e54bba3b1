"""The side indexes one shard reader holds: read, checked against the manifest, kept in an LRU.

A side index is read once (through the local shard cache when there is one), its size and sha256
checked on every path (cache hit, download, direct read), and kept while the LRU's encoded bytes
stay within ``capacity``.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

from imagenet_stream.errors import ManifestError, ShardIntegrityError
from imagenet_stream.format import SideIndex
from imagenet_stream.storage import Store
from imagenet_stream.streaming.cache import ShardCache
from imagenet_stream.streaming.fetch import read_range
from imagenet_stream.streaming.reader_items import ShardInfo

#: Side indexes a reader keeps (their encoded bytes): about 680 shards of 1,000 samples.
DEFAULT_INDEX_CACHE = 64 << 20


class SideIndexes:
    """Shard number -> its :class:`SideIndex`, for the shards ``shards`` on ``stores``; thread-safe."""

    def __init__(self, stores: Sequence[Store], shards: Sequence[ShardInfo], *, cache: ShardCache | None,
                 count: Callable[[str, int], None], chunk_size: int, capacity: int = DEFAULT_INDEX_CACHE) -> None:
        self.stores, self.shards, self.cache, self.count = stores, shards, cache, count
        self.chunk_size, self.capacity = chunk_size, capacity
        self._held: OrderedDict[int, tuple[SideIndex, int]] = OrderedDict()
        self.bytes = 0
        self._lock = threading.Lock()

    def holds(self, shard: int) -> bool:
        with self._lock:
            return shard in self._held

    def get(self, shard: int) -> SideIndex:
        """The side index of ``shard`` (from the bounded LRU, else read and checked).

        A cached copy that fails its checks is dropped and read again directly; a direct read that
        fails raises :class:`ShardIntegrityError`.
        """
        with self._lock:
            found = self._held.get(shard)
            if found is not None:
                self._held.move_to_end(shard)
                return found[0]
        info = self.shards[shard]
        if info.index is None:
            raise ManifestError(f"shard {info.name!r} has no side index")
        store = self.stores[info.index_store]
        raw = None
        if self.cache is not None and not store.is_local:
            with self.cache.open(store, info.index, size=info.index_bytes, sha256=info.index_sha256,
                                 on_event=self.count) as handle:
                raw = handle.read()
            if not _matches(info, raw):
                self.cache.drop(store, info.index, info.index_sha256)
                self.count("cache_rejects", 1)
                raw = None
        if raw is None:
            want = info.index_bytes + 1 if info.index_bytes is not None else store.size(info.index)
            raw = read_range(store, info.index, 0, want, chunk_size=self.chunk_size,
                             on_bytes=lambda n: self.count("bytes_read", n))
            self.count("requests", 1)
            if not _matches(info, raw):
                raise ShardIntegrityError(
                    f"{store.url_of(info.index)}: {len(raw)} bytes with sha256 "
                    f"{hashlib.sha256(raw).hexdigest()[:16]}..., the manifest says {info.index_bytes} bytes "
                    f"with sha256 {(info.index_sha256 or '?')[:16]}...")
        index = SideIndex.from_bytes(raw, where=store.url_of(info.index))
        if index.num_samples != info.num_samples:
            raise ManifestError(f"{store.url_of(info.index)}: {index.num_samples} samples, "
                                f"the manifest says {info.num_samples}")
        with self._lock:
            if shard not in self._held:
                self._held[shard] = (index, len(raw))
                self.bytes += len(raw)
            while self.bytes > self.capacity and len(self._held) > 1:
                _, (_, size) = self._held.popitem(last=False)
                self.bytes -= size
        return index


def _matches(info: ShardInfo, raw: bytes) -> bool:
    """Whether ``raw`` has the size and sha256 the manifest gives the side index (where it gives them)."""
    if info.index_bytes is not None and len(raw) != info.index_bytes:
        return False
    return info.index_sha256 is None or hashlib.sha256(raw).hexdigest() == info.index_sha256


__all__ = ["DEFAULT_INDEX_CACHE", "SideIndexes"]

"""Where a dataset's shards come from: a dataset root with ``index.json``.

``index.json`` gives every shard's name, sample count, size, sha256 and side index, and
``labels.bin`` every sample's class (read only to select or balance classes). Opening costs one
small read. The shards and their side indexes may live elsewhere (``shards_at`` / ``indexes_at``:
a foreign dataset indexed by :mod:`.foreign`, or a new dataset version over its parent's shards).
Shard URLs without a manifest (brace patterns, one ``.tar``) are indexed by :mod:`.foreign`.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from imagenet_stream.errors import ConfigError, ManifestError
from imagenet_stream.format import MANIFEST_NAME, SHARD_SUFFIX, Manifest
from imagenet_stream.storage import Store
from imagenet_stream.streaming.fetch import read_range
from imagenet_stream.streaming.reader import ShardInfo, ShardReader

log = logging.getLogger(__name__)

_INDEX_READERS = 16  # side indexes read at once when a dataset has no labels.bin


@dataclass(frozen=True)
class Source:
    """A dataset's shards and class names, ready for planning and reading."""

    root: str                                  # the manifest's folder URL
    shards_root: str                           # where the tars are
    indexes_root: str                          # where the side indexes are
    shards: tuple[ShardInfo, ...]
    wnids: tuple[str, ...]                     # class index -> wnid (a foreign dataset's placeholders)
    manifest: Manifest | None                  # dropped once the dataset is built (never pickled into workers)
    skipped: dict[str, int] = field(default_factory=dict)  # samples a foreign index left out, by counter
    declared: bool = True                      # False: a foreign index's placeholder class names

    @property
    def sample_counts(self) -> list[int]:
        return [s.num_samples for s in self.shards]

    @property
    def num_classes(self) -> int:
        return len(self.wnids)


def is_brace_pattern(url: str) -> bool:
    """True for a webdataset-style brace URL (``shard-{000000..000009}.tar``)."""
    return "{" in url and "}" in url


#: Compressed shard suffixes: webdataset reads them as streams, ranged reads cannot.
_COMPRESSED_SHARDS = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar.zst")


def is_shard_url(url: str) -> bool:
    """True for a URL naming shards directly (a brace pattern or one ``.tar``), not a dataset root."""
    if url.lower().endswith(_COMPRESSED_SHARDS):
        raise ConfigError(f"{url}: compressed shards cannot be streamed with ranged reads; "
                          "decompress them to plain .tar files")
    return is_brace_pattern(url) or url.rstrip("/").endswith(SHARD_SUFFIX)


def root_of(url: str) -> str:
    """The dataset root of ``url``: the URL itself, or its folder when it names ``index.json``."""
    url = url.rstrip("/")
    if url.endswith("/" + MANIFEST_NAME):
        return url[: -len(MANIFEST_NAME) - 1]
    return url


def manifest_source(store: Store, manifest: Manifest | None = None) -> Source:
    """The source of a dataset root holding ``index.json`` (``manifest``: that file, already loaded)."""
    manifest = manifest if manifest is not None else Manifest.load(store)
    shards = tuple(ShardInfo(name=s.name, num_samples=s.num_samples, bytes=s.bytes, sha256=s.sha256,
                             index=s.index, index_bytes=s.index_bytes, index_sha256=s.index_sha256)
                   for s in manifest.shards)
    foreign = manifest.extra.get("foreign") or {}
    skipped = dict(foreign.get("skipped") or {})
    return Source(root=store.url, shards_root=manifest.shards_at or store.url,
                  indexes_root=manifest.indexes_at or store.url, shards=shards, wnids=manifest.classes.wnids,
                  manifest=manifest, skipped={str(k): int(v) for k, v in skipped.items()},
                  declared=bool(foreign.get("classes_declared", True)))


def read_labels(store: Store, manifest: Manifest) -> list[np.ndarray] | None:
    """Every sample's class index from ``labels.bin``, split per shard; None when there is none."""
    entry = manifest.labels
    if entry is None:
        return None
    raw = read_range(store, entry.name, 0, entry.bytes + 1)  # one byte more: a longer file is caught too
    where = store.url_of(entry.name)
    if len(raw) != entry.bytes or hashlib.sha256(raw).hexdigest() != entry.sha256:
        raise ManifestError(f"{where}: {len(raw)} bytes with sha256 {hashlib.sha256(raw).hexdigest()[:16]}..., "
                            f"the manifest says {entry.bytes} bytes with sha256 {entry.sha256[:16]}...")
    labels = np.frombuffer(raw, dtype=np.dtype(entry.dtype))
    if labels.size != manifest.num_samples:
        raise ManifestError(f"{where}: {labels.size} labels, expected {manifest.num_samples}")
    return np.split(labels.astype(np.int32), np.cumsum(manifest.sample_counts)[:-1])


def source_reader(source: Source, store: Store) -> ShardReader:
    """A reader of ``source``'s shards (store 0) and side indexes (store 1), wherever they live,
    with ``store``'s options where they are on its protocol."""
    stores = (store.elsewhere(source.shards_root), store.elsewhere(source.indexes_root))
    return ShardReader(stores, [replace(s, data_store=0, index_store=1) for s in source.shards])


def labels_per_shard(source: Source, store: Store) -> list[np.ndarray]:
    """Every sample's class per shard: ``labels.bin``, else every side index (``_INDEX_READERS`` at once)."""
    labels = read_labels(store, source.manifest) if source.manifest is not None else None
    if labels is not None:
        return labels
    log.info("%s has no labels.bin: reading its %d side indexes", store.display_url, len(source.shards))
    reader = source_reader(source, store)
    with ThreadPoolExecutor(_INDEX_READERS) as pool:
        return list(pool.map(lambda s: reader.side_index(s).labels.astype(np.int32), range(len(source.shards))))


def require_ranged_reads(store: Store, source: Source) -> None:
    """Fail at once, with what to do, when the HTTP server of ``source``'s shards ignores ``Range``
    (``python -m http.server`` does, and some CDNs): every read would return the whole shard. One
    1-byte request of the first non-empty shard, on HTTP(S) only; object stores honour ranges."""
    if store.protocol not in ("http", "https"):
        return
    foreign = (source.manifest.extra.get("foreign") or {}) if source.manifest is not None else {}
    if foreign.get("ranged_reads") is True:  # checked when the foreign index was built
        return
    shard = next((s for s in source.shards if s.num_samples), None)
    if shard is None:
        return
    got = len(store.read(shard.name, 0, 1))
    if got != 1:
        raise ConfigError(
            f"the server of {store.url_of(shard.name)} ignores HTTP Range requests (asked for 1 byte, got {got}): "
            "the streamer reads byte ranges of each shard. Serve the folder with a server that honours Range "
            "(nginx, caddy, `npx http-server`, an object store; not `python -m http.server`), or copy the "
            "shards to a local folder or an object store first")


def declared_targets(sources: Sequence[Source]) -> list[str] | None:
    """The class space the datasets' versions declare (a split's kept classes), when they all declare
    the same one; targets then index it. None: each dataset's own classes."""
    declared = {s.manifest.targets.wnids if s.manifest is not None and s.manifest.targets is not None else None
                for s in sources}
    only = declared.pop() if len(declared) == 1 else None
    return list(only) if only else None


__all__ = ["Source", "declared_targets", "require_ranged_reads", "is_brace_pattern", "is_shard_url", "labels_per_shard", "manifest_source", "read_labels",
           "root_of", "source_reader"]

"""Where a dataset's shards come from: a dataset root with ``index.json``, or a brace URL pattern.

* **Dataset root** (the normal case): ``index.json`` gives every shard's name, sample count, size,
  sha256 and side index, and ``labels.bin`` every sample's class (read only for class subsets).
  Opening costs one small read.
* **Brace URLs** (``.../shard-{000000..000099}.tar``, webdataset style) without a manifest: sample
  counts and byte offsets are *discovered* when the dataset is created. A shard with a sibling
  side index (``shard-000000.idx``, as written by ``imagenet-stream shard``) costs one small read;
  any other shard is **read in full once** and its tar walked (``KEY.jpg``/``.jpeg``/``.png``/
  ``.webp`` image + ``KEY.cls`` class index per sample). That first pass costs as much I/O as an
  epoch, in the main process, so it suits small or local shard sets; write a manifest for large
  remote ones. Class names are unknown in this mode (``classes=`` needs a manifest).
"""
from __future__ import annotations

import io
import logging
import tarfile
from dataclasses import dataclass, field

import numpy as np

from imagenet_stream.errors import ConfigError, ManifestError, ShardIntegrityError
from imagenet_stream.shards import (CLASS_EXT, INDEX_SUFFIX, MANIFEST_NAME, SHARD_SUFFIX, Manifest, SideIndex,
                                    decode_label, index_name, split_member)
from imagenet_stream.storage import Store, expand_urls
from imagenet_stream.streaming.fetch import read_range
from imagenet_stream.streaming.reader import ShardInfo

log = logging.getLogger(__name__)

#: Member extensions accepted as a sample's image in shards discovered without a side index.
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
_BLOCK = 512


@dataclass(frozen=True)
class Source:
    """A dataset's shards and class names, ready for planning and reading."""

    root: str                                  # the store root URL
    shards: tuple[ShardInfo, ...]
    wnids: tuple[str, ...] | None              # class index -> wnid; None when unknown (brace URLs)
    manifest: Manifest | None = None
    side_indexes: dict[int, SideIndex] = field(default_factory=dict)  # discovered up front (brace URLs)

    @property
    def sample_counts(self) -> list[int]:
        return [s.num_samples for s in self.shards]

    @property
    def num_classes(self) -> int:
        if self.wnids is not None:
            return len(self.wnids)
        labels = [int(ix.labels.max()) for ix in self.side_indexes.values() if ix.num_samples]
        return max(labels) + 1 if labels else 0


def is_brace_pattern(url: str) -> bool:
    """True for a webdataset-style brace URL (``shard-{000000..000009}.tar``)."""
    return "{" in url and "}" in url


def root_of(url: str) -> str:
    """The dataset root of ``url``: the URL itself, or its folder when it names ``index.json``."""
    url = url.rstrip("/")
    if url.endswith("/" + MANIFEST_NAME):
        return url[: -len(MANIFEST_NAME) - 1]
    return url


def manifest_source(store: Store) -> Source:
    """The source of a dataset root holding ``index.json``."""
    manifest = Manifest.load(store)
    shards = tuple(ShardInfo(name=s.name, num_samples=s.num_samples, bytes=s.bytes, sha256=s.sha256,
                             index=s.index, index_bytes=s.index_bytes, index_sha256=s.index_sha256)
                   for s in manifest.shards)
    return Source(root=store.url, shards=shards, wnids=manifest.classes.wnids, manifest=manifest)


def read_labels(store: Store, manifest: Manifest) -> list[np.ndarray] | None:
    """Every sample's class index from ``labels.bin``, split per shard; None when there is none."""
    entry = manifest.labels
    if entry is None:
        return None
    raw = read_range(store, entry.name, 0, entry.bytes)
    where = store.url_of(entry.name)
    try:
        labels = np.frombuffer(raw, dtype=np.dtype(entry.dtype))
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"{where}: cannot read as {entry.dtype!r}: {exc}") from exc
    if len(raw) != entry.bytes or labels.size != manifest.num_samples:
        raise ManifestError(f"{where}: {labels.size} labels in {len(raw)} bytes, expected "
                            f"{manifest.num_samples} in {entry.bytes}")
    return np.split(labels.astype(np.int64), np.cumsum(manifest.sample_counts)[:-1])


def brace_source(pattern: str, storage_options: dict | None = None) -> Source:
    """The source of a brace URL pattern; discovers counts and offsets (see the module docstring)."""
    urls = expand_urls(pattern)
    parents = {u.rsplit("/", 1)[0] for u in urls}
    if len(parents) != 1:
        raise ConfigError(f"brace URL {pattern!r}: all shards must be in one folder, got {sorted(parents)[:3]}")
    store = Store(parents.pop(), storage_options)
    names = [u.rsplit("/", 1)[1] for u in urls]
    if len(set(names)) != len(names):
        raise ConfigError(f"brace URL {pattern!r} names a shard twice")
    shards: list[ShardInfo] = []
    indexes: dict[int, SideIndex] = {}
    for i, name in enumerate(names):
        index = discover_index(store, name)
        indexes[i] = index
        shards.append(ShardInfo(name=name, num_samples=index.num_samples))
    log.info("discovered %d samples in %d shards of %s", sum(s.num_samples for s in shards), len(shards), pattern)
    return Source(root=store.url, shards=tuple(shards), wnids=None, side_indexes=indexes)


def discover_index(store: Store, name: str) -> SideIndex:
    """A shard's side index: its sibling ``.idx`` when present, else built by reading the whole tar."""
    if name.endswith(SHARD_SUFFIX) and store.exists(index_name(name)):
        idx = index_name(name)
        return SideIndex.from_bytes(store.read(idx), where=store.url_of(idx))
    if name.endswith(INDEX_SUFFIX):
        raise ConfigError(f"{store.url_of(name)} is a side index, not a shard")
    return index_from_tar(store.read(name), name)


def index_from_tar(data: bytes, shard: str) -> SideIndex:
    """Build the side index of a webdataset-style tar held in memory (image + ``.cls`` per key).

    Samples lacking an image or a class are skipped; a tar cut short keeps the complete samples
    before the cut (both logged).
    """
    groups: list[dict] = []  # {"key", "start", "end", "image": (offset, size), "label"}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                key, ext = split_member(info.name)
                end = info.offset_data + -(-info.size // _BLOCK) * _BLOCK
                if not groups or groups[-1]["key"] != key:
                    groups.append({"key": key, "start": info.offset, "end": end, "image": None, "label": None})
                group = groups[-1]
                group["end"] = end
                ext = ext.lower()
                if ext in IMAGE_EXTS and group["image"] is None:
                    group["image"] = (info.offset_data, info.size)
                elif ext == CLASS_EXT:
                    group["label"] = decode_label(data[info.offset_data:info.offset_data + info.size])
    except (tarfile.TarError, EOFError) as exc:
        log.warning("shard %s: tar ends early (%s); keeping the complete samples before it", shard, exc)
        if groups and groups[-1]["end"] > len(data):
            groups.pop()
    except ShardIntegrityError as exc:
        raise ShardIntegrityError(f"shard {shard}: {exc}") from exc
    kept = [g for g in groups if g["image"] is not None and g["label"] is not None and g["end"] <= len(data)]
    if len(kept) < len(groups):
        log.warning("shard %s: skipped %d sample(s) without an image or a .cls class", shard, len(groups) - len(kept))
    return SideIndex(
        shard=shard,
        keys=tuple(g["key"] for g in kept),
        labels=np.array([g["label"] for g in kept], dtype=np.uint32),
        offsets=np.array([g["start"] for g in kept] + ([kept[-1]["end"]] if kept else [0]), dtype=np.uint64),
        image_offsets=np.array([g["image"][0] for g in kept], dtype=np.uint64),
        image_sizes=np.array([g["image"][1] for g in kept], dtype=np.uint32),
    )


__all__ = ["IMAGE_EXTS", "Source", "brace_source", "discover_index", "index_from_tar", "is_brace_pattern",
           "manifest_source", "read_labels", "root_of"]

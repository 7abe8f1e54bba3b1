"""Where a dataset's shards come from: a dataset root with ``index.json``, or a brace URL pattern.

* **Dataset root** (the normal case): ``index.json`` gives every shard's name, sample count, size,
  sha256 and side index, and ``labels.bin`` every sample's class (read only for class subsets).
  Opening costs one small read.
* **Brace URLs** (``.../shard-{000000..000099}.tar``, webdataset style) or a single shard URL
  (``.../x.tar``) without a manifest: sample counts and byte offsets are *discovered* when the
  dataset is created. A shard with a sibling side index (``shard-000000.idx``, as written by
  ``imagenet-stream shard``) costs one small read; any other shard is **read in full once** and its
  tar walked (``KEY.jpg``/``.jpeg``/``.png``/``.webp`` image + ``KEY.cls`` class index per sample).
  That first pass costs as much I/O as an epoch, in the main process, so it suits small or local
  shard sets; write a manifest for large remote ones.

  Foreign shards are untrusted: a sample without an image or a ``.cls``, or whose ``.cls`` is not a
  decimal integer, is skipped and counted (``invalid_samples``). Class names are unknown unless the
  caller declares the space of the ``.cls`` values (``classes_in``: ``"in1k"``, a wnid list...);
  then a class index outside it is skipped and counted too (``out_of_range_labels``). **Without a
  declared space the class indices are not range-checked**: a bad one reaches the loss.
"""
from __future__ import annotations

import hashlib
import io
import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from imagenet_stream.errors import ConfigError, ManifestError, ShardIntegrityError
from imagenet_stream.shards import (CLASS_EXT, INDEX_SUFFIX, MANIFEST_NAME, SHARD_SUFFIX, Manifest, SideIndex,
                                    TarWalker, decode_label, index_name, split_member)
from imagenet_stream.storage import Store, expand_urls
from imagenet_stream.streaming.fetch import read_range
from imagenet_stream.streaming.reader import ShardInfo

log = logging.getLogger(__name__)

#: Member extensions accepted as a sample's image in shards discovered without a side index.
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
#: Class indices at or above this are not class indices (side-index labels are uint32).
MAX_LABEL = 1 << 31


@dataclass(frozen=True)
class Source:
    """A dataset's shards and class names, ready for planning and reading."""

    root: str                                  # the store root URL
    shards: tuple[ShardInfo, ...]
    wnids: tuple[str, ...] | None              # class index -> wnid; None when unknown (brace URLs)
    manifest: Manifest | None = None
    side_indexes: dict[int, SideIndex] = field(default_factory=dict)  # discovered up front (brace URLs)
    skipped: dict[str, int] = field(default_factory=dict)  # samples left out at discovery, by counter name

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
    raw = read_range(store, entry.name, 0, entry.bytes + 1)  # one byte more: a longer file is caught too
    where = store.url_of(entry.name)
    if len(raw) != entry.bytes or hashlib.sha256(raw).hexdigest() != entry.sha256:
        raise ManifestError(f"{where}: {len(raw)} bytes with sha256 {hashlib.sha256(raw).hexdigest()[:16]}..., "
                            f"the manifest says {entry.bytes} bytes with sha256 {entry.sha256[:16]}...")
    labels = np.frombuffer(raw, dtype=np.dtype(entry.dtype))
    if labels.size != manifest.num_samples:
        raise ManifestError(f"{where}: {labels.size} labels, expected {manifest.num_samples}")
    return np.split(labels.astype(np.int64), np.cumsum(manifest.sample_counts)[:-1])


def brace_source(pattern: str, storage_options: dict | None = None,
                 wnids: tuple[str, ...] | None = None) -> Source:
    """The source of a brace URL pattern or one shard URL; discovers counts and offsets (see the
    module docstring). ``wnids``: the declared class space of the ``.cls`` values, if known."""
    urls = expand_urls(pattern) if is_brace_pattern(pattern) else [pattern.rstrip("/")]
    parents = {u.rsplit("/", 1)[0] for u in urls}
    if len(parents) != 1:
        raise ConfigError(f"brace URL {pattern!r}: all shards must be in one folder, got {sorted(parents)[:3]}")
    store = Store(parents.pop(), storage_options)
    names = [u.rsplit("/", 1)[1] for u in urls]
    if len(set(names)) != len(names):
        raise ConfigError(f"brace URL {pattern!r} names a shard twice")
    shards: list[ShardInfo] = []
    indexes: dict[int, SideIndex] = {}
    skipped: Counter[str] = Counter()
    num_classes = None if wnids is None else len(wnids)
    for i, name in enumerate(names):
        index, dropped = discover_index(store, name, num_classes)
        skipped.update(dropped)
        indexes[i] = index
        shards.append(ShardInfo(name=name, num_samples=index.num_samples))
    log.info("discovered %d samples in %d shards of %s", sum(s.num_samples for s in shards), len(shards),
             store.url_of(names[0]) if len(names) == 1 else pattern)
    for counter, n in skipped.items():
        log.warning("%s: %d sample(s) left out (%s)", pattern, n, counter)
    return Source(root=store.url, shards=tuple(shards), wnids=wnids, side_indexes=indexes, skipped=dict(skipped))


def discover_index(store: Store, name: str, num_classes: int | None = None) -> tuple[SideIndex, dict[str, int]]:
    """A shard's side index (its sibling ``.idx`` when present, else built by reading the whole tar)
    and the samples left out of it: ``{counter name: count}``."""
    if name.endswith(INDEX_SUFFIX):
        raise ConfigError(f"{store.url_of(name)} is a side index, not a shard")
    if not name.endswith(SHARD_SUFFIX):
        raise ConfigError(f"{store.url_of(name)}: a shard must be a .tar file")
    if store.exists(index_name(name)):
        idx = index_name(name)
        index = SideIndex.from_bytes(store.read(idx), where=store.url_of(idx))
        return _keep_in_range(index, num_classes)
    try:
        data = store.read(name)
    except FileNotFoundError:
        raise ConfigError(f"shard {store.url_of(name)} not found") from None
    index, invalid = index_from_tar(data, name)
    index, dropped = _keep_in_range(index, num_classes)
    if invalid:
        dropped["invalid_samples"] = invalid
    return index, dropped


def _keep_in_range(index: SideIndex, num_classes: int | None) -> tuple[SideIndex, dict[str, int]]:
    """``index`` without samples whose class is outside a space of ``num_classes`` (None: unchecked)."""
    if num_classes is None or index.num_samples == 0:
        return index, {}
    keep = np.flatnonzero(index.labels.astype(np.int64) < num_classes)
    if keep.size == index.num_samples:
        return index, {}
    log.warning("shard %s: %d sample(s) have a class index >= %d (outside the declared class space): skipped",
                index.shard, index.num_samples - keep.size, num_classes)
    return index.select(keep), {"out_of_range_labels": index.num_samples - int(keep.size)}


def index_from_tar(data: bytes, shard: str) -> tuple[SideIndex, int]:
    """The side index of a webdataset-style tar held in memory (image + ``.cls`` per key), and the
    number of samples left out: those without an image or a ``.cls``, or with a ``.cls`` that is not
    a decimal integer. Members that are not regular files are ignored; a tar cut short (or damaged)
    keeps the complete samples before the damage (logged)."""
    groups: list[dict] = []  # {"key", "start", "end", "image": (offset, size), "label"}
    walker = TarWalker(io.BytesIO(data), where=shard, require_end=False)
    try:
        for member in walker:
            key, ext = split_member(member.name)
            if not groups or groups[-1]["key"] != key:
                groups.append({"key": key, "start": member.header_offset, "end": member.end, "image": None,
                               "label": None, "bad": False})
            group = groups[-1]
            group["end"] = member.end
            if not member.is_file:
                continue
            ext = ext.lower()
            if ext in IMAGE_EXTS and group["image"] is None:
                group["image"] = (member.offset, member.size)
            elif ext == CLASS_EXT:
                try:
                    label = decode_label(walker.read_data(member, 64))
                except (ShardIntegrityError, ValueError):
                    label = -1
                if 0 <= label < MAX_LABEL:
                    group["label"] = label
                else:
                    group["bad"] = True
    except ShardIntegrityError as exc:
        log.warning("shard %s: %s; keeping the complete samples before it", shard, exc)
        if groups and groups[-1]["end"] > len(data):
            groups.pop()
    kept = [g for g in groups if g["image"] is not None and g["label"] is not None and not g["bad"] and g["end"] <= len(data) and _usable_key(g["key"])]
    if len(kept) < len(groups):
        log.warning("shard %s: skipped %d sample(s) without an image or a valid .cls class",
                    shard, len(groups) - len(kept))
    index = SideIndex(
        shard=shard,
        keys=tuple(g["key"] for g in kept),
        labels=np.array([g["label"] for g in kept], dtype=np.uint32),
        offsets=np.array([g["start"] for g in kept] + ([kept[-1]["end"]] if kept else [0]), dtype=np.uint64),
        image_offsets=np.array([g["image"][0] for g in kept], dtype=np.uint64),
        image_sizes=np.array([g["image"][1] for g in kept], dtype=np.uint32),
    )
    return index, len(groups) - len(kept)


def _usable_key(key: str) -> bool:
    return 0 < len(key) <= 1024


__all__ = ["IMAGE_EXTS", "Source", "brace_source", "discover_index", "index_from_tar", "is_brace_pattern",
           "is_shard_url", "manifest_source", "read_labels", "root_of"]

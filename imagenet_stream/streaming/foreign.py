"""Foreign webdataset shards (brace URLs or one ``.tar``, no manifest): indexed once, then streamed
like any dataset.

timm's hosted ``imagenet-1k-wds`` / ``imagenet-22k-wds`` / ``imagenet-w21-webp-wds``, and any
webdataset tars: samples are consecutive members sharing a key (``KEY.jpg`` / ``.jpeg`` / ``.png`` /
``.webp`` image, ``KEY.cls`` class index, anything else such as ``KEY.json`` ignored).

**The index.** :func:`build_index` reads every shard once (the only pass that reads them whole),
walks its members, and writes a real dataset manifest into a folder: ``index.json`` (format 2, with
``shards_at`` pointing at the shards' folder), one side index per shard and ``labels.bin``. From then
on the shards are read by ranges like our own. ``imagenet-stream index PATTERN --out DIR`` builds one
explicitly; :func:`cached_index` keeps one per URL pattern in a local cache folder (checked against
the shards' sizes and ETags where the store can list them), so every later run, rank and restart
starts from it in well under a second, and nothing about it is ever pickled into a worker.

**Untrusted content.** A sample without an image or a ``.cls``, or whose ``.cls`` is not a decimal
integer, is left out and counted (``invalid_samples``). The class indices mean nothing without the
space they index (``classes_in``: ``"in1k"``, a wnid list...): with it, a class outside is left out and
counted (``out_of_range_labels``); **without it only indices up to** :data:`MAX_UNDECLARED_CLASSES`
are accepted and classes get placeholder names (``class-<i>``), so targets are the raw ``.cls`` values.
"""
from __future__ import annotations

import fcntl
import hashlib
import io
import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import BinaryIO

import numpy as np
from tqdm import tqdm

from imagenet_stream import __version__
from imagenet_stream.errors import ConfigError, ManifestError, ShardIntegrityError
from imagenet_stream.format import (
    CLASS_EXT,
    INDEX_SUFFIX,
    LABELS_NAME,
    MANIFEST_NAME,
    SHARD_SUFFIX,
    ClassesInfo,
    LabelsEntry,
    Manifest,
    ShardEntry,
    SideIndex,
    TarWalker,
    decode_label,
    index_name,
    split_member,
)
from imagenet_stream.format.integrity import HashingReader
from imagenet_stream.retry import QUICK_RETRIES, RetryPolicy
from imagenet_stream.storage import Store
from imagenet_stream.streaming.roots import is_brace_pattern
from imagenet_stream.urls import absolute_url, expand_urls

log = logging.getLogger(__name__)

#: Member extensions accepted as a sample's image.
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
#: Class indices at or above this are not class indices (side-index labels are uint32).
MAX_LABEL = 1 << 31
#: Without a declared class space, class indices at or above this are out of range (each class gets a
#: placeholder name in the index, so an absurd ``.cls`` must not make millions of them).
MAX_UNDECLARED_CLASSES = 1 << 16
INDEX_TOOL = f"imagenet-stream {__version__} (foreign index)"
#: Bytes of a foreign shard held at once while it is indexed (a multi-GB shard streams through).
_STREAM_BLOCK = 4 << 20
#: Bumped when foreign indexes of older releases must be rebuilt.
INDEX_FORMAT = 1


def shard_urls(pattern: str) -> tuple[str, list[str]]:
    """``(folder URL, shard names)`` of a brace pattern or one shard URL (all in one folder)."""
    urls = expand_urls(pattern) if is_brace_pattern(pattern) else [pattern.rstrip("/")]
    parents = {u.rsplit("/", 1)[0] for u in urls}
    if len(parents) != 1:
        raise ConfigError(f"shard URL {pattern!r}: all shards must be in one folder, got {sorted(parents)[:3]}")
    names = [u.rsplit("/", 1)[1] for u in urls]
    if len(set(names)) != len(names):
        raise ConfigError(f"shard URL {pattern!r} names a shard twice")
    for name in names:
        if name.endswith(INDEX_SUFFIX):
            raise ConfigError(f"{name} is a side index, not a shard")
        if not name.endswith(SHARD_SUFFIX):
            raise ConfigError(f"{name}: a shard must be a .tar file")
    return parents.pop(), names


#: Shards whose HEAD an http(s) dataset's cached index is checked against (http servers cannot list).
HTTP_CHECKED_SHARDS = 8


def fingerprints(store: Store, names: Sequence[str]) -> dict[str, list]:
    """``{name: [size, etag]}`` of the shards: all of them from one listing where the store lists
    (local, s3, gcs...); over http(s), :data:`HTTP_CHECKED_SHARDS` of them spread over the list, one
    HEAD each. ``{}`` when they cannot be had (the cached index is then trusted as is)."""
    if store.protocol in ("http", "https"):
        picks = sorted({names[int(i)] for i in np.linspace(0, len(names) - 1, min(len(names), HTTP_CHECKED_SHARDS))})
        out = {}
        for name in picks:
            try:
                info = store.fs.info(store.path(name))
            except Exception as exc:  # noqa: BLE001 - an unreachable server: nothing to compare
                log.info("cannot check %s (%s)", store.url_of(name), store.describe(exc))
                return {}
            etag = info.get("ETag") or info.get("Last-Modified") or ""
            out[name] = [int(info.get("size") or 0), str(etag)]
        return out
    try:
        listed = {name: [size, etag] for name, size, etag in store.entries_with_etags()}
    except (OSError, NotImplementedError):
        return {}
    return {n: listed[n] for n in names if n in listed}


def build_index(pattern: str, out: Store, storage_options: dict | None = None,
                wnids: tuple[str, ...] | None = None, name: str = "foreign",
                retry: RetryPolicy | None = None, progress: bool = False) -> Manifest:
    """Read every shard of ``pattern`` once and write its index (manifest, side indexes, labels) to ``out``."""
    folder, names = shard_urls(pattern)
    store = Store(folder, storage_options, retry=retry or RetryPolicy())
    out.makedirs()
    entries, labels, skipped = [], [], Counter()
    max_label = -1
    ranged = None
    if store.protocol in ("http", "https") and names:  # once, here: later starts then never probe a shard
        ranged = len(store.read(names[0], 0, 1)) == 1
    for shard in tqdm(names, desc="indexing shards", unit="shard", disable=not progress):
        try:  # one streaming pass, ``_STREAM_BLOCK`` bytes at a time: a shard of any size in bounded memory
            with store.open(shard, "rb", block_size=_STREAM_BLOCK) as raw:
                hashing = HashingReader(raw)
                index, invalid = index_from_stream(io.BufferedReader(hashing, _STREAM_BLOCK), shard)
                hashing.drain()
        except FileNotFoundError:
            raise ConfigError(f"shard {store.url_of(shard)} not found") from None
        index, dropped = _keep_in_range(index, MAX_UNDECLARED_CLASSES if wnids is None else len(wnids))
        skipped.update(dropped)
        if invalid:
            skipped["invalid_samples"] += invalid
        raw = index.to_bytes()
        out.write_atomic(index_name(shard), raw)
        entries.append(ShardEntry(name=shard, num_samples=index.num_samples, bytes=hashing.count,
                                  sha256=hashing.sha256.hexdigest(), index=index_name(shard),
                                  index_bytes=len(raw), index_sha256=hashlib.sha256(raw).hexdigest()))
        labels.append(index.labels.astype(np.int64))
        if index.num_samples:
            max_label = max(max_label, int(index.labels.max()))
    every = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    space_wnids = wnids if wnids is not None else tuple(f"class-{i}" for i in range(max_label + 1))
    counts = np.bincount(every, minlength=len(space_wnids)) if every.size else np.zeros(len(space_wnids), np.int64)
    dtype = "<u2" if len(space_wnids) < 65536 else "<u4"
    raw_labels = every.astype(dtype).tobytes()
    out.write_atomic(LABELS_NAME, raw_labels)
    for counter, n in skipped.items():
        log.warning("%s: %d sample(s) left out (%s)", pattern, n, counter)
    manifest = Manifest(
        name=name, version="1", created=datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        tool=INDEX_TOOL, classes=ClassesInfo("declared" if wnids is not None else "custom:unknown", space_wnids),
        num_samples=int(every.size), class_counts=tuple(int(c) for c in counts), shards=tuple(entries),
        labels=LabelsEntry(LABELS_NAME, dtype, len(raw_labels), hashlib.sha256(raw_labels).hexdigest()),
        shards_at=absolute_url(store.url),
        extra={"foreign": {"index_format": INDEX_FORMAT, "pattern": pattern, "skipped": dict(skipped),
                           "fingerprints": fingerprints(store, names), "classes_declared": wnids is not None,
                           "ranged_reads": ranged}})
    out.write_atomic(MANIFEST_NAME, manifest.to_json().encode())  # last
    log.info("indexed %d samples in %d foreign shards of %s into %s", manifest.num_samples, len(entries), pattern,
             out.display_url)
    return manifest


def cache_folder(cache_dir: str, pattern: str, wnids: tuple[str, ...] | None) -> str:
    """The cache folder of one URL pattern (and declared class space)."""
    key = hashlib.sha256(json.dumps([pattern, list(wnids) if wnids else None]).encode()).hexdigest()[:24]
    return os.path.join(os.path.expanduser(cache_dir), "foreign", key)


def cached_index(pattern: str, cache_dir: str, storage_options: dict | None = None,
                 wnids: tuple[str, ...] | None = None, retry: RetryPolicy | None = None) -> Store:
    """The local index of ``pattern`` (built on first use, rebuilt when the shards changed size or ETag).

    Processes sharing the cache folder (the ranks of one node) take a file lock: one builds, the
    others wait and then use its index.
    """
    folder = cache_folder(cache_dir, pattern, wnids)
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    with open(folder + ".lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _cached_index(pattern, Store(folder), storage_options, wnids, retry)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _cached_index(pattern: str, out: Store, storage_options: dict | None, wnids: tuple[str, ...] | None,
                  retry: RetryPolicy | None) -> Store:
    if out.exists(MANIFEST_NAME):
        try:
            manifest = Manifest.load(out)
            folder, names = shard_urls(pattern)
            saved = (manifest.extra.get("foreign") or {}).get("fingerprints") or {}
            now = fingerprints(Store(folder, storage_options, retry=QUICK_RETRIES), names) if saved else {}
            current = (manifest.extra.get("foreign") or {}).get("index_format") == INDEX_FORMAT
            if current and (not now or now == saved):  # nothing to compare (server unreachable): trusted
                return out
            log.info("the shards of %s changed since they were indexed: indexing them again", pattern)
        except ManifestError as exc:
            log.warning("the cached index of %s is unusable (%s): indexing again", pattern, exc)
    log.info("indexing the foreign shards of %s (one pass; later runs start from the index)", pattern)
    out.remove_if_exists(MANIFEST_NAME)  # a build cut short leaves no manifest to trust
    build_index(pattern, out, storage_options, wnids, retry=retry, progress=True)
    return out


def _keep_in_range(index: SideIndex, num_classes: int) -> tuple[SideIndex, dict[str, int]]:
    """``index`` without samples whose class is outside a space of ``num_classes``."""
    if index.num_samples == 0:
        return index, {}
    keep = np.flatnonzero(index.labels.astype(np.int64) < num_classes)
    if keep.size == index.num_samples:
        return index, {}
    log.warning("shard %s: %d sample(s) have a class index >= %d (outside the declared class space): skipped",
                index.shard, index.num_samples - keep.size, num_classes)
    return index.select(keep), {"out_of_range_labels": index.num_samples - int(keep.size)}


def index_from_tar(data: bytes, shard: str) -> tuple[SideIndex, int]:
    """:func:`index_from_stream` of a tar held in memory."""
    return index_from_stream(io.BytesIO(data), shard)


def index_from_stream(stream: BinaryIO, shard: str) -> tuple[SideIndex, int]:
    """The side index of a webdataset-style tar read once, front to back, from ``stream`` (image +
    ``.cls`` per key; only the small ``.cls`` members are read, image data is skipped), and the
    number of samples left out: those without an image or a ``.cls``, or with a ``.cls`` that is not
    a decimal integer. Members that are not regular files are ignored; a tar cut short (or damaged)
    keeps the complete samples before the damage (logged)."""
    groups: list[dict] = []  # {"key", "start", "end", "image": (offset, size), "label"}
    walker = TarWalker(stream, where=shard, seekable=False, require_end=False)
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
        if groups and groups[-1]["end"] > walker.position:
            groups.pop()
    kept = [g for g in groups if g["image"] is not None and g["label"] is not None and not g["bad"]
            and g["end"] <= walker.position and _usable_key(g["key"])]
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




__all__ = ["IMAGE_EXTS", "build_index", "cache_folder", "cached_index", "index_from_tar", "shard_urls"]

"""One shard task: read its planned records -> verify -> write the tar -> commit tar, side index, marker.

The unit every backend runs (a local process pool, a Ray cluster): a pure function of a
:class:`RunConfig` (the same for every task of a run, sent once per worker) and a :class:`ShardTask`
(its records), so any worker, on any machine, in any retry, writes the same bytes.

* Image bytes go from the source to the shard inside the task: ``io_threads`` threads read the
  records' byte ranges ahead (bounded), the task's thread verifies them in plan order, and a writer
  thread streams the tar to its destination while verification goes on (``Store.open_atomic``:
  fsync + rename locally, one multipart upload on object stores), so uploads overlap verification.
* A rejected record leaves the shard shorter; a second copy of an image already in this shard
  (same source sha256, later in plan order) is rejected as ``duplicate``; copies in other shards
  are resolved when the run is finalized (the exclusion overlay).
* Commit order: the tar, then its ``.idx``, then the done-marker (:mod:`.markers`); a shard with
  a valid marker is complete, so a resumed run never redoes or rewrites it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imagenet_stream.curation.download import DownloadPolicy
from imagenet_stream.curation.votes import verdict
from imagenet_stream.errors import ImageNetStreamError
from imagenet_stream.format import Sample, ShardWriter, WrittenShard, index_name, shard_name
from imagenet_stream.redaction import describe
from imagenet_stream.sharding.downloads import StatusLog, load_url, sample_fields
from imagenet_stream.sharding.listing import DAMAGED, FOLDER, UNKNOWN_SIZE, URL, Container, Record
from imagenet_stream.sharding.markers import Marker, marker_name
from imagenet_stream.sharding.records import FailedRecord, Rejected, SourceRecord, Verified
from imagenet_stream.sharding.report import MAX_EXAMPLES, rejection_example
from imagenet_stream.sharding.verify_image import VerifyConfig, verify_record
from imagenet_stream.storage import AtomicWrite, Store

log = logging.getLogger(__name__)

_READ_AHEAD_BYTES = 256 << 20
_WRITE_QUEUE = 64
_OPEN_FILES = 32


@dataclass(frozen=True)
class RunConfig:
    """What every shard task of a run shares (picklable; sent once per worker)."""

    out: str
    storage_options: Mapping[str, Any] | None
    source_storage_options: Mapping[str, Any] | None
    containers: tuple[Container, ...]
    class_index: Mapping[str, int]      # wnid -> class index of the dataset's space
    verify: VerifyConfig
    prefix: str
    mtime: int
    plan_hash: str
    done_folder: str                    # where the plan's done-markers go, under ``out``
    io_threads: int = 8
    download: DownloadPolicy = DownloadPolicy()  # how URL-list records are fetched
    licence: str | None = None          # a downloaded sample's licence when its row gives none
    status_format: str = "auto"         # download status files: auto (parquet with pyarrow) | parquet | jsonl

    def __repr__(self) -> str:  # never shows storage options
        return f"RunConfig(out={self.out!r}, plan={self.plan_hash[:12]}, containers={len(self.containers)})"


@dataclass(frozen=True)
class ShardTask:
    """One shard: its number, the plan position of its first record, its records and their keys."""

    number: int
    first_position: int
    records: tuple[Record, ...]
    keys: tuple[str, ...]               # after the plan's renames
    votes: tuple[tuple[int, int], ...] | None = None  # (yes, no) per record, when the run has votes
    min_votes: int = 0


@dataclass(frozen=True)
class ShardOutcome:
    """What a finished task tells the coordinator (the marker on storage holds the detail)."""

    number: int
    seen: int
    kept: int
    bytes: int
    rejected: dict[str, int] = field(default_factory=dict)


# -- per-process resources ------------------------------------------------------------------------
_STORES: OrderedDict[tuple[str, str], Store] = OrderedDict()
_STORES_KEPT = 16   # a run reads from a few source folders and writes one output: 16 is plenty
_STORES_LOCK = threading.Lock()
_FILES: OrderedDict[str, Any] = OrderedDict()
_FILES_LOCK = threading.Lock()


def _store(url: str, options: Mapping[str, Any] | None) -> Store:
    """This process's :class:`Store` of ``url`` with ``options``, reused by value (an LRU of a few)."""
    key = (url, json.dumps(options or {}, sort_keys=True, default=repr))
    with _STORES_LOCK:
        found = _STORES.get(key)
        if found is None:
            found = _STORES[key] = Store(url, options)
            while len(_STORES) > _STORES_KEPT:
                _STORES.popitem(last=False)
        else:
            _STORES.move_to_end(key)
        return found


def _parent(url: str) -> tuple[str, str]:
    parent, _, name = url.rstrip("/").rpartition("/")
    return parent, name


def _pread_local(path: str, offset: int, size: int) -> bytes:
    with _FILES_LOCK:
        f = _FILES.get(path)
        if f is None:
            f = _FILES[path] = open(path, "rb")
            while len(_FILES) > _OPEN_FILES:
                _FILES.popitem(last=False)[1].close()
        else:
            _FILES.move_to_end(path)
        fd = f.fileno()
        data = os.pread(fd, size, offset)
    return data


def read_record(config: RunConfig, record: Record) -> bytes:
    """The record's bytes, at most ``max_image_bytes + 1`` of them (verify judges the size)."""
    container = config.containers[record.container]
    cap = config.verify.max_image_bytes + 1
    options = config.source_storage_options
    if container.kind == FOLDER:
        name = record.name
        url = name if ("://" in name or os.path.isabs(name)) else f"{container.url}/{name}"
        parent, base = _parent(url)
        store = _store(parent, options)
        if store.is_local:
            fd = os.open(store.path(base), os.O_RDONLY)
            try:  # sized to the file: read(cap) would allocate the whole cap first, 4x slower
                return os.pread(fd, min(os.fstat(fd).st_size + 1, cap), 0)
            finally:
                os.close(fd)
        size = record.size if record.size != int(UNKNOWN_SIZE) else None
        return store.read(base, 0, cap if size is None else min(size, cap))
    parent, base = _parent(container.url)
    store = _store(parent, options)
    size = min(record.size, cap)
    if store.is_local:
        data = _pread_local(store.path(base), record.offset, size)
    else:
        data = store.read(base, record.offset, record.offset + size)
    if len(data) != size:
        raise OSError(f"{container.url}: {len(data)} bytes at offset {record.offset:,}, expected {size:,} "
                      "(the source is shorter than its index says)")
    return data


def _source_of(container: Container, record: Record) -> str:
    return f"{container.label}/{record.name}" if container.label else record.name


def _load(config: RunConfig, record: Record, key: str) -> SourceRecord | Rejected:
    """The record as verify takes it: bytes read, size known, or the reason it could not be read."""
    container = config.containers[record.container]
    source = _source_of(container, record)
    if container.kind == DAMAGED:
        return FailedRecord(source=source, wnid=record.wnid, key=key, error=container.url)
    if container.kind == URL:
        return load_url(config.download, config.verify.max_image_bytes, record, key, source)
    size = None if record.size == int(UNKNOWN_SIZE) else record.size
    if size is not None and size > config.verify.max_image_bytes:
        return SourceRecord(source=source, wnid=record.wnid, key=key, size=size)  # too_large, unread
    try:
        data = read_record(config, record)
    except (OSError, ImageNetStreamError) as exc:
        return FailedRecord(source=source, wnid=record.wnid, key=key, error=describe(exc))
    return SourceRecord(source=source, wnid=record.wnid, key=key, data=data, size=len(data))


def _is_local(config: RunConfig, container: Container) -> bool:
    url = container.url
    if container.kind == URL:
        return False
    return container.kind == DAMAGED or "://" not in url or url.startswith("file://")


def _vote_rejections(task: ShardTask) -> dict[int, Rejected]:
    """The task's records that their votes reject (by position in the task), never to be read."""
    if task.votes is None:
        return {}
    out = {}
    for j, ((yes, no), record, key) in enumerate(zip(task.votes, task.records, task.keys)):
        reason = verdict(yes, no, task.min_votes)
        if reason is not None:
            out[j] = Rejected(key, record.wnid, record.name, reason, f"{yes} yes / {no} no votes")
    return out


def _prefetched(config: RunConfig, task: ShardTask, skip: Mapping[int, Rejected]
                ) -> Iterator[SourceRecord | Rejected]:
    """The task's records loaded in plan order (those in ``skip`` given as their rejection, unread):
    local files in this thread (a pread from the page cache costs less than handing it to a thread),
    remote ones by ``io_threads`` threads, a bounded amount ahead."""
    if all(_is_local(config, config.containers[r.container]) for r in task.records):
        for j, (record, key) in enumerate(zip(task.records, task.keys)):
            yield skip[j] if j in skip else _load(config, record, key)
        return
    pending: deque[Future[SourceRecord | Rejected]] = deque()
    budget = _READ_AHEAD_BYTES
    with ThreadPoolExecutor(max(1, config.io_threads), thread_name_prefix="imagenet-stream-read") as pool:
        items = iter(enumerate(zip(task.records, task.keys)))
        ahead_bytes = 0
        for j, (record, key) in items:
            if j in skip:
                done: Future[SourceRecord | Rejected] = Future()
                done.set_result(skip[j])
                pending.append(done)
                continue
            pending.append(pool.submit(_load, config, record, key))
            ahead_bytes += min(record.size, config.verify.max_image_bytes) if record.size != int(UNKNOWN_SIZE) else 0
            if len(pending) >= 4 * max(1, config.io_threads) or ahead_bytes > budget:
                loaded = pending.popleft().result()
                ahead_bytes -= (loaded.size or 0) if isinstance(loaded, SourceRecord) else 0
                yield loaded
        while pending:
            yield pending.popleft().result()


class _TarStream:
    """Writes samples into a shard on a background thread, so the upload overlaps verification."""

    def __init__(self, writer: ShardWriter) -> None:
        self.writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize=_WRITE_QUEUE)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="imagenet-stream-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            sample = self._queue.get()
            if sample is None:
                return
            if self._error is None:
                try:
                    self.writer.add(sample)
                except BaseException as exc:  # noqa: BLE001 - handed to the task's thread
                    self._error = exc

    def add(self, sample: Sample) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(sample)

    def finish(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


class _DirectStream:
    """Writes samples in the task's own thread (a local file: nothing to overlap)."""

    def __init__(self, writer: ShardWriter) -> None:
        self.writer = writer

    def add(self, sample: Sample) -> None:
        self.writer.add(sample)

    def finish(self) -> None:
        pass


def to_sample(v: Verified, label: int, votes: tuple[int, int] | None = None,
              extra: Mapping[str, Any] | None = None) -> Sample:
    """The shard sample of a verified image: metadata ``wnid, source, sha256, width, height, phash``
    (+ fixes and the source's sha256 when the stored bytes differ from it, the votes, and a
    downloaded image's URL, download time and list columns in ``extra``)."""
    meta: dict[str, Any] = {"wnid": v.wnid, "source": v.source, "sha256": v.sha256,
                            "width": v.width, "height": v.height, "phash": v.phash}
    if v.fixes:
        meta["fixes"] = list(v.fixes)
        meta["source_sha256"] = v.source_sha256
    if votes is not None:
        meta["votes"] = list(votes)
    for name, value in (extra or {}).items():
        meta.setdefault(name, value)
    return Sample(key=v.key, image=v.image, label=label, meta=meta)


@dataclass
class BuiltShard:
    """A shard whose tar is written but not yet visible: :func:`commit_shard` publishes it."""

    task: ShardTask
    name: str
    tar: AtomicWrite
    written: WrittenShard
    rejected: dict[str, int]
    examples: dict[str, list[dict[str, str]]]
    fixes: dict[str, int]
    positions: list[int]
    source_sha256: bytes
    status: StatusLog


def build_shard(config: RunConfig, task: ShardTask) -> BuiltShard:
    """Read, verify and write shard ``task.number``'s tar (still under its temporary name)."""
    out = _store(config.out, config.storage_options)
    name = shard_name(config.prefix, task.number)
    rejected: Counter[str] = Counter()
    examples: dict[str, list[dict[str, str]]] = {}
    fixes: Counter[str] = Counter()
    kept_sha: list[bytes] = []
    kept_positions: list[int] = []
    seen_here: dict[bytes, str] = {}
    status = StatusLog()

    def reject(r: Rejected, loaded: object) -> None:
        rejected[r.reason] += 1
        bucket = examples.setdefault(r.reason, [])
        if len(bucket) < MAX_EXAMPLES:
            bucket.append(rejection_example(r, loaded))

    tar = out.create_atomic(name)
    try:
        writer = ShardWriter(tar.file, name, mtime=config.mtime)
        stream: _TarStream | _DirectStream = _DirectStream(writer) if out.is_local else _TarStream(writer)
        try:
            for j, loaded in enumerate(_prefetched(config, task, _vote_rejections(task))):
                position = task.first_position + j
                listed = task.records[j]
                is_url = config.containers[listed.container].kind == URL
                result = loaded if isinstance(loaded, Rejected) else verify_record(loaded, config.verify)
                if isinstance(result, Verified):
                    digest = bytes.fromhex(result.source_sha256)
                    first = seen_here.get(digest)
                    if first is not None:
                        result = Rejected(result.key, result.wnid, result.source, "duplicate",
                                          f"same bytes as {first}")
                    else:
                        seen_here[digest] = result.key
                if is_url:
                    status.add(listed, task.keys[j], result, loaded)
                if isinstance(result, Rejected):
                    reject(result, loaded)
                    continue
                extra = sample_fields(listed, loaded, config.licence) if is_url else None
                stream.add(to_sample(result, config.class_index[result.wnid],
                                     task.votes[j] if task.votes is not None else None, extra))
                fixes.update(result.fixes)
                kept_sha.append(digest)
                kept_positions.append(position)
        finally:
            stream.finish()
        written = writer.close()
    except BaseException:
        tar.abort()
        raise
    return BuiltShard(task, name, tar, written, dict(rejected), examples, dict(fixes), kept_positions,
                      b"".join(kept_sha), status)


def commit_shard(config: RunConfig, built: BuiltShard) -> ShardOutcome:
    """Publish a built shard: the tar, then its side index, then its done-marker."""
    out = _store(config.out, config.storage_options)
    task, written = built.task, built.written
    built.tar.commit()
    index_bytes = written.side_index.to_bytes()
    out.write_atomic(index_name(built.name), index_bytes)
    downloads = None
    if built.status:  # a URL list's shard: every URL's outcome beside the shards, before the marker
        downloads = built.status.summary(built.status.write(out, built.name[: -len(".tar")], config.status_format))
    marker = Marker(plan_hash=config.plan_hash, shard=built.name, number=task.number,
                    first_position=task.first_position, planned=len(task.records),
                    tar_bytes=written.bytes, tar_sha256=written.sha256, index_bytes=len(index_bytes),
                    index_sha256=hashlib.sha256(index_bytes).hexdigest(), keys=written.side_index.keys,
                    labels=np.asarray(written.side_index.labels, dtype=np.uint32),
                    positions=np.asarray(built.positions, dtype=np.uint64), source_sha256=built.source_sha256,
                    rejected=built.rejected, examples=built.examples, fixes=built.fixes, downloads=downloads)
    out.write_atomic(marker_name(config.done_folder, config.prefix, task.number), marker.to_bytes())
    return ShardOutcome(task.number, seen=len(task.records), kept=written.num_samples, bytes=written.bytes,
                        rejected=built.rejected)


def run_shard(config: RunConfig, task: ShardTask) -> ShardOutcome:
    """Write shard ``task.number`` completely and commit it (tar, side index, marker)."""
    return commit_shard(config, build_shard(config, task))


__all__ = ["BuiltShard", "RunConfig", "ShardOutcome", "ShardTask", "build_shard", "commit_shard", "read_record",
           "run_shard", "to_sample"]

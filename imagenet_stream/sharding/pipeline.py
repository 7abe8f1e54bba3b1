"""The sharder's pipeline: sources → verify (process pool) → dedup → class-mixed shards → manifest.

Two paths, one result:

* **Random-access sources** (folders, label lists, CSV/JSONL: records carry a local path, listing is
  cheap): list every record, choose the class space, permute the records with
  ``default_rng([seed, 0])``, verify them in that order in a process pool, pack as they come.
* **Streaming sources** (a tar of per-synset tars, gzipped or not): verify as the stream is read and
  append each kept sample to a local :class:`~.spool.Spool`; then choose the class space (when not
  given), permute the spooled samples with the seed and pack them in that order. A stream sorted by
  synset can only be mixed globally once all of it has been seen, so this needs local scratch space
  (``tmp_dir``) about the size of the kept data.

Exact duplicates (same source sha256) are dropped in the main process, first occurrence in
processing order kept. The output is the same for any number of workers: results are consumed in
submission order. Every shard is committed atomically, then ``labels.bin``, ``report.json`` and
``index.json`` last, so a crashed run never looks complete.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from itertools import chain
from typing import Any, Protocol

import msgpack
import numpy as np

from .. import __version__
from ..errors import ConfigError, SourceError
from ..hierarchy import ClassSpace, choose_space, load_space
from ..shards import (LABELS_NAME, MANIFEST_NAME, REPORT_NAME, ClassesInfo, Manifest, Sample, dedupe_key)
from ..storage import Store
from .pack import PackOptions, ShardPacker, write_labels, write_manifest
from .pool import verify_ordered
from .records import Rejected, SourceRecord, Verified
from .report import ReportBuilder, report_json
from .sources import Source, open_sources
from .spool import Spool
from .verify import DEFAULT_MAX_IMAGE_BYTES, VerifyConfig

log = logging.getLogger(__name__)


class Progress(Protocol):
    """What the pipeline needs of a progress bar (tqdm fits)."""

    def update(self, n: int = 1) -> Any: ...

    def close(self) -> Any: ...


#: ``progress(total)`` returns a bar; ``total`` is None when the sources cannot count up front.
ProgressFactory = Callable[[int | None], Progress]


@dataclasses.dataclass(frozen=True)
class ShardOptions:
    """Everything ``imagenet-stream shard`` can be told, minus the sources."""

    out: str
    storage_options: Mapping[str, Any] | None = None
    classes: str | None = None              # "in1k" | "in21k" | "in22k" | path; None: choose_space
    seed: int = 0
    shard_size: int = 1000
    max_shard_bytes: int = 1 << 30
    workers: int = 0                        # 0 or 1: verify in this process
    min_size: int = 8
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES  # larger source files are rejected unread
    resize_short_side: int | None = None
    quality: int = 90
    name: str = "imagenet"
    version: str = "1"
    prefix: str = "train"
    tmp_dir: str | None = None
    overwrite: bool = False
    mtime: int | None = None                # tar member mtime; None: the run's start (pin it to compare runs)
    full_decode: bool = False               # verify unchanged JPEGs at full size, not by a 1/8-scale decode

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0, got {self.workers}")
        self.verify_config(None)  # validates min_size, resize_short_side, quality
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if not self.name or not self.version:
            raise ConfigError(f"dataset name and version must be non-empty, "
                              f"got {self.name!r} / {self.version!r}")
        PackOptions(self.prefix, self.shard_size, self.max_shard_bytes)  # validates those three

    def verify_config(self, allowed: Iterable[str] | None) -> VerifyConfig:
        """The per-image verify settings, restricted to ``allowed`` wnids when given."""
        return VerifyConfig(min_size=self.min_size, max_image_bytes=self.max_image_bytes,
                            resize_short_side=self.resize_short_side, quality=self.quality,
                            allowed_wnids=frozenset(allowed) if allowed is not None else None,
                            full_decode=self.full_decode)


@dataclasses.dataclass(frozen=True)
class ShardResult:
    manifest: Manifest
    report: dict[str, Any]


class NothingKeptError(SourceError):
    """Every image was rejected; ``report`` says why (``report.json`` is written, ``index.json`` not)."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


def shard(specs: Sequence[str], options: ShardOptions, labels: str | None = None,
          progress: ProgressFactory | None = None) -> ShardResult:
    """Open the source specs (folders, tars, lists; see ``sharding.sources``) and shard them."""
    return run_pipeline(open_sources(list(specs), labels, options.max_image_bytes), options, progress)


def run_pipeline(sources: Sequence[Source], options: ShardOptions,
                 progress: ProgressFactory | None = None) -> ShardResult:
    """Shard ``sources`` into ``options.out``; return the manifest and the report."""
    if not sources:
        raise SourceError("no sources given")
    store = Store(options.out, options.storage_options)  # ConfigError for an unknown protocol
    _prepare_output(store, options)
    started = time.time()
    space = load_space(options.classes) if options.classes else None
    mtime = int(started) if options.mtime is None else options.mtime
    run = _Run(options, ReportBuilder())
    with tempfile.TemporaryDirectory(prefix="imagenet-stream-", dir=options.tmp_dir) as work:
        packer = ShardPacker(store, PackOptions(options.prefix, options.shard_size, options.max_shard_bytes,
                                                mtime=mtime, tmp_dir=work))
        try:
            if all(s.random_access for s in sources):
                space = run.random_access(sources, space, packer, progress)
            else:
                space = run.streaming(sources, space, packer, work, progress)
            shards = packer.finish()
        except BaseException:
            packer.abort()
            raise
    descriptions = [s.description for s in sources]
    report = run.report.build(out=store.display_url, sources=descriptions, class_space=space.id,
                              num_classes=len(space),
                              shards=len(shards), total_bytes=sum(s.bytes for s in shards),
                              seconds=time.time() - started, seed=options.seed)
    if not shards:
        store.write_atomic(REPORT_NAME, report_json(report))
        raise NothingKeptError(f"no image was kept out of {run.report.seen}; see {store.url_of(REPORT_NAME)}",
                               report)
    labels = write_labels(store, packer.labels, len(space))
    manifest = Manifest(
        name=options.name, version=options.version,
        created=_utc_iso(started),
        tool=f"imagenet-stream {__version__}",
        classes=ClassesInfo(space.id, space.wnids),
        num_samples=packer.num_samples,
        class_counts=tuple(int(c) for c in run.class_counts),
        shards=tuple(shards), labels=labels,
        extra={"seed": options.seed, "sources": descriptions, "prefix": options.prefix},
    )
    store.write_atomic(REPORT_NAME, report_json(report))
    write_manifest(store, manifest)  # last: its presence marks the dataset complete
    log.info("wrote %d samples in %d shards to %s", manifest.num_samples, len(shards), store.display_url)
    return ShardResult(manifest, report)


class _Run:
    """State of one run: the report, dedup tables, class counts."""

    def __init__(self, options: ShardOptions, report: ReportBuilder) -> None:
        self.options = options
        self.report = report
        self.dedup = Deduplicator(report)
        self.class_counts = np.zeros(0, dtype=np.int64)


    def random_access(self, sources: Sequence[Source], space: ClassSpace | None, packer: ShardPacker,
                      progress: ProgressFactory | None) -> ClassSpace:
        records = [r for s in sources for r in s.records()]
        wnids = {r.wnid for r in records}
        space = space or choose_space(wnids)
        log.info("%d records listed, %d wnids; class space %s", len(records), len(wnids), space.id)
        self.class_counts = np.zeros(len(space), dtype=np.int64)
        order = np.random.default_rng([self.options.seed, 0]).permutation(len(records))
        permuted = (records[i] for i in order)
        config = self.options.verify_config(w for w in wnids if w in space)
        bar = progress(len(records)) if progress else None
        try:
            for result in self._verified(permuted, config, bar):
                self.pack(result, space, packer)
        finally:
            if bar is not None:
                bar.close()
        return space

    def streaming(self, sources: Sequence[Source], space: ClassSpace | None, packer: ShardPacker, work: str,
                  progress: ProgressFactory | None) -> ClassSpace:
        counts = [s.count() for s in sources]
        total = sum(counts) if all(c is not None for c in counts) else None  # type: ignore[misc]
        config = self.options.verify_config(space.wnids if space is not None else None)
        wnids: set[str] = set()
        bar = progress(total) if progress else None
        with Spool(work) as spool:
            try:
                for result in self._verified(chain.from_iterable(s.records() for s in sources), config, bar):
                    spool.append(encode_verified(result))
                    wnids.add(result.wnid)
            finally:
                if bar is not None:
                    bar.close()
            space = space or choose_space(wnids)
            log.info("%d samples spooled (%d bytes), %d wnids; class space %s",
                     len(spool), spool.nbytes, len(wnids), space.id)
            self.class_counts = np.zeros(len(space), dtype=np.int64)
            for number in np.random.default_rng([self.options.seed, 0]).permutation(len(spool)):
                self.pack(decode_verified(spool.read(int(number))), space, packer)
        return space

    def _verified(self, records: Iterable[SourceRecord], config: VerifyConfig,
                  bar: Progress | None) -> Iterator[Verified]:
        """Verified, deduplicated samples in processing order; rejections go to the report."""
        for result in verify_ordered(records, config, self.options.workers):
            self.report.record_seen()
            if bar is not None:
                bar.update(1)
            if isinstance(result, Verified):
                result = self.dedup.admit(result)
            if isinstance(result, Rejected):
                self.report.record_rejected(result)
                continue
            yield result

    def pack(self, sample: Verified, space: ClassSpace, packer: ShardPacker) -> None:
        if sample.wnid not in space:
            self.report.record_rejected(Rejected(sample.key, sample.wnid, sample.source, "unknown_class",
                                                 f"{sample.wnid} is not in class space {space.id}"))
            return
        label = space.index(sample.wnid)
        packer.add(to_sample(sample, label))
        self.class_counts[label] += 1
        self.report.record_kept(sample)


class Deduplicator:
    """Drops exact duplicates (same source sha256) and renames colliding keys (``dedupe_key``)."""

    def __init__(self, report: ReportBuilder) -> None:
        self.report = report
        self._kept_by_hash: dict[bytes, str] = {}
        self._keys: set[str] = set()

    def admit(self, sample: Verified) -> Verified | Rejected:
        digest = bytes.fromhex(sample.source_sha256)
        kept = self._kept_by_hash.get(digest)
        if kept is not None:
            return Rejected(sample.key, sample.wnid, sample.source, "duplicate", f"same bytes as {kept}")
        key, n = sample.key, 0
        while key in self._keys:
            n += 1
            key = dedupe_key(sample.key, n)
        if n:
            self.report.record_key_collision(sample.key, key, sample.source)
            sample = dataclasses.replace(sample, key=key)
        self._keys.add(key)
        self._kept_by_hash[digest] = key
        return sample


def to_sample(v: Verified, label: int) -> Sample:
    """The shard sample of a verified image: metadata ``wnid, source, sha256, width, height`` (+ fixes)."""
    meta: dict[str, Any] = {"wnid": v.wnid, "source": v.source, "sha256": v.sha256,
                            "width": v.width, "height": v.height}
    if v.fixes:
        meta["fixes"] = list(v.fixes)
        meta["source_sha256"] = v.source_sha256
    return Sample(key=v.key, image=v.image, label=label, meta=meta)


def encode_verified(v: Verified) -> bytes:
    """Spool encoding of a Verified (msgpack list, field order of the dataclass)."""
    return msgpack.packb([v.key, v.wnid, v.source, v.image, v.sha256, v.source_sha256, v.width, v.height,
                          list(v.fixes)], use_bin_type=True)


def decode_verified(data: bytes) -> Verified:
    key, wnid, source, image, sha256, source_sha256, width, height, fixes = msgpack.unpackb(data, raw=False)
    return Verified(key=key, wnid=wnid, source=source, image=image, sha256=sha256,
                    source_sha256=source_sha256, width=width, height=height, fixes=tuple(fixes))


def _utc_iso(timestamp: float) -> str:
    """``2024-01-31T12:00:00Z``."""
    text = datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")
    return text.replace("+00:00", "Z")


_TEMP_RE = re.compile(r"\.tmp-[0-9a-f]{12}$")


def _prepare_output(store: Store, options: ShardOptions) -> None:
    """Refuse to replace a complete dataset without ``overwrite``; clear what a crashed run left."""
    store.makedirs()
    if store.exists(MANIFEST_NAME):
        if not options.overwrite:
            raise ConfigError(f"{store.display_url} already holds a dataset ({MANIFEST_NAME}); "
                              f"pass --overwrite to replace it")
        store.remove(MANIFEST_NAME)  # first: from here on the old dataset no longer looks complete
        log.info("removed the old %s of %s", MANIFEST_NAME, store.display_url)
    ours = re.compile(rf"^{re.escape(options.prefix)}-\d{{6}}\.(tar|idx)$")
    stale = [n for n in store.list()
             if n in (LABELS_NAME, REPORT_NAME) or ours.match(n) or _TEMP_RE.search(n)]
    for name in stale:
        store.remove(name)
    if stale:
        log.info("removed %d stale objects from %s", len(stale), store.display_url)

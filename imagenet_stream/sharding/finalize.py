"""Finalize a sharding run from its done-markers alone: duplicates, labels, report, manifest (last).

Reads every shard's marker once, in shard order (never a shard), and writes:

* ``exclusions.bin``: the global ids of exact duplicates across shards (same source sha256 as a
  sample earlier in plan order; :mod:`.dedup`), the exclusion overlay readers honour, so no
  committed shard is ever rewritten;
* ``labels.bin``: every sample's class index, shards in order;
* ``report.json``: what was kept and rejected, and why, aggregated from the markers and the plan
  (deterministic: the same for every run of the same plan, resumed or not);
* ``index.json``: the manifest, written last; its presence marks the dataset complete.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imagenet_stream.curation.download import FAILED, ROBOTS, SUCCESS
from imagenet_stream.curation.votes import TOO_FEW_VOTES, VOTED_OUT
from imagenet_stream.errors import ManifestError, NothingKeptError
from imagenet_stream.format import (
    EXCLUSIONS_NAME,
    LABELS_NAME,
    MANIFEST_NAME,
    REPORT_NAME,
    ClassesInfo,
    ExclusionsEntry,
    LabelsEntry,
    Manifest,
    ShardEntry,
    index_name,
    shard_name,
)
from imagenet_stream.format.download_status import STATUS_FOLDER
from imagenet_stream.format.overlay import encode_exclusions
from imagenet_stream.sharding.dedup import DuplicateFinder
from imagenet_stream.sharding.downloads import REJECTED
from imagenet_stream.sharding.markers import Marker, marker_name
from imagenet_stream.sharding.records import REJECT_REASONS
from imagenet_stream.sharding.report import MAX_EXAMPLES
from imagenet_stream.storage import Store

log = logging.getLogger(__name__)

_HOSTS_REPORTED = 20


def labels_dtype(num_classes: int) -> str:
    """``"<u2"`` when every class index fits in 16 bits, else ``"<u4"``."""
    return "<u2" if num_classes < 65536 else "<u4"


@dataclass
class PlanFacts:
    """What the report needs from the plan: records left out before any task ran, and renamed keys."""

    listed: int
    unknown_class: int = 0
    unknown_examples: list[dict[str, str]] = field(default_factory=list)
    collisions: int = 0
    collision_examples: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ManifestFields:
    name: str
    version: str
    created: str
    tool: str
    space_id: str
    wnids: tuple[str, ...]
    extra: dict[str, Any]


def read_markers(store: Store, done_folder: str, prefix: str, num_shards: int):
    """Every shard's marker, in shard order (ManifestError naming the first one missing)."""
    for number in range(num_shards):
        name = marker_name(done_folder, prefix, number)
        try:
            raw = store.read(name)
        except FileNotFoundError:
            raise ManifestError(f"{store.url_of(name)} is missing: shard {number} is not done") from None
        yield Marker.from_bytes(raw, where=store.url_of(name))


def finalize(store: Store, *, done_folder: str, prefix: str, num_shards: int, plan_hash: str,
             fields: ManifestFields, facts: PlanFacts, report_base: dict[str, Any],
             tmp_dir: str | None = None) -> tuple[Manifest, dict[str, Any]]:
    """Write exclusions, labels, report and manifest from the markers; return manifest and report."""
    sizes = {name: size for name, size, is_dir in store.entries() if not is_dir}
    num_classes = len(fields.wnids)
    dtype = labels_dtype(num_classes)
    rejected: Counter[str] = Counter()
    examples: dict[str, list[dict[str, str]]] = {}
    fixes: Counter[str] = Counter()
    counts = np.zeros(num_classes, dtype=np.int64)
    shards: list[ShardEntry] = []
    finder = DuplicateFinder(tmp_dir)
    labels_sha = hashlib.sha256()
    labels_bytes = 0
    label_parts: list[np.ndarray] = []  # every sample's class (2-4 bytes each): to discount duplicates
    seen = facts.unknown_class
    downloads = DownloadTally()
    next_gid = 0  # global sample id of the marker's first sample: its position in shard order
    try:
        with store.open_atomic(LABELS_NAME) as labels_out:
            for marker in read_markers(store, done_folder, prefix, num_shards):
                name = shard_name(prefix, marker.number)
                if marker.plan_hash != plan_hash or marker.shard != name:
                    raise ManifestError(f"marker of {name} belongs to another plan or shard ({marker.shard})")
                for what, want in ((name, marker.tar_bytes), (index_name(name), marker.index_bytes)):
                    if sizes.get(what) != want:
                        raise ManifestError(f"{store.url_of(what)} has {sizes.get(what)} bytes, its marker says {want}:"
                                            f" delete {store.url_of(marker_name(done_folder, prefix, marker.number))} "
                                            "and re-run to redo the shard")
                finder.add(marker.source_sha256, next_gid)
                next_gid += marker.num_samples
                raw_labels = marker.labels.astype(dtype).tobytes()
                labels_out.write(raw_labels)
                labels_sha.update(raw_labels)
                labels_bytes += len(raw_labels)
                label_parts.append(marker.labels.astype(dtype))
                counts += np.bincount(marker.labels.astype(np.int64), minlength=num_classes)
                seen += marker.planned
                rejected.update(marker.rejected)
                for reason, found in marker.examples.items():
                    bucket = examples.setdefault(reason, [])
                    bucket.extend(found[: MAX_EXAMPLES - len(bucket)])
                fixes.update(marker.fixes)
                downloads.add(marker.downloads)
                shards.append(ShardEntry(name=name, num_samples=marker.num_samples, bytes=marker.tar_bytes,
                                         sha256=marker.tar_sha256, index=index_name(name),
                                         index_bytes=marker.index_bytes, index_sha256=marker.index_sha256))
        duplicate_ids, kept_ids = finder.duplicates()
    finally:
        finder.close()
    labels = np.concatenate(label_parts) if label_parts else np.zeros(0, dtype)
    num_samples = sum(s.num_samples for s in shards)
    exclusions = None
    if duplicate_ids.size:
        counts -= np.bincount(labels[duplicate_ids.astype(np.int64)].astype(np.int64), minlength=num_classes)
        data, ex_dtype = encode_exclusions(duplicate_ids, num_samples)
        store.write_atomic(EXCLUSIONS_NAME, data)
        exclusions = ExclusionsEntry(EXCLUSIONS_NAME, ex_dtype, int(duplicate_ids.size), len(data),
                                     hashlib.sha256(data).hexdigest(), {"duplicate": int(duplicate_ids.size)})
        rejected["duplicate"] += int(duplicate_ids.size)
        bucket = examples.setdefault("duplicate", [])
        bucket.extend(_duplicate_examples(store, done_folder, prefix, shards, duplicate_ids, kept_ids,
                                          MAX_EXAMPLES - len(bucket)))
    elif store.exists(EXCLUSIONS_NAME):
        store.remove(EXCLUSIONS_NAME)  # left by an earlier, different run
    if facts.unknown_class:
        rejected["unknown_class"] += facts.unknown_class
        examples.setdefault("unknown_class", []).extend(facts.unknown_examples[:MAX_EXAMPLES])
    report = _report(report_base, fields, facts, seen=seen, kept=num_samples - int(duplicate_ids.size),
                     rejected=rejected, examples=examples, fixes=fixes, shards=shards)
    extra = dict(fields.extra)
    if downloads.urls:
        report["downloads"] = downloads.report()
        extra["downloads"] = {"status_folder": STATUS_FOLDER, "urls": downloads.urls,
                              "success": downloads.counts.get(SUCCESS, 0)}
    if not shards or num_samples == int(duplicate_ids.size):
        store.write_atomic(REPORT_NAME, json.dumps(report, indent=2).encode())

        raise NothingKeptError(f"no image was kept out of {seen}; see {store.url_of(REPORT_NAME)}", report)
    labels_entry = LabelsEntry(LABELS_NAME, dtype, labels_bytes, labels_sha.hexdigest())
    manifest = Manifest(name=fields.name, version=fields.version, created=fields.created, tool=fields.tool,
                        classes=ClassesInfo(fields.space_id, fields.wnids), num_samples=num_samples,
                        class_counts=tuple(int(c) for c in counts), shards=tuple(shards), labels=labels_entry,
                        extra=extra, exclusions=exclusions)
    store.write_atomic(REPORT_NAME, json.dumps(report, indent=2).encode())
    store.write_atomic(MANIFEST_NAME, manifest.to_json().encode("utf-8"))  # last: the dataset is complete
    return manifest, report


class DownloadTally:
    """A URL list run's download outcomes, summed over the shards' done-markers."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.synsets: dict[str, list[int]] = {}
        self.hosts: dict[str, Counter[str]] = {}

    @property
    def urls(self) -> int:
        return sum(self.counts.values())

    def add(self, summary: dict[str, Any] | None) -> None:
        if not summary:
            return
        self.counts.update(summary.get("counts", {}))
        self.errors.update(summary.get("errors", {}))
        for wnid, (ok, total) in summary.get("synsets", {}).items():
            tally = self.synsets.setdefault(wnid, [0, 0])
            tally[0] += int(ok)
            tally[1] += int(total)
        for host, errors in summary.get("hosts", {}).items():
            self.hosts.setdefault(host, Counter()).update(errors)

    def report(self) -> dict[str, Any]:
        """``report.json``'s ``downloads``: success rate overall and per synset (link rot), errors by
        class and the hosts failing most."""
        hosts = sorted(self.hosts.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[:_HOSTS_REPORTED]
        return {
            "urls": self.urls,
            **{status: self.counts.get(status, 0) for status in (SUCCESS, FAILED, REJECTED, ROBOTS)},
            "success_rate": round(self.counts.get(SUCCESS, 0) / self.urls, 4),
            "errors": dict(self.errors.most_common()),
            "hosts": {h: dict(c.most_common()) for h, c in hosts},
            "per_synset": {w: {"ok": ok, "total": total, "rate": round(ok / total, 4)}
                           for w, (ok, total) in sorted(self.synsets.items())},
            "status_files": f"{STATUS_FOLDER}/PREFIX-NNNNNN.(jsonl|parquet)",
        }


def _duplicate_examples(store: Store, done_folder: str, prefix: str, shards: list[ShardEntry],
                        duplicate_ids: np.ndarray, kept_ids: np.ndarray, limit: int) -> list[dict[str, str]]:
    """Up to ``limit`` examples ``{key, source, detail, sample}`` of duplicates (``sample``: the global id
    of the copy, still in the shards), read back from their markers."""
    if limit <= 0:
        return []
    starts = np.cumsum([0] + [s.num_samples for s in shards])
    wanted = list(zip(duplicate_ids[:limit].tolist(), kept_ids[:limit].tolist()))
    needed = {int(np.searchsorted(starts, gid, side="right")) - 1 for pair in wanted for gid in pair}
    keys: dict[int, str] = {}
    for number in sorted(needed):
        marker = Marker.from_bytes(store.read(marker_name(done_folder, prefix, number)))
        base = int(starts[number])
        for gid in {g for pair in wanted for g in pair}:
            if base <= gid < base + marker.num_samples:
                keys[gid] = marker.keys[gid - base]
    return [{"key": keys.get(d, str(d)), "source": f"{shards[int(np.searchsorted(starts, d, side='right')) - 1].name}",
             "detail": f"same bytes as {keys.get(k, str(k))} (excluded by the overlay)", "sample": str(d)}
            for d, k in wanted]


def _report(base: dict[str, Any], fields: ManifestFields, facts: PlanFacts, *, seen: int, kept: int,
            rejected: Counter[str], examples: dict[str, list[dict[str, str]]], fixes: Counter[str],
            shards: list[ShardEntry]) -> dict[str, Any]:
    order = [r for r in REJECT_REASONS if r in rejected] + sorted(set(rejected) - set(REJECT_REASONS))
    if "votes" in base:  # the vote filter's outcome: kept, and rejected per rule
        base = {**base, "votes": {**base["votes"], "kept": kept,
                                  **{r: rejected.get(r, 0) for r in (TOO_FEW_VOTES, VOTED_OUT)}}}
    return {
        **base,
        "class_space": {"id": fields.space_id, "num_classes": len(fields.wnids)},
        "seen": seen,
        "kept": kept,
        "rejected_total": sum(rejected.values()),
        "rejected": {r: {"count": rejected[r], "examples": examples.get(r, [])} for r in order},
        "duplicates": rejected.get("duplicate", 0),
        "key_collisions": {"count": facts.collisions, "examples": facts.collision_examples},
        "fixes": dict(sorted(fixes.items())),
        "shards": len(shards),
        "bytes": sum(s.bytes for s in shards),
    }


__all__ = ["ManifestFields", "PlanFacts", "finalize", "labels_dtype", "read_markers"]

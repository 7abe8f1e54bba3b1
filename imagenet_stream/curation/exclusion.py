"""New dataset versions that exclude samples, without touching a shard.

``exclude(parent, out, ...)`` writes, under ``out``, an ``index.json`` over the **parent's shards**
(``shards_at`` / ``indexes_at`` point at them by URL; nothing is copied or rewritten, and the parent
stays readable unchanged), the parent's ``labels.bin`` (a small file), and an exclusion overlay
(``exclusions.bin``) holding the parent's exclusions plus the new ones. Class counts are updated;
the manifest's ``extra.lineage`` lists every version step: the parent's URL, name, version and
``index.json`` sha256, what was excluded, why, and how many samples per reason.

What can be excluded: whole synsets (a WordNet node: every class of the dataset at or below it,
through the shipped hierarchy, e.g. ``n00007846`` person for a winter21-style release), and sample
keys (an opt-out or takedown list: one key per line, optionally ``KEY<TAB>REASON``). A sample
matched by several selectors counts under the first reason (synsets, then keys); one the parent
already excluded keeps the parent's reason.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import numpy as np
from tqdm import tqdm

from imagenet_stream import __version__
from imagenet_stream.curation.registry import DEFAULT_REASON, parse_registry
from imagenet_stream.errors import ConfigError
from imagenet_stream.format import EXCLUSIONS_NAME, LABELS_NAME, MANIFEST_NAME, Manifest
from imagenet_stream.format.manifest import ExclusionsEntry
from imagenet_stream.format.overlay import encode_exclusions, load_exclusions
from imagenet_stream.storage import Store
from imagenet_stream.streaming.classes import resolve_classes
from imagenet_stream.streaming.roots import Source, labels_per_shard, manifest_source, source_reader
from imagenet_stream.urls import absolute_url

log = logging.getLogger(__name__)

#: Default reasons of the selectors.
SYNSET_REASON, KEY_REASON = "synset_removed", DEFAULT_REASON
_READERS = 16  # side indexes fetched at once when keys must be matched


@dataclass(frozen=True)
class Excluded:
    """The new version: its manifest and what this step excluded per reason."""

    manifest: Manifest
    added: dict[str, int]
    unmatched_keys: int


def read_key_list(text: str, default_reason: str = KEY_REASON) -> dict[str, str]:
    """``{key: reason}`` from a registry's text (:mod:`.registry`: ``KEY`` or ``KEY<TAB>REASON`` per line)."""
    registry = parse_registry(text, default_reason, where="key list")
    if registry.sha256:
        raise ConfigError("key list: exclude matches sample keys; sha256 entries apply when sharding "
                          "(imagenet-stream shard --opt-out FILE)")
    return registry.keys


def _synset_ids(manifest: Manifest, labels: np.ndarray, synsets: Sequence[str]) -> np.ndarray:
    chosen = np.zeros(manifest.classes.num_classes, dtype=bool)
    for wnid in synsets:
        subset = resolve_classes(wnid, manifest.classes.wnids, strict=False)
        chosen |= subset.remap >= 0
    return np.flatnonzero(chosen[labels])


def _key_ids(source: Source, store: Store, keys: Mapping[str, str], progress: bool
             ) -> tuple[dict[str, np.ndarray], int]:
    """Global ids of the listed keys, per reason (every side index read once); and how many keys no
    sample has."""
    reader = source_reader(source, store)
    starts = np.concatenate([[0], np.cumsum(source.sample_counts)]).astype(np.int64)
    found: dict[str, list[int]] = {}
    matched: set[str] = set()
    with ThreadPoolExecutor(_READERS) as pool:
        indexes = pool.map(reader.side_index, range(len(source.shards)))
        for s, index in enumerate(tqdm(indexes, total=len(source.shards), desc="matching keys", unit="shard",
                                       disable=not progress)):
            for i, key in enumerate(index.keys):
                reason = keys.get(key)
                if reason is not None:
                    found.setdefault(reason, []).append(int(starts[s] + i))
                    matched.add(key)
    return {r: np.asarray(v, dtype=np.int64) for r, v in found.items()}, len(set(keys) - matched)


def exclude(parent_url: str, out_url: str, *, synsets: Sequence[str] = (), keys: Mapping[str, str] | None = None,
            synset_reason: str = SYNSET_REASON, version: str | None = None, note: str | None = None,
            storage_options: Mapping[str, object] | None = None, progress: bool = False) -> Excluded:
    """Write a new version of ``parent_url`` at ``out_url`` with more samples excluded (module docstring)."""
    if not synsets and not keys:
        raise ConfigError("nothing to exclude: give synsets and/or keys")
    if absolute_url(parent_url).rstrip("/") == absolute_url(out_url).rstrip("/"):
        raise ConfigError("the new version must go to another folder: the parent is never modified")
    options = dict(storage_options or {})
    parent = Store(parent_url, options)
    raw_parent = parent.read(MANIFEST_NAME) if parent.exists(MANIFEST_NAME) else None
    if raw_parent is None:
        raise ConfigError(f"{parent.url_of(MANIFEST_NAME)} not found: not a dataset root")
    manifest = Manifest.from_json(raw_parent, where=parent.url_of(MANIFEST_NAME))
    source = manifest_source(parent, manifest)
    out = Store(out_url, options)
    if out.exists(MANIFEST_NAME):
        raise ConfigError(f"{out.url_of(MANIFEST_NAME)} exists: choose a new folder for the new version")

    before = load_exclusions(parent, manifest)
    labels = np.concatenate(labels_per_shard(source, parent)).astype(np.int64)
    selected: list[tuple[str, np.ndarray]] = []
    if synsets:
        selected.append((synset_reason, _synset_ids(manifest, labels, synsets)))
    unmatched = 0
    if keys:
        by_reason, unmatched = _key_ids(source, parent, keys, progress)
        selected += sorted(by_reason.items())
        if unmatched:
            log.warning("%d listed key(s) are not samples of %s", unmatched, parent.display_url)
    taken = before.copy()
    added: dict[str, int] = {}
    for reason, ids in selected:
        new = np.setdiff1d(np.unique(ids), taken, assume_unique=True)
        if new.size:
            added[reason] = added.get(reason, 0) + int(new.size)
            taken = np.union1d(taken, new)
    reasons = Counter(dict(manifest.exclusions.reasons) if manifest.exclusions else {})
    reasons.update(added)
    data, dtype = encode_exclusions(taken, manifest.num_samples)
    kept = np.ones(manifest.num_samples, dtype=bool)
    kept[taken] = False
    counts = np.bincount(labels[kept], minlength=manifest.classes.num_classes)
    step = {"parent": absolute_url(parent.url), "parent_name": manifest.name, "parent_version": manifest.version,
            "parent_sha256": hashlib.sha256(raw_parent).hexdigest(), "excluded": dict(added),
            "synsets": list(synsets), "keys_listed": len(keys or {}), "keys_unmatched": unmatched,
            "tool": f"imagenet-stream {__version__}"}
    if note:
        step["note"] = note
    extra = dict(manifest.extra)
    extra["lineage"] = list(manifest.extra.get("lineage") or []) + [step]
    new_manifest = replace(
        manifest, version=version or f"{manifest.version}.1", format_version=2,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        class_counts=tuple(int(c) for c in counts), shards_at=absolute_url(source.shards_root),
        indexes_at=absolute_url(source.indexes_root), extra=extra,
        exclusions=ExclusionsEntry(EXCLUSIONS_NAME, dtype, int(taken.size), len(data),
                                   hashlib.sha256(data).hexdigest(), dict(reasons)))
    out.makedirs()
    if manifest.labels is not None:
        out.write_atomic(LABELS_NAME, parent.read(manifest.labels.name))
    out.write_atomic(EXCLUSIONS_NAME, data)
    out.write_atomic(MANIFEST_NAME, new_manifest.to_json().encode())  # last: the version exists once it is there
    log.info("%s: version %s excludes %d more sample(s) (%s) over the shards of %s", out.display_url,
             new_manifest.version, sum(added.values()), json.dumps(added), parent.display_url)
    return Excluded(new_manifest, added, unmatched)


__all__ = ["Excluded", "KEY_REASON", "SYNSET_REASON", "exclude", "read_key_list"]

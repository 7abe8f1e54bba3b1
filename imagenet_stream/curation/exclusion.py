"""New dataset versions that exclude samples, without touching a shard.

``exclude(parent, out, ...)`` writes, under ``out``, an ``index.json`` over the **parent's shards**
(``shards_at`` / ``indexes_at`` point at them by URL; nothing is copied or rewritten, and the parent
stays readable unchanged), the parent's ``labels.bin`` (a small file), and an exclusion overlay
(``exclusions.bin``) holding the parent's exclusions plus the new ones. Class counts are updated;
the manifest's ``extra.lineage`` lists every version step: the parent's URL, name, version and
``index.json`` sha256, what was excluded, why, and how many samples per reason.

What can be excluded: whole synsets (a WordNet node: every class of the dataset at or below it,
through the shipped hierarchy, e.g. ``n00007846`` person for a winter21-style release); sample
keys (an opt-out or takedown list: one key per line, optionally ``KEY<TAB>REASON``); image hashes
(``sha256:<hex>`` or a bare 64-hex digest per line: the stored image's or the source file's sha256,
matched against the side indexes, which hold both); the near-duplicates and leaking samples of a
``dedup`` report (:func:`~imagenet_stream.curation.duplicates.dedup_exclusions`); and, for datasets
downloaded from URL lists, source URLs (matched in the per-shard download status files). A sample
matched by several selectors counts under the first reason (synsets, keys, hashes, URLs, dedup);
one the parent already excluded keeps the parent's reason. No selector reads a shard.
"""
from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from imagenet_stream.curation.duplicates import dedup_exclusions, read_report
from imagenet_stream.curation.registry import DEFAULT_REASON, REGISTRY_REASON, parse_registry
from imagenet_stream.curation.versions import new_version_store, open_parent, write_version
from imagenet_stream.errors import ConfigError
from imagenet_stream.format import Manifest
from imagenet_stream.format.download_status import read_status_rows
from imagenet_stream.format.overlay import sorted_unique
from imagenet_stream.rows import reasoned_entries
from imagenet_stream.storage import Store
from imagenet_stream.streaming.classes import resolve_classes
from imagenet_stream.streaming.roots import Source, source_reader

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


def read_digest_list(text: str, default_reason: str = KEY_REASON) -> dict[str, str]:
    """``{sha256 hex: reason}`` from lines ``sha256:<hex>`` or ``<hex>``, optionally ``<TAB>REASON``."""
    out: dict[str, str] = {}
    for where, entry, reason in reasoned_entries(text, "sha256 list", default_reason, REGISTRY_REASON, ConfigError):
        digest = entry.lower().removeprefix("sha256:")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigError(f"{where}: expected sha256:<64 hex> or <64 hex>, got {entry[:80]!r}")
        out[digest] = reason
    return out


def read_url_list(text: str, default_reason: str = KEY_REASON) -> dict[str, str]:
    """``{url: reason}`` from lines ``URL`` or ``URL<TAB>REASON`` (``#`` comments)."""
    out: dict[str, str] = {}
    for where, url, reason in reasoned_entries(text, "URL list", default_reason, REGISTRY_REASON, ConfigError):
        if "://" not in url:
            raise ConfigError(f"{where}: expected a URL, got {url[:80]!r}")
        out[url] = reason
    return out


def _keys_of_urls(source: Source, store: Store, manifest: Manifest, urls: Mapping[str, str]
                  ) -> tuple[dict[str, str], int]:
    """``{key: reason}`` of the samples downloaded from ``urls`` (from the download status files beside
    the shards: a URL list run's record of which URL became which key), and how many URLs matched none."""
    downloads = manifest.extra.get("downloads")
    if not downloads:
        raise ConfigError(f"{store.display_url} was not downloaded from a URL list (its index.json has no "
                          "download record): exclude by --keys or --sha256")
    shards = store.elsewhere(source.shards_root)
    folder = downloads.get("status_folder", "status")
    keys: dict[str, str] = {}
    matched: set[str] = set()
    for name, _, is_dir in shards.entries(folder):
        if is_dir or not name.endswith((".jsonl", ".parquet")):
            continue
        for row in read_status_rows(shards, f"{folder}/{name}"):
            url = str(row.get("url"))
            reason = urls.get(url)
            if reason is not None and row.get("status") == "success":
                keys[str(row["key"])] = reason
                matched.add(url)
    return keys, len(urls) - len(matched)


def _match_side_indexes(source: Source, store: Store, keys: Mapping[str, str], digests: Mapping[str, str],
                        progress: bool) -> tuple[dict[str, np.ndarray], int, int]:
    """Global ids of the listed keys and sha256 digests, per reason (every side index read once),
    and how many keys and digests no sample has."""
    reader = source_reader(source, store)
    starts = np.concatenate([[0], np.cumsum(source.sample_counts)]).astype(np.int64)
    found: dict[str, list[int]] = {}
    matched_keys: set[str] = set()
    matched_digests: set[str] = set()
    with ThreadPoolExecutor(_READERS) as pool:
        indexes = pool.map(reader.side_index, range(len(source.shards)))
        for s, index in enumerate(tqdm(indexes, total=len(source.shards), desc="matching samples", unit="shard",
                                       disable=not progress)):
            for i, key in enumerate(index.keys):
                reason = keys.get(key)
                if reason is not None:
                    found.setdefault(reason, []).append(int(starts[s] + i))
                    matched_keys.add(key)
            if not digests:
                continue
            if index.sha256 is None:
                raise ConfigError(f"{store.display_url}: shard {source.shards[s].name}'s side index holds no "
                                  "sha256 (sharded before they were indexed, or foreign shards); exclude by "
                                  "--keys, or shard it again with this release")
            for i in range(index.num_samples):
                for digest in {index.digest(i), index.digest(i, source=True)}:
                    reason = digests.get(digest or "")
                    if reason is not None:
                        found.setdefault(reason, []).append(int(starts[s] + i))
                        matched_digests.add(digest or "")
    return ({r: np.asarray(v, dtype=np.int64) for r, v in found.items()}, len(set(keys) - matched_keys),
            len(set(digests) - matched_digests))


def exclude(parent_url: str, out_url: str, *, synsets: Sequence[str] = (), keys: Mapping[str, str] | None = None,
            sha256: Mapping[str, str] | None = None, urls: Mapping[str, str] | None = None,
            from_dedup: str | None = None,
            synset_reason: str = SYNSET_REASON, version: str | None = None, note: str | None = None,
            storage_options: Mapping[str, object] | None = None, progress: bool = False) -> Excluded:
    """Write a new version of ``parent_url`` at ``out_url`` with more samples excluded (module docstring)."""
    if not synsets and not keys and not sha256 and not urls and not from_dedup:
        raise ConfigError("nothing to exclude: give synsets, keys, sha256 digests, URLs and/or a dedup report")
    opened = open_parent(parent_url, storage_options)
    parent, manifest, source = opened.store, opened.manifest, opened.source
    out = new_version_store(opened, out_url, storage_options)

    before = opened.excluded()
    labels = opened.labels()
    selected: list[tuple[str, np.ndarray]] = []
    if synsets:
        selected.append((synset_reason, _synset_ids(manifest, labels, synsets)))
    unmatched = unmatched_digests = unmatched_urls = 0
    if urls:
        url_keys, unmatched_urls = _keys_of_urls(source, parent, manifest, urls)
        keys = {**url_keys, **(keys or {})}  # a key listed by itself keeps its own reason
        if unmatched_urls:
            log.warning("%d listed URL(s) gave no sample of %s", unmatched_urls, parent.display_url)
    if keys or sha256:
        by_reason, unmatched, unmatched_digests = _match_side_indexes(source, parent, keys or {}, sha256 or {},
                                                                      progress)
        selected += sorted(by_reason.items())
        if unmatched:
            log.warning("%d listed key(s) are not samples of %s", unmatched, parent.display_url)
        if unmatched_digests:
            log.warning("%d listed sha256 digest(s) match no sample of %s", unmatched_digests, parent.display_url)
    if from_dedup:
        summary, rows = read_report(from_dedup)
        reported = (summary.get("dataset") or {}).get("index_sha256")
        if reported != opened.sha256:
            raise ConfigError(f"the dedup report in {from_dedup} is of another dataset or version "
                              f"({(summary.get('dataset') or {}).get('url')}); run dedup on {parent.display_url}")
        selected += sorted((reason, ids) for reason, ids in dedup_exclusions(summary, rows).items() if ids.size)
    taken = before.copy()
    added: dict[str, int] = {}
    for reason, ids in selected:
        new = np.setdiff1d(sorted_unique(ids), taken, assume_unique=True)
        if new.size:
            added[reason] = added.get(reason, 0) + int(new.size)
            taken = sorted_unique(np.concatenate([taken, new]))
    reasons = Counter(dict(manifest.exclusions.reasons) if manifest.exclusions else {})
    reasons.update(added)
    step = opened.step(excluded=dict(added), synsets=list(synsets), keys_listed=len(keys or {}),
                       keys_unmatched=unmatched, sha256_listed=len(sha256 or {}), sha256_unmatched=unmatched_digests,
                       urls_listed=len(urls or {}), urls_unmatched=unmatched_urls,
                       dedup_report=from_dedup and os.path.abspath(from_dedup), **({"note": note} if note else {}))
    new_manifest = write_version(opened, out, excluded=taken, reasons=reasons, labels=labels, step=step,
                                 version=version or f"{manifest.version}.1")
    log.info("%s: version %s excludes %d more sample(s) (%s) over the shards of %s", out.display_url,
             new_manifest.version, sum(added.values()), json.dumps(added), parent.display_url)
    return Excluded(new_manifest, added, unmatched)


__all__ = ["Excluded", "KEY_REASON", "SYNSET_REASON", "exclude", "read_key_list"]

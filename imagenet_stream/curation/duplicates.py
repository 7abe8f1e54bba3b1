"""Near-duplicates within a dataset and across datasets (train <-> val/test leakage), from the
perceptual hashes the sharder stored in the side indexes: no image is decoded again.

``dedup(dataset, against=[...], max_distance=D, out=DIR)`` writes to ``DIR``:

* ``pairs.csv``: one row per pair within ``D`` bits: ``kind`` (``within``: both in the dataset;
  ``leakage``: the dataset's sample and one of an ``against`` dataset), both datasets, both keys,
  both global sample indices, both sha256 and the distance;
* ``summary.json``: the parameters, each dataset (URL, name, version, ``index.json`` sha256, samples
  searched), the number of pairs and groups, the distances' histogram, how long it took.

Samples a dataset version excludes are not searched. ``exclude DATASET --from-dedup DIR`` then
publishes a version without them (see :func:`dedup_exclusions` for which members go).
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from imagenet_stream.curation.hash_index import HashIndex, all_pairs, groups_of
from imagenet_stream.errors import ConfigError, ManifestError
from imagenet_stream.format import MANIFEST_NAME, Manifest, SideIndex
from imagenet_stream.format.overlay import load_exclusions
from imagenet_stream.storage import Store
from imagenet_stream.streaming.roots import Source, manifest_source, source_reader
from imagenet_stream.urls import absolute_url

log = logging.getLogger(__name__)

#: The default Hamming distance (of 64 bits) under which two images are near-duplicates; see
#: docs/CURATION.md for the precision and recall measured on planted copies at this distance.
DEFAULT_MAX_DISTANCE = 10
PAIRS_NAME, SUMMARY_NAME = "pairs.csv", "summary.json"
PAIR_COLUMNS = ("kind", "dataset_a", "key_a", "index_a", "sha256_a", "dataset_b", "key_b", "index_b", "sha256_b",
                "distance")
#: Reasons ``exclude --from-dedup`` records.
NEAR_DUPLICATE_REASON, LEAKAGE_REASON = "near_duplicate", "leakage"
_READERS = 16


@dataclass
class HashTable:
    """One dataset's searchable samples: global indices and perceptual hashes, plus how to name them."""

    url: str
    manifest: Manifest
    manifest_sha256: str
    source: Source
    store: Store
    ids: np.ndarray          # int64 global sample indices searched (exclusions left out)
    hashes: np.ndarray       # uint64, one per id

    def describe(self) -> dict[str, object]:
        return {"url": self.url, "name": self.manifest.name, "version": self.manifest.version,
                "index_sha256": self.manifest_sha256, "samples": int(self.ids.size)}


def load_hashes(url: str, storage_options: Mapping[str, object] | None = None, progress: bool = False) -> HashTable:
    """The perceptual hashes of every sample of the dataset at ``url`` (each side index read once)."""
    store = Store(url, dict(storage_options or {}))
    if not store.exists(MANIFEST_NAME):
        raise ConfigError(f"{store.url_of(MANIFEST_NAME)} not found: dedup needs a dataset made by "
                          "imagenet-stream shard (or a version of one)")
    raw = store.read(MANIFEST_NAME)
    manifest = Manifest.from_json(raw, where=store.url_of(MANIFEST_NAME))
    source = manifest_source(store, manifest)
    reader = source_reader(source, store)
    parts: list[np.ndarray] = []
    with ThreadPoolExecutor(_READERS) as pool:
        for s, index in enumerate(tqdm(pool.map(reader.side_index, range(len(source.shards))),
                                       total=len(source.shards), desc=f"hashes of {manifest.name}", unit="shard",
                                       disable=not progress)):
            if index.phash is None:
                raise ManifestError(f"{store.display_url}: shard {source.shards[s].name} has no perceptual "
                                    "hashes (sharded before they were stored, or foreign shards): shard it "
                                    "again with this release to search it")
            parts.append(index.phash)
    hashes = np.concatenate(parts) if parts else np.zeros(0, np.uint64)
    keep = np.ones(hashes.size, dtype=bool)
    keep[load_exclusions(store, manifest)] = False
    ids = np.flatnonzero(keep).astype(np.int64)
    return HashTable(absolute_url(store.url), manifest, hashlib.sha256(raw).hexdigest(), source, store, ids,
                     hashes[ids])


class _Identities:
    """Key and sha256 of global sample indices, from the side indexes of their shards (an LRU)."""

    def __init__(self, table: HashTable) -> None:
        self.table = table
        self.starts = np.concatenate([[0], np.cumsum(table.source.sample_counts)]).astype(np.int64)
        self.reader = source_reader(table.source, table.store)

    def __call__(self, sample: int) -> tuple[str, str]:
        shard = int(np.searchsorted(self.starts, sample, side="right") - 1)
        index: SideIndex = self.reader.side_index(shard)
        i = sample - int(self.starts[shard])
        return index.keys[i], index.digest(i) or ""


def _rows(kind: str, a: HashTable, b: HashTable, ia: np.ndarray, ib: np.ndarray, distance: np.ndarray
          ) -> Iterator[list[object]]:
    name_a, name_b = _Identities(a), _Identities(b)
    order = np.lexsort((b.ids[ib], a.ids[ia]))
    for k in order.tolist():
        ga, gb = int(a.ids[ia[k]]), int(b.ids[ib[k]])
        key_a, sha_a = name_a(ga)
        key_b, sha_b = name_b(gb)
        yield [kind, a.url, key_a, ga, sha_a, b.url, key_b, gb, sha_b, int(distance[k])]


def dedup(url: str, out: str, *, against: Sequence[str] = (), max_distance: int = DEFAULT_MAX_DISTANCE,
          storage_options: Mapping[str, object] | None = None, bands: int | None = None,
          progress: bool = False) -> dict[str, object]:
    """Find near-duplicate pairs within ``url`` and between ``url`` and each of ``against``; write
    ``pairs.csv`` and ``summary.json`` to the local folder ``out``; return the summary."""
    started = time.monotonic()
    own = load_hashes(url, storage_options, progress)
    others = [load_hashes(u, storage_options, progress) for u in against]
    if any(o.manifest_sha256 == own.manifest_sha256 and o.url == own.url for o in others):
        raise ConfigError("--against names the dataset itself; give the other datasets (val, test)")
    index = HashIndex(own.hashes, bands=bands)
    os.makedirs(out, exist_ok=True)
    histogram: Counter[int] = Counter()
    counts: dict[str, int] = {}
    group_sizes: Counter[int] = Counter()
    leaking: dict[str, int] = {}
    with open(os.path.join(out, PAIRS_NAME + ".tmp"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(PAIR_COLUMNS)
        q, s, d = all_pairs(index, own.hashes, max_distance, exclude_self=True)
        histogram.update(d.tolist())
        writer.writerows(_rows("within", own, own, q, s, d))
        counts["within"] = int(q.size)
        groups = groups_of(own.ids[q], own.ids[s])
        group_sizes.update(len(g) for g in groups)
        for other in others:
            q, s, d = all_pairs(index, other.hashes, max_distance)
            histogram.update(d.tolist())
            writer.writerows(_rows("leakage", own, other, s, q, d))
            counts[f"leakage:{other.url}"] = int(q.size)
            leaking[other.url] = int(np.unique(s).size)
    os.replace(os.path.join(out, PAIRS_NAME + ".tmp"), os.path.join(out, PAIRS_NAME))
    summary: dict[str, object] = {
        "format": 1, "dataset": own.describe(), "against": [o.describe() for o in others],
        "max_distance": max_distance, "hash": "phash64-mirror (imagenet_stream.curation.phash)",
        "bands": index.bands, "pairs": counts,
        "groups": {"count": len(groups), "samples": sum(len(g) for g in groups),
                   "sizes": {str(k): v for k, v in sorted(group_sizes.items())}},
        "leaking_samples": leaking,
        "distance_histogram": {str(k): v for k, v in sorted(histogram.items())},
        "seconds": round(time.monotonic() - started, 3),
    }
    with open(os.path.join(out, SUMMARY_NAME), "w") as f:
        json.dump(summary, f, indent=2)
    log.info("dedup of %s: %s", own.url, json.dumps(counts))
    return summary


def read_report(folder: str) -> tuple[dict, list[dict[str, str]]]:
    """``(summary, pair rows)`` of a dedup report folder."""
    try:
        with open(os.path.join(folder, SUMMARY_NAME)) as f:
            summary = json.load(f)
        with open(os.path.join(folder, PAIRS_NAME), newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{folder} is not a dedup report (imagenet-stream dedup --out DIR): {exc}") from None
    return summary, rows


def dedup_exclusions(summary: Mapping, rows: Sequence[Mapping[str, str]]) -> dict[str, np.ndarray]:
    """What ``exclude --from-dedup`` removes from the report's dataset, by reason:

    * ``near_duplicate``: in each group of near-duplicates within the dataset (connected by pairs),
      every member but the one with the smallest key (so the choice does not depend on how the
      images were sharded);
    * ``leakage``: every sample of the dataset within the distance of a sample of an ``against``
      dataset (the held-out side is never touched: it is the one being evaluated on).
    """
    within = [(int(r["index_a"]), int(r["index_b"]), r["key_a"], r["key_b"]) for r in rows if r["kind"] == "within"]
    key_of: dict[int, str] = {}
    for a, b, ka, kb in within:
        key_of[a], key_of[b] = ka, kb
    dropped = [g for group in groups_of(np.array([w[0] for w in within], np.int64),
                                        np.array([w[1] for w in within], np.int64))
               for g in sorted(group, key=lambda i: key_of[i])[1:]]
    leaking = [int(r["index_a"]) for r in rows if r["kind"] == "leakage"]
    return {NEAR_DUPLICATE_REASON: np.unique(np.asarray(dropped, np.int64)),
            LEAKAGE_REASON: np.unique(np.asarray(leaking, np.int64))}


__all__ = ["DEFAULT_MAX_DISTANCE", "LEAKAGE_REASON", "NEAR_DUPLICATE_REASON", "PAIR_COLUMNS", "HashTable",
           "dedup", "dedup_exclusions", "load_hashes", "read_report"]

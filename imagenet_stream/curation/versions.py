"""Publishing a new dataset version over its parent's shards: what ``exclude`` and ``split`` share.

A version is a new ``index.json`` in its own folder whose ``shards_at`` / ``indexes_at`` point at
the parent's shards (nothing copied or rewritten; the parent stays readable as it is), a copy of the
parent's ``labels.bin`` (small), an exclusion overlay (``exclusions.bin``: ids or a bitmap, whichever
is smaller) of every sample it does not hold, class counts of what it holds, optionally its own class
space (``targets``), and its lineage: one step per version in ``extra.lineage``.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np

from imagenet_stream import __version__
from imagenet_stream.errors import ConfigError
from imagenet_stream.format import EXCLUSIONS_NAME, LABELS_NAME, MANIFEST_NAME, ClassesInfo, Manifest
from imagenet_stream.format.manifest import ExclusionsEntry
from imagenet_stream.format.overlay import encode_exclusions, load_exclusions
from imagenet_stream.storage import Store
from imagenet_stream.streaming.roots import Source, labels_per_shard, manifest_source
from imagenet_stream.urls import absolute_url


@dataclass
class Parent:
    """An opened parent dataset: its store, ``index.json`` bytes and manifest, and its shards."""

    store: Store
    raw: bytes
    manifest: Manifest
    source: Source

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    def excluded(self) -> np.ndarray:
        """The parent's own exclusions (sorted global ids)."""
        return load_exclusions(self.store, self.manifest)

    def labels(self) -> np.ndarray:
        """Every sample's class index in the parent's space (int64; one pass over ``labels.bin``)."""
        return np.concatenate(labels_per_shard(self.source, self.store)).astype(np.int64)

    def step(self, **fields: Any) -> dict[str, Any]:
        """A lineage step from this parent."""
        return {"parent": absolute_url(self.store.url), "parent_name": self.manifest.name,
                "parent_version": self.manifest.version, "parent_sha256": self.sha256, **fields,
                "tool": f"imagenet-stream {__version__}"}


def open_parent(url: str, storage_options: Mapping[str, object] | None) -> Parent:
    store = Store(url, dict(storage_options or {}))
    if not store.exists(MANIFEST_NAME):
        raise ConfigError(f"{store.url_of(MANIFEST_NAME)} not found: not a dataset root")
    raw = store.read(MANIFEST_NAME)
    manifest = Manifest.from_json(raw, where=store.url_of(MANIFEST_NAME))
    return Parent(store, raw, manifest, manifest_source(store, manifest))


def new_version_store(parent: Parent, url: str, storage_options: Mapping[str, object] | None) -> Store:
    """The store of a new version's folder: another folder than the parent's, without an index.json."""
    if absolute_url(parent.store.url).rstrip("/") == absolute_url(url).rstrip("/"):
        raise ConfigError("the new version must go to another folder: the parent is never modified")
    out = Store(url, dict(storage_options or {}))
    if out.exists(MANIFEST_NAME):
        raise ConfigError(f"{out.url_of(MANIFEST_NAME)} exists: choose a new folder for the new version")
    return out


def write_version(parent: Parent, out: Store, *, excluded: np.ndarray, reasons: Mapping[str, int],
                  labels: np.ndarray, step: Mapping[str, Any], version: str,
                  targets: ClassesInfo | None = None) -> Manifest:
    """Write the version holding every sample of ``parent`` but ``excluded`` (sorted unique global ids;
    ``reasons`` counts them and must add up) to ``out``; return its manifest."""
    m = parent.manifest
    data, dtype = encode_exclusions(excluded, m.num_samples)
    kept = np.ones(m.num_samples, dtype=bool)
    kept[excluded] = False
    counts = np.bincount(labels[kept], minlength=m.classes.num_classes)
    extra = dict(m.extra)
    extra["lineage"] = list(m.extra.get("lineage") or []) + [dict(step)]
    manifest = replace(
        m, version=version, format_version=2,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        class_counts=tuple(int(c) for c in counts), shards_at=absolute_url(parent.source.shards_root),
        indexes_at=absolute_url(parent.source.indexes_root), extra=extra,
        targets=targets if targets is not None else m.targets,
        exclusions=ExclusionsEntry(EXCLUSIONS_NAME, dtype, int(excluded.size), len(data),
                                   hashlib.sha256(data).hexdigest(), dict(reasons)))
    out.makedirs()
    if m.labels is not None:
        out.write_atomic(LABELS_NAME, parent.store.read(m.labels.name))
    out.write_atomic(EXCLUSIONS_NAME, data)
    out.write_atomic(MANIFEST_NAME, manifest.to_json().encode())  # last: the version exists once it is there
    return manifest


__all__ = ["Parent", "new_version_store", "open_parent", "write_version"]

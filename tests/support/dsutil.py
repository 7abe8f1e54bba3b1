"""Build small datasets with the real shard contract (ShardWriter + SideIndex + Manifest + labels.bin),
written through Store, for the streaming tests. Independent of the sharder."""
from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from imagenet_stream.format import (
    LABELS_NAME,
    MANIFEST_NAME,
    ClassesInfo,
    LabelsEntry,
    Manifest,
    Sample,
    ShardEntry,
    ShardWriter,
    index_name,
    shard_name,
)
from imagenet_stream.storage import Store
from imagenet_stream.synthetic import make_jpeg

#: Real ILSVRC wnids: 3 dogs (under n02084071), 2 cats (under n02121808 cat), 2 fish.
DOGS = ("n02085620", "n02085782", "n02086240")
CATS = ("n02123045", "n02123159")
FISH = ("n01440764", "n01443537")
WNIDS = tuple(sorted(DOGS + CATS + FISH))
NOT_A_JPEG = b"this is not an image at all"


@lru_cache(maxsize=None)
def jpeg(i: int, width: int = 64, height: int = 48) -> bytes:
    """A small photo-like JPEG; 32 distinct images are reused so building stays fast."""
    return make_jpeg(width, height, seed=i % 32, quality=80)


@dataclass(frozen=True)
class Built:
    """A written dataset: where it is and what each sample is."""

    url: str
    manifest: Manifest
    keys: tuple[tuple[str, ...], ...]   # per shard, in shard order
    labels: dict[str, int]              # key -> class index
    images: dict[str, bytes]            # key -> stored image bytes

    @property
    def all_keys(self) -> list[str]:
        return [k for shard in self.keys for k in shard]

    def wnid(self, key: str) -> str:
        return self.manifest.classes.wnids[self.labels[key]]


def default_label(i: int, num_classes: int) -> int:
    return (i * 7 + i // 5) % num_classes


def build_dataset(url: str, num_samples: int = 60, per_shard: int = 10, *, wnids: Sequence[str] = WNIDS,
                  label_of: Callable[[int], int] | None = None, corrupt: Sequence[int] = (),
                  labels_bin: bool = True, storage_options: dict | None = None, prefix: str = "train",
                  sizes: Callable[[int], tuple[int, int]] | None = None) -> Built:
    """Write ``num_samples`` samples in shards of ``per_shard`` (last one short) plus index.json.

    Sample ``i`` has key ``s{i:05d}``, class ``label_of(i)`` (default: class-mixed) and a JPEG,
    except the indices in ``corrupt`` whose image bytes are not an image.
    """
    store = Store(url, storage_options)
    store.makedirs()
    label_of = label_of or (lambda i: default_label(i, len(wnids)))
    shards, all_keys, labels, images, flat_labels = [], [], {}, {}, []
    for number, first in enumerate(range(0, num_samples, per_shard)):
        name = shard_name(prefix, number)
        buf = io.BytesIO()
        writer = ShardWriter(buf, name)
        keys = []
        for i in range(first, min(first + per_shard, num_samples)):
            key = f"s{i:05d}"
            w, h = sizes(i) if sizes else (64, 48)
            image = NOT_A_JPEG if i in corrupt else jpeg(i, w, h)
            label = label_of(i)
            meta = {"wnid": wnids[label], "source": f"{key}.JPEG", "sha256": hashlib.sha256(image).hexdigest(),
                    "width": w, "height": h}
            writer.add(Sample(key, image, label, meta))
            keys.append(key)
            labels[key] = label
            images[key] = image
            flat_labels.append(label)
        info = writer.close()
        idx = info.side_index.to_bytes()
        store.write_atomic(name, buf.getvalue())
        store.write_atomic(index_name(name), idx)
        shards.append(ShardEntry(name=name, num_samples=info.num_samples, bytes=info.bytes, sha256=info.sha256,
                                 index=index_name(name), index_bytes=len(idx),
                                 index_sha256=hashlib.sha256(idx).hexdigest()))
        all_keys.append(tuple(keys))
    labels_entry = None
    if labels_bin:
        raw = np.asarray(flat_labels, dtype="<u2").tobytes()
        store.write_atomic(LABELS_NAME, raw)
        labels_entry = LabelsEntry(LABELS_NAME, "<u2", len(raw), hashlib.sha256(raw).hexdigest())
    counts = np.bincount(np.asarray(flat_labels, dtype=np.int64), minlength=len(wnids))
    manifest = Manifest(name="test", version="1", created="2024-01-01T00:00:00Z", tool="tests",
                        classes=ClassesInfo("custom:test", tuple(wnids)), num_samples=num_samples,
                        class_counts=tuple(int(c) for c in counts), shards=tuple(shards), labels=labels_entry)
    store.write_atomic(MANIFEST_NAME, manifest.to_json().encode())
    return Built(url=url, manifest=manifest, keys=tuple(all_keys), labels=labels, images=images)


def truncate_object(url: str, name: str, keep: int) -> None:
    """Cut a stored object down to its first ``keep`` bytes."""
    store = Store(url)
    data = store.read(name)
    store.write_atomic(name, data[:keep])

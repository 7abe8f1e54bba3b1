"""Check a sharded dataset against its manifest: every byte, every offset, every label.

Each shard is streamed once: its size and sha256 are compared with ``index.json``, its tar is walked
member by member and every sample checked against the side index (key, header offset, image offset
and size, ``.cls`` label) and its own metadata (image sha256, wnid of the label). ``labels.bin`` must
equal the side-index labels in shard order, and the manifest's class counts must match them.
"""
from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from typing import BinaryIO

import numpy as np

from imagenet_stream.errors import ManifestError, ShardIntegrityError
from imagenet_stream.format import (
    CLASS_EXT,
    IMAGE_EXT,
    MANIFEST_NAME,
    META_EXT,
    Manifest,
    ShardEntry,
    SideIndex,
    TarWalker,
    decode_label,
    decode_meta,
    split_member,
)
from imagenet_stream.format.overlay import load_exclusions
from imagenet_stream.format.writer import BLOCK
from imagenet_stream.storage import Store

_CHUNK = 8 << 20


class HashingReader(io.RawIOBase):
    """A read-only stream that sha256-hashes and counts what passes through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.sha256.update(data)
        self.count += n
        return n

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


def _walk(stream: BinaryIO, where: str, max_bytes: int) -> Iterator[tuple[str, list[tuple[str, int, int, bytes]]]]:
    """``(key, [(ext, header offset, data offset, data), ...])`` per sample, from a tar stream."""
    key: str | None = None
    group: list[tuple[str, int, int, bytes]] = []
    walker = TarWalker(stream, where=where, seekable=False)
    for member in walker:
        if not member.is_file:
            raise ShardIntegrityError(f"{where}: unexpected tar member {member.name!r} (not a file)")
        try:
            data = walker.read_data(member, max_bytes)
        except ValueError as exc:
            raise ShardIntegrityError(str(exc)) from None
        k, ext = split_member(member.name)
        if k != key and group:
            yield key, group  # type: ignore[misc]
            group = []
        key = k
        group.append((ext, member.header_offset, member.offset, data))
    if group:
        yield key, group  # type: ignore[misc]


def check_shard(store: Store, manifest: Manifest, entry: ShardEntry,
                indexes: Store | None = None) -> tuple[list[str], np.ndarray | None]:
    """Problems found in one shard and its side index, and the side index's labels (None if unreadable).

    ``store`` holds the shard; ``indexes`` its side index (default: the same store)."""
    name = entry.name
    problems: list[str] = []
    try:
        index_bytes = (indexes or store).read(entry.index)
    except FileNotFoundError:
        return [f"{entry.index}: missing"], None
    if len(index_bytes) != entry.index_bytes:
        problems.append(f"{entry.index}: {len(index_bytes)} bytes, manifest says {entry.index_bytes}")
    if hashlib.sha256(index_bytes).hexdigest() != entry.index_sha256:
        problems.append(f"{entry.index}: sha256 differs from the manifest")
    try:
        side = SideIndex.from_bytes(index_bytes, where=entry.index)
    except ManifestError as exc:
        return problems + [str(exc)], None
    if side.shard != name:
        problems.append(f"{entry.index}: describes {side.shard!r}, not {name!r}")
    if side.num_samples != entry.num_samples:
        problems.append(f"{entry.index}: {side.num_samples} samples, manifest says {entry.num_samples}")

    try:
        raw = store.open(name, "rb")
    except FileNotFoundError:
        return problems + [f"{name}: missing"], side.labels
    with raw:
        reader = HashingReader(raw)
        stream = io.BufferedReader(reader, _CHUNK)
        count = 0
        end = 0
        try:
            for i, (key, members) in enumerate(_walk(stream, name, entry.bytes)):
                count += 1
                end = members[-1][2] + -(-len(members[-1][3]) // BLOCK) * BLOCK
                if i < side.num_samples:
                    problems.extend(_check_sample(manifest, side, i, key, members, name))
            while stream.read(_CHUNK):  # the end-of-archive blocks and padding
                pass
        except ShardIntegrityError as exc:
            problems.append(str(exc))
        reader.drain()
    if count != side.num_samples:
        problems.append(f"{name}: {count} samples in the tar, {side.num_samples} in its side index")
    elif count and end != int(side.offsets[-1]):
        problems.append(f"{name}: samples end at byte {end}, side index says {int(side.offsets[-1])}")
    if reader.count != entry.bytes:
        problems.append(f"{name}: {reader.count} bytes, manifest says {entry.bytes}")
    if reader.sha256.hexdigest() != entry.sha256:
        problems.append(f"{name}: sha256 differs from the manifest")
    return problems, side.labels


def _check_sample(manifest: Manifest, side: SideIndex, i: int, key: str,
                  members: list[tuple[str, int, int, bytes]], where: str) -> list[str]:
    problems: list[str] = []
    at = f"{where}: sample {i} ({key})"
    by_ext = {ext: (offset, data_offset, data) for ext, offset, data_offset, data in members}
    if sorted(by_ext) != sorted((IMAGE_EXT, CLASS_EXT, META_EXT)) or len(members) != 3:
        return [f"{at}: members {[m[0] for m in members]}, expected {IMAGE_EXT}, {CLASS_EXT}, {META_EXT}"]
    if key != side.keys[i]:
        problems.append(f"{at}: side index has key {side.keys[i]!r}")
    if members[0][1] != int(side.offsets[i]):
        problems.append(f"{at}: starts at byte {members[0][1]}, side index says {int(side.offsets[i])}")
    _, image_offset, image = by_ext[IMAGE_EXT]
    if image_offset != int(side.image_offsets[i]) or len(image) != int(side.image_sizes[i]):
        problems.append(f"{at}: image at {image_offset}+{len(image)}, side index says "
                        f"{int(side.image_offsets[i])}+{int(side.image_sizes[i])}")
    try:
        label = decode_label(by_ext[CLASS_EXT][2])
        meta = decode_meta(by_ext[META_EXT][2])
    except ShardIntegrityError as exc:
        return problems + [f"{at}: {exc}"]
    if label != int(side.labels[i]):
        problems.append(f"{at}: .{CLASS_EXT} is {label}, side index says {int(side.labels[i])}")
    if not 0 <= label < manifest.classes.num_classes:
        problems.append(f"{at}: class {label} outside the {manifest.classes.num_classes}-class space")
    elif meta.get("wnid") != manifest.classes.wnids[label]:
        problems.append(f"{at}: wnid {meta.get('wnid')!r} but class {label} is "
                        f"{manifest.classes.wnids[label]}")
    digest = hashlib.sha256(image).hexdigest()
    if meta.get("sha256") != digest:
        problems.append(f"{at}: image sha256 differs from its metadata")
    if side.sha256 is not None and side.digest(i) != digest:
        problems.append(f"{at}: image sha256 differs from the side index's")
    if side.phash is not None and meta.get("phash") != int(side.phash[i]):
        problems.append(f"{at}: perceptual hash {meta.get('phash')!r}, side index says {int(side.phash[i])}")
    return problems


def check_labels(store: Store, manifest: Manifest, labels: list[np.ndarray]) -> list[str]:
    """``labels.bin``, the exclusion overlay and the class counts against the side-index labels."""
    problems: list[str] = []
    every = np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, dtype=np.int64)
    try:
        excluded = load_exclusions(store, manifest)
    except ManifestError as exc:
        problems.append(str(exc))
        excluded = np.zeros(0, dtype=np.int64)
    if len(every) == manifest.num_samples and manifest.num_samples:
        keep = np.ones(len(every), dtype=bool)
        keep[excluded] = False
        counts = np.bincount(every[keep], minlength=manifest.classes.num_classes)
        if tuple(int(c) for c in counts) != manifest.class_counts:
            problems.append(f"{MANIFEST_NAME}: class_counts differ from the labels of the samples not excluded")
    entry = manifest.labels
    if entry is None:
        return problems
    try:
        data = store.read(entry.name)
    except FileNotFoundError:
        return problems + [f"{entry.name}: missing"]
    if len(data) != entry.bytes or hashlib.sha256(data).hexdigest() != entry.sha256:
        problems.append(f"{entry.name}: size or sha256 differs from the manifest")
    try:
        stored = np.frombuffer(data, dtype=entry.dtype)
    except (TypeError, ValueError) as exc:
        return problems + [f"{entry.name}: cannot read as {entry.dtype}: {exc}"]
    if len(stored) != len(every) or not np.array_equal(stored.astype(np.int64), every):
        problems.append(f"{entry.name}: differs from the labels in the side indexes")
    return problems


def check_dataset(store: Store, manifest: Manifest,
                  on_shard: Callable[[ShardEntry], None] | None = None) -> list[str]:
    """Every problem found in the dataset (empty when it verifies); ``on_shard`` runs after each shard.

    Shards and side indexes stored elsewhere (``shards_at`` / ``indexes_at``: a version made by
    ``exclude``, a foreign index) are read there, with ``store``'s options on the same protocol."""
    problems: list[str] = []
    labels: list[np.ndarray] = []
    shards, indexes = store.elsewhere(manifest.shards_at), store.elsewhere(manifest.indexes_at)
    for entry in manifest.shards:
        found, shard_labels = check_shard(shards, manifest, entry, indexes)
        problems.extend(found)
        if shard_labels is not None:
            labels.append(shard_labels)
        if on_shard is not None:
            on_shard(entry)
    return problems + check_labels(store, manifest, labels)

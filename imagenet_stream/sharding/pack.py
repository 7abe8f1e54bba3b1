"""Pack samples into shards and commit them to a :class:`~imagenet_stream.storage.Store` atomically.

Each shard is written to a local temporary file first (the tar and its sha256 in one pass), then
uploaded under its final name with ``Store.put_file_atomic`` (temp name + rename on file systems, a
single PUT on object stores), then its side index. ``labels.bin`` and ``index.json`` are written by
:func:`write_labels` and :func:`write_manifest` once every shard is committed; the manifest last.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, ShardIntegrityError
from ..shards import (LABELS_NAME, MANIFEST_NAME, LabelsEntry, Manifest, Sample, ShardEntry, ShardWriter,
                      index_name, shard_name)
from ..shards.writer import BLOCK
from ..storage import Store

log = logging.getLogger(__name__)

#: tarfile pads a closed archive to a multiple of this (20 blocks), after two zero blocks.
_RECORD = 20 * BLOCK
_END_OF_ARCHIVE = 2 * BLOCK


@dataclass(frozen=True)
class PackOptions:
    """How samples are cut into shards."""

    prefix: str = "train"
    shard_size: int = 1000              # samples per shard (at most)
    max_shard_bytes: int = 1 << 30      # bytes per shard (at most, unless one sample alone is larger)
    mtime: int = 0                      # tar member mtime (the run's start), for reproducible shards
    tmp_dir: str | None = None          # where shards are staged before upload

    def __post_init__(self) -> None:
        shard_name(self.prefix, 0)  # validates the prefix
        if self.shard_size < 1:
            raise ConfigError(f"shard_size must be >= 1, got {self.shard_size}")
        if self.max_shard_bytes < _RECORD:
            raise ConfigError(f"max_shard_bytes must be >= {_RECORD}, got {self.max_shard_bytes}")


def sample_tar_bytes(sample: Sample) -> int:
    """Bytes ``sample`` adds to a tar: one header block per member plus its data padded to blocks."""
    return sum(BLOCK + -(-len(data) // BLOCK) * BLOCK for _, data in sample.members())


def closed_tar_bytes(content_bytes: int) -> int:
    """Size of a closed tar whose members take ``content_bytes``: end blocks, padded to a record."""
    return -(-(content_bytes + _END_OF_ARCHIVE) // _RECORD) * _RECORD


class ShardPacker:
    """Appends samples to the current shard; commits it when full (by samples or by bytes).

    ``on_commit`` is called with each committed :class:`ShardEntry`. After :meth:`finish`,
    :attr:`shards` lists every shard and :attr:`labels` every sample's class index in shard order.
    """

    def __init__(self, store: Store, options: PackOptions,
                 on_commit: Callable[[ShardEntry], None] | None = None) -> None:
        self.store = store
        self.options = options
        self.on_commit = on_commit
        self.shards: list[ShardEntry] = []
        self._labels: list[int] = []
        self._writer: ShardWriter | None = None
        self._file = None
        self._path: str | None = None
        self._finished = False

    @property
    def num_samples(self) -> int:
        return len(self._labels)

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(self._labels, dtype=np.int64)

    def add(self, sample: Sample) -> None:
        if self._finished:
            raise ShardIntegrityError("packer is finished; no more samples can be added")
        writer = self._writer
        if writer is not None and len(writer):
            grown = closed_tar_bytes(writer.bytes_written + sample_tar_bytes(sample))
            if len(writer) >= self.options.shard_size or grown > self.options.max_shard_bytes:
                self._commit()
                writer = None
        if writer is None:
            writer = self._open()
        writer.add(sample)
        self._labels.append(sample.label)

    def finish(self) -> list[ShardEntry]:
        """Commit the last, partly filled shard; return all shard entries."""
        if not self._finished:
            if self._writer is not None and len(self._writer):
                self._commit()
            self._discard()
            self._finished = True
        return list(self.shards)

    def abort(self) -> None:
        """Drop the shard in progress (its local temp file); committed shards stay."""
        self._discard()
        self._finished = True

    # -- internals --------------------------------------------------------------------------
    def _open(self) -> ShardWriter:
        name = shard_name(self.options.prefix, len(self.shards))
        fd, self._path = tempfile.mkstemp(prefix=f"{name}.", suffix=".part", dir=self.options.tmp_dir)
        self._file = os.fdopen(fd, "wb")
        self._writer = ShardWriter(self._file, name, mtime=self.options.mtime)
        return self._writer

    def _commit(self) -> None:
        writer, file, path = self._writer, self._file, self._path
        assert writer is not None and file is not None and path is not None
        written = writer.close()
        file.close()
        self.store.put_file_atomic(path, written.name)
        index_bytes = written.side_index.to_bytes()
        idx = index_name(written.name)
        self.store.write_atomic(idx, index_bytes)
        entry = ShardEntry(name=written.name, num_samples=written.num_samples, bytes=written.bytes,
                           sha256=written.sha256, index=idx, index_bytes=len(index_bytes),
                           index_sha256=hashlib.sha256(index_bytes).hexdigest())
        self.shards.append(entry)
        self._discard()
        log.debug("committed %s (%d samples, %d bytes)", entry.name, entry.num_samples, entry.bytes)
        if self.on_commit is not None:
            self.on_commit(entry)

    def _discard(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._path is not None:
            try:
                os.remove(self._path)
            except FileNotFoundError:
                pass
        self._writer, self._file, self._path = None, None, None


def labels_dtype(num_classes: int) -> str:
    """``"<u2"`` when every class index fits in 16 bits, else ``"<u4"``."""
    return "<u2" if num_classes < 65536 else "<u4"


def write_labels(store: Store, labels: np.ndarray, num_classes: int) -> LabelsEntry:
    """Write ``labels.bin`` (every sample's class index, shards in manifest order)."""
    dtype = labels_dtype(num_classes)
    data = np.asarray(labels).astype(dtype).tobytes()
    store.write_atomic(LABELS_NAME, data)
    return LabelsEntry(name=LABELS_NAME, dtype=dtype, bytes=len(data),
                       sha256=hashlib.sha256(data).hexdigest())


def write_manifest(store: Store, manifest: Manifest) -> None:
    """Write ``index.json`` atomically. Call it last: its presence marks the dataset complete."""
    store.write_atomic(MANIFEST_NAME, manifest.to_json().encode("utf-8"))

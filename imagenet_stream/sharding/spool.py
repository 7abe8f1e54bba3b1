"""A local, append-only scratch file of encoded records, for sources that can only be streamed.

A tar of per-synset tars arrives sorted by class. To spread classes evenly over shards the sharder
must see every kept sample before writing the first shard, so it appends each verified payload here
(one sequential write), keeps only offsets and lengths in memory (two numpy arrays, 16 bytes per
record), then reads the records back in a seeded random order. That needs local scratch space equal
to the kept data; the file is deleted when the spool is closed.
"""
from __future__ import annotations

import logging
import os
import tempfile
from types import TracebackType

import numpy as np

from ..errors import StorageError

log = logging.getLogger(__name__)

_GROW = 1 << 16


class Spool:
    """Append byte payloads to a temporary file in ``tmp_dir``; read any of them back by number.

    Usage::

        with Spool(tmp_dir) as spool:
            n = spool.append(payload)
            ...
            data = spool.read(n)
    """

    def __init__(self, tmp_dir: str | os.PathLike[str] | None = None) -> None:
        directory = os.fspath(tmp_dir) if tmp_dir is not None else tempfile.gettempdir()
        try:
            fd, self.path = tempfile.mkstemp(prefix="imagenet-stream-spool-", suffix=".bin", dir=directory)
        except OSError as exc:
            raise StorageError(f"cannot create a spool file in {directory!r}: {exc}") from exc
        self._file = os.fdopen(fd, "w+b")
        self._offsets = np.zeros(_GROW, dtype=np.uint64)
        self._lengths = np.zeros(_GROW, dtype=np.uint64)
        self._count = 0
        self._end = 0
        self._writing = True
        self._closed = False

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Bytes held in the spool file."""
        return self._end

    def append(self, payload: bytes) -> int:
        """Store ``payload``; return its record number (0, 1, 2, ...)."""
        self._check_open()
        if not self._writing:
            self._file.seek(self._end)
            self._writing = True
        if self._count == len(self._offsets):
            self._offsets = np.concatenate([self._offsets, np.zeros(len(self._offsets), dtype=np.uint64)])
            self._lengths = np.concatenate([self._lengths, np.zeros(len(self._lengths), dtype=np.uint64)])
        self._file.write(payload)
        self._offsets[self._count] = self._end
        self._lengths[self._count] = len(payload)
        self._end += len(payload)
        self._count += 1
        return self._count - 1

    def read(self, number: int) -> bytes:
        """The payload of record ``number``."""
        self._check_open()
        if not 0 <= number < self._count:
            raise IndexError(f"spool record {number} out of range (0..{self._count - 1})")
        if self._writing:
            self._file.flush()
            self._writing = False
        length = int(self._lengths[number])
        self._file.seek(int(self._offsets[number]))
        data = self._file.read(length)
        if len(data) != length:
            raise StorageError(f"spool {self.path}: record {number} is short ({len(data)} of {length} bytes)")
        return data

    def close(self) -> None:
        """Close and delete the spool file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._file.close()
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
        log.debug("spool %s removed (%d records, %d bytes)", self.path, self._count, self._end)

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"spool {self.path} is closed")

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

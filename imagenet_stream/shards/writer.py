"""Write one shard: a webdataset-compatible POSIX tar plus its side index."""
from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from ..errors import ShardIntegrityError
from .sample import Sample
from .side_index import SideIndex

BLOCK = 512


class _HashingWriter(io.RawIOBase):
    """Wraps a binary file: counts and sha256-hashes every byte written."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.count = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.count

    def write(self, data) -> int:  # type: ignore[override]
        view = memoryview(data)
        self.raw.write(view)
        self.sha256.update(view)
        self.count += len(view)
        return len(view)


@dataclass(frozen=True)
class WrittenShard:
    """What the manifest needs to know of a finished shard."""

    name: str
    num_samples: int
    bytes: int
    sha256: str
    side_index: SideIndex


class ShardWriter:
    """Appends samples to a tar written to ``fileobj`` and records their offsets.

    Usage: ``w = ShardWriter(f, "train-000000.tar"); w.add(sample)...; info = w.close()``.
    """

    def __init__(self, fileobj: BinaryIO, name: str, mtime: int = 0) -> None:
        self.name = name
        self.mtime = int(mtime)
        self._out = _HashingWriter(fileobj)
        self._tar = tarfile.open(fileobj=self._out, mode="w", format=tarfile.PAX_FORMAT)  # type: ignore[arg-type]
        self._keys: list[str] = []
        self._labels: list[int] = []
        self._offsets: list[int] = []
        self._image_offsets: list[int] = []
        self._image_sizes: list[int] = []
        self._closed = False

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def bytes_written(self) -> int:
        return self._tar.offset

    def add(self, sample: Sample) -> None:
        if self._closed:
            raise ShardIntegrityError(f"shard {self.name!r} is already closed")
        self._offsets.append(self._tar.offset)
        for i, (member, data) in enumerate(sample.members()):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mtime = self.mtime
            info.mode = 0o444
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))
            if i == 0:  # the image: its data ends at the padded end of this member
                padded = -(-len(data) // BLOCK) * BLOCK
                self._image_offsets.append(self._tar.offset - padded)
                self._image_sizes.append(len(data))
        self._keys.append(sample.key)
        self._labels.append(sample.label)

    def close(self) -> WrittenShard:
        """Finish the tar (end-of-archive blocks) and return its description."""
        if self._closed:
            raise ShardIntegrityError(f"shard {self.name!r} is already closed")
        end_of_samples = self._tar.offset
        self._tar.close()
        self._closed = True
        index = SideIndex(
            shard=self.name,
            keys=tuple(self._keys),
            labels=np.asarray(self._labels, dtype=np.uint32),
            offsets=np.asarray(self._offsets + [end_of_samples], dtype=np.uint64),
            image_offsets=np.asarray(self._image_offsets, dtype=np.uint64),
            image_sizes=np.asarray(self._image_sizes, dtype=np.uint32),
        )
        return WrittenShard(self.name, len(self._keys), self._out.count, self._out.sha256.hexdigest(), index)

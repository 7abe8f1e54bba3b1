"""The per-shard side index (``PREFIX-NNNNNN.idx``, msgpack): where each sample lies in its tar.

With it a reader fetches one contiguous byte range for any run of samples and slices the JPEG
bytes out directly, and skips samples (or whole shards) of unwanted classes without reading them.

Layout (a msgpack map; arrays are little-endian raw bytes)::

    format_version  int
    shard           str         the tar it describes
    keys            [str]       n sample keys, in tar order
    labels          bytes <u4   n class indices
    offsets         bytes <u8   n + 1: byte offset of each sample's first tar header; the last entry
                                is the end of the last sample (where the end-of-archive blocks start)
    image_offsets   bytes <u8   n: offset of each sample's JPEG data
    image_sizes     bytes <u4   n: size of each sample's JPEG data
"""
from __future__ import annotations

from dataclasses import dataclass

import msgpack
import numpy as np

from imagenet_stream.errors import ManifestError
from imagenet_stream.format.names import SIDE_INDEX_FORMAT


@dataclass(frozen=True, eq=False)
class SideIndex:
    shard: str
    keys: tuple[str, ...]
    labels: np.ndarray          # uint32 [n]
    offsets: np.ndarray         # uint64 [n + 1]
    image_offsets: np.ndarray   # uint64 [n]
    image_sizes: np.ndarray     # uint32 [n]

    def __post_init__(self) -> None:
        n = len(self.keys)
        shapes = {"labels": (self.labels, n), "offsets": (self.offsets, n + 1),
                  "image_offsets": (self.image_offsets, n), "image_sizes": (self.image_sizes, n)}
        for name, (arr, want) in shapes.items():
            if arr.ndim != 1 or arr.shape[0] != want:
                raise ManifestError(f"side index of {self.shard!r}: {name} has {arr.shape}, expected ({want},)")
        if n and np.any(np.diff(self.offsets.astype(np.int64)) <= 0):
            raise ManifestError(f"side index of {self.shard!r}: sample offsets are not increasing")

    @property
    def num_samples(self) -> int:
        return len(self.keys)

    def byte_range(self, start: int, stop: int) -> tuple[int, int]:
        """The ``[begin, end)`` byte range of the tar that holds samples ``start..stop-1``."""
        return int(self.offsets[start]), int(self.offsets[stop])

    def select(self, keep: np.ndarray) -> "SideIndex":
        """The index of samples ``keep`` (sorted in-shard indices) only.

        Sample ``keep[i]`` becomes ``i``; its byte range runs to the next kept sample (the bytes of
        samples left out in between are read across, never yielded).
        """
        keep = np.asarray(keep, dtype=np.int64)
        if keep.size == 0:
            ends = np.zeros(1, dtype=np.uint64)
        else:
            ends = self.offsets[[int(keep[-1]) + 1]]
        return SideIndex(shard=self.shard, keys=tuple(self.keys[i] for i in keep.tolist()),
                         labels=self.labels[keep], offsets=np.concatenate([self.offsets[keep], ends]),
                         image_offsets=self.image_offsets[keep], image_sizes=self.image_sizes[keep])

    def to_bytes(self) -> bytes:
        return msgpack.packb({
            "format_version": SIDE_INDEX_FORMAT,
            "shard": self.shard,
            "keys": list(self.keys),
            "labels": self.labels.astype("<u4").tobytes(),
            "offsets": self.offsets.astype("<u8").tobytes(),
            "image_offsets": self.image_offsets.astype("<u8").tobytes(),
            "image_sizes": self.image_sizes.astype("<u4").tobytes(),
        }, use_bin_type=True)

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "side index") -> "SideIndex":
        try:
            raw = msgpack.unpackb(data, raw=False)
            version = raw["format_version"]
            if version != SIDE_INDEX_FORMAT:
                raise ManifestError(f"{where}: format_version {version!r} is not supported (want {SIDE_INDEX_FORMAT})")
            return cls(
                shard=str(raw["shard"]),
                keys=tuple(raw["keys"]),
                labels=np.frombuffer(raw["labels"], dtype="<u4"),
                offsets=np.frombuffer(raw["offsets"], dtype="<u8"),
                image_offsets=np.frombuffer(raw["image_offsets"], dtype="<u8"),
                image_sizes=np.frombuffer(raw["image_sizes"], dtype="<u4"),
            )
        except ManifestError:
            raise
        except Exception as exc:
            raise ManifestError(f"{where}: unreadable side index: {exc!r}") from exc

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

Format 2 (written by the sharder since the curation release) adds, optionally, the samples'
identities, so that near-duplicate search and exclusion by hash never read a shard::

    phash           bytes <u8   n: 64-bit perceptual hash of each image (curation.phash)
    sha256          bytes       32 n: sha256 of each stored image
    source_sha256   bytes       32 n: sha256 of each source file (differs where the image was converted)

Format 1 side indexes (older datasets, foreign shards' indexes) are read as they are, without these.
"""
from __future__ import annotations

from dataclasses import dataclass

import msgpack
import numpy as np

from imagenet_stream.errors import ManifestError
from imagenet_stream.format.names import READABLE_SIDE_INDEX_FORMATS, SIDE_INDEX_FORMAT


@dataclass(frozen=True, eq=False)
class SideIndex:
    shard: str
    keys: tuple[str, ...]
    labels: np.ndarray          # uint32 [n]
    offsets: np.ndarray         # uint64 [n + 1]
    image_offsets: np.ndarray   # uint64 [n]
    image_sizes: np.ndarray     # uint32 [n]
    phash: np.ndarray | None = None          # uint64 [n], format 2
    sha256: bytes | None = None              # 32 n bytes, format 2
    source_sha256: bytes | None = None       # 32 n bytes, format 2

    def __post_init__(self) -> None:
        n = len(self.keys)
        shapes = {"labels": (self.labels, n), "offsets": (self.offsets, n + 1),
                  "image_offsets": (self.image_offsets, n), "image_sizes": (self.image_sizes, n)}
        if self.phash is not None:
            shapes["phash"] = (self.phash, n)
        for name, (arr, want) in shapes.items():
            if arr.ndim != 1 or arr.shape[0] != want:
                raise ManifestError(f"side index of {self.shard!r}: {name} has {arr.shape}, expected ({want},)")
        for name in ("sha256", "source_sha256"):
            value = getattr(self, name)
            if value is not None and len(value) != 32 * n:
                raise ManifestError(f"side index of {self.shard!r}: {name} has {len(value)} bytes, "
                                    f"expected {32 * n}")
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

        def digests(raw: bytes | None) -> bytes | None:
            return None if raw is None else np.frombuffer(raw, np.uint8).reshape(-1, 32)[keep].tobytes()

        return SideIndex(shard=self.shard, keys=tuple(self.keys[i] for i in keep.tolist()),
                         labels=self.labels[keep], offsets=np.concatenate([self.offsets[keep], ends]),
                         image_offsets=self.image_offsets[keep], image_sizes=self.image_sizes[keep],
                         phash=None if self.phash is None else self.phash[keep],
                         sha256=digests(self.sha256), source_sha256=digests(self.source_sha256))

    def digest(self, i: int, source: bool = False) -> str | None:
        """The hex sha256 of sample ``i``'s stored image (``source``: of its source file); None in
        a format-1 index."""
        raw = self.source_sha256 if source else self.sha256
        return None if raw is None else raw[32 * i:32 * (i + 1)].hex()

    def to_bytes(self) -> bytes:
        doc = {
            "format_version": SIDE_INDEX_FORMAT,
            "shard": self.shard,
            "keys": list(self.keys),
            "labels": self.labels.astype("<u4").tobytes(),
            "offsets": self.offsets.astype("<u8").tobytes(),
            "image_offsets": self.image_offsets.astype("<u8").tobytes(),
            "image_sizes": self.image_sizes.astype("<u4").tobytes(),
        }
        if self.phash is not None:
            doc["phash"] = self.phash.astype("<u8").tobytes()
        if self.sha256 is not None:
            doc["sha256"] = bytes(self.sha256)
        if self.source_sha256 is not None:
            doc["source_sha256"] = bytes(self.source_sha256)
        return msgpack.packb(doc, use_bin_type=True)

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "side index") -> "SideIndex":
        try:
            raw = msgpack.unpackb(data, raw=False)
            version = raw["format_version"]
            if version not in READABLE_SIDE_INDEX_FORMATS:
                raise ManifestError(f"{where}: format_version {version!r} is not supported "
                                    f"(this release reads {READABLE_SIDE_INDEX_FORMATS})")
            phash = raw.get("phash")
            return cls(
                shard=str(raw["shard"]),
                keys=tuple(raw["keys"]),
                labels=np.frombuffer(raw["labels"], dtype="<u4"),
                offsets=np.frombuffer(raw["offsets"], dtype="<u8"),
                image_offsets=np.frombuffer(raw["image_offsets"], dtype="<u8"),
                image_sizes=np.frombuffer(raw["image_sizes"], dtype="<u4"),
                phash=None if phash is None else np.frombuffer(phash, dtype="<u8"),
                sha256=raw.get("sha256"),
                source_sha256=raw.get("source_sha256"),
            )
        except ManifestError:
            raise
        except Exception as exc:
            raise ManifestError(f"{where}: unreadable side index: {exc!r}") from exc

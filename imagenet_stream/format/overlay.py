"""The exclusion overlay (``exclusions.bin``): sorted, unique global sample ids never to be yielded.

A sample's global id is its position in the concatenation of the shards in manifest order (the
id the streaming planner uses). The file is either the ids as little-endian ``<u4`` (datasets of
fewer than 2**32 samples) or ``<u8``, or (dtype ``bits``) one bit per sample of the dataset, set for
an excluded one (``numpy.packbits(..., bitorder="little")``): whichever is smaller, so a version that
keeps 561k of 14.2M samples stores 1.8 MB, not 55 MB of ids. ``index.json``'s ``exclusions`` entry
gives its dtype, size, sha256, count and the count per reason. Readers check all of it before
trusting a single id.
"""
from __future__ import annotations

import hashlib
from typing import Protocol

import numpy as np

from imagenet_stream.errors import ManifestError
from imagenet_stream.format.manifest import BITS, Manifest


class _Readable(Protocol):
    def read(self, name: str) -> bytes: ...

    def url_of(self, name: str) -> str: ...


def exclusions_dtype(num_samples: int) -> str:
    return "<u4" if num_samples < 2 ** 32 else "<u8"


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` of integers by a sort and a neighbour test (numpy 2's ``unique`` of 14M ids took
    17 s here; this takes a fraction of a second, and nothing when they are sorted already)."""
    values = np.asarray(values)
    if values.size > 1 and not bool(np.all(values[1:] > values[:-1])):
        values = np.sort(values, kind="stable")
        values = values[np.concatenate([[True], values[1:] != values[:-1]])]
    return values


def encode_exclusions(ids: np.ndarray, num_samples: int) -> tuple[bytes, str]:
    """``(file bytes, dtype)`` of a set of excluded ids (sorted and deduplicated here): the ids, or a
    bitmap when that is smaller."""
    ids = sorted_unique(np.asarray(ids, dtype=np.uint64))
    if ids.size and int(ids[-1]) >= num_samples:
        raise ManifestError(f"excluded id {int(ids[-1])} is not a sample of a {num_samples}-sample dataset")
    dtype = exclusions_dtype(num_samples)
    if (num_samples + 7) // 8 < ids.size * np.dtype(dtype).itemsize:
        mask = np.zeros(num_samples, dtype=bool)
        mask[ids.astype(np.int64)] = True
        return np.packbits(mask, bitorder="little").tobytes(), BITS
    return ids.astype(dtype).tobytes(), dtype


def load_exclusions(store: _Readable, manifest: Manifest) -> np.ndarray:
    """The excluded global ids of ``manifest`` (sorted int64; empty without an overlay), checked
    against the manifest's size, sha256 and count, for order, uniqueness and range."""
    entry = manifest.exclusions
    if entry is None:
        return np.zeros(0, dtype=np.int64)
    where = store.url_of(entry.name)
    try:
        data = store.read(entry.name)
    except FileNotFoundError:
        raise ManifestError(f"{where} is missing (index.json names an exclusion overlay)") from None
    if len(data) != entry.bytes or hashlib.sha256(data).hexdigest() != entry.sha256:
        raise ManifestError(f"{where}: {len(data)} bytes with sha256 {hashlib.sha256(data).hexdigest()[:16]}..., "
                            f"the manifest says {entry.bytes} bytes with sha256 {entry.sha256[:16]}...")
    if entry.dtype == BITS:
        if len(data) != (manifest.num_samples + 7) // 8:
            raise ManifestError(f"{where}: {len(data)} bytes of bits for {manifest.num_samples} samples")
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
        if bits[manifest.num_samples:].any():
            raise ManifestError(f"{where}: bits set past the dataset's {manifest.num_samples} samples")
        ids = np.flatnonzero(bits[:manifest.num_samples]).astype(np.int64)
    else:
        ids = np.frombuffer(data, dtype=entry.dtype).astype(np.int64)
    if ids.size != entry.count:
        raise ManifestError(f"{where}: {ids.size} ids, the manifest says {entry.count}")
    if ids.size and (np.any(np.diff(ids) <= 0) or ids[0] < 0 or ids[-1] >= manifest.num_samples):
        raise ManifestError(f"{where}: ids must be sorted, unique and below {manifest.num_samples}")
    return ids


__all__ = ["encode_exclusions", "exclusions_dtype", "load_exclusions", "sorted_unique"]

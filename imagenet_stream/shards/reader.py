"""Read samples back from shard bytes: by side-index offsets (fast) or by walking the tar (any shard)."""
from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from ..errors import ShardIntegrityError
from .names import split_member
from .side_index import SideIndex


def slice_images(index: SideIndex, start: int, stop: int, data: bytes | memoryview,
                 base: int | None = None) -> Iterator[tuple[int, memoryview]]:
    """Yield ``(sample number, JPEG bytes)`` for samples ``start..stop-1`` from ``data``.

    ``data`` holds the tar bytes ``[base, ...)``; ``base`` defaults to the range start of ``start``.
    """
    view = memoryview(data)
    base = int(index.offsets[start]) if base is None else base
    for i in range(start, stop):
        lo = int(index.image_offsets[i]) - base
        hi = lo + int(index.image_sizes[i])
        if lo < 0 or hi > len(view):
            raise ShardIntegrityError(
                f"{index.shard}: sample {i} ({index.keys[i]}) lies outside the fetched bytes "
                f"[{base}, {base + len(view)})")
        yield i, view[lo:hi]


def iter_members(fileobj: BinaryIO, where: str) -> Iterator[tuple[str, bytes]]:
    """Yield ``(member name, data)`` of the regular files of a tar stream, in order."""
    try:
        with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                extracted = tar.extractfile(info)
                if extracted is None:
                    continue
                yield info.name, extracted.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ShardIntegrityError(f"{where}: unreadable tar: {exc}") from exc


def group_samples(members: Iterable[tuple[str, bytes]]) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Group consecutive members by key: ``("KEY", {"jpg": ..., "cls": ..., "msgpack": ...})``."""
    key: str | None = None
    group: dict[str, bytes] = {}
    for name, data in members:
        k, ext = split_member(name)
        if k != key and group:
            yield key, group  # type: ignore[misc]
            group = {}
        key = k
        group[ext] = data
    if group:
        yield key, group  # type: ignore[misc]


def iter_samples(data: bytes, where: str = "shard") -> Iterator[tuple[str, dict[str, bytes]]]:
    """All samples of a whole shard held in memory."""
    return group_samples(iter_members(io.BytesIO(data), where))

"""One sample as stored in a shard: its tar members and their encodings.

``KEY.jpg`` holds RGB or grayscale JPEG bytes, ``KEY.cls`` the class index as decimal ASCII, ``KEY.msgpack`` a
metadata map (at least ``wnid``, ``source``, ``sha256``, ``width``, ``height``). Metadata is decoded
with msgpack only; no shard content ever goes through pickle.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from imagenet_stream.errors import ShardIntegrityError
from imagenet_stream.format.names import CLASS_EXT, IMAGE_EXT, META_EXT, is_valid_key

REQUIRED_META = ("wnid", "source", "sha256", "width", "height")


@dataclass(frozen=True)
class Sample:
    """A verified sample ready to be written: key, JPEG bytes, class index and metadata."""

    key: str
    image: bytes
    label: int
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not is_valid_key(self.key):
            raise ShardIntegrityError(f"invalid sample key {self.key!r}: use [A-Za-z0-9_-], no dots")
        if self.label < 0:
            raise ShardIntegrityError(f"negative class index {self.label} for {self.key!r}")
        missing = [k for k in REQUIRED_META if k not in self.meta]
        if missing:
            raise ShardIntegrityError(f"sample {self.key!r} metadata lacks {missing}")

    def members(self) -> list[tuple[str, bytes]]:
        """Tar members ``(name, data)`` in the order they are written (image first)."""
        return [
            (f"{self.key}.{IMAGE_EXT}", self.image),
            (f"{self.key}.{CLASS_EXT}", encode_label(self.label)),
            (f"{self.key}.{META_EXT}", encode_meta(self.meta)),
        ]


def encode_label(label: int) -> bytes:
    return str(int(label)).encode("ascii")


def decode_label(data: bytes) -> int:
    try:
        return int(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError) as exc:
        raise ShardIntegrityError(f"bad .{CLASS_EXT} member: {data[:20]!r}") from exc


def encode_meta(meta: Mapping[str, Any]) -> bytes:
    return msgpack.packb(dict(meta), use_bin_type=True)


def decode_meta(data: bytes) -> dict[str, Any]:
    try:
        meta = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ShardIntegrityError(f"bad .{META_EXT} member: {exc}") from exc
    if not isinstance(meta, dict):
        raise ShardIntegrityError(f".{META_EXT} member is a {type(meta).__name__}, expected a map")
    return meta

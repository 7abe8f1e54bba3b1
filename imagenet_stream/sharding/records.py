"""What flows through the sharder: source records in, Verified or Rejected out."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from imagenet_stream.curation.registry import REGISTRY_REASON

#: Reasons a record is not written. Every rejected record carries exactly one of these.
REJECT_REASONS = (
    "unreadable_file",      # the source file could not be read (I/O error, permission)
    "empty_file",           # zero bytes
    "too_large",            # more bytes than --max-image-bytes (refused before it is read)
    "undecodable",          # not an image Pillow can decode
    "truncated",            # the image data ends early
    "too_small",            # width or height below --min-size
    "decompression_bomb",   # more pixels than Pillow's safety limit
    "unknown_class",        # wnid not in the dataset's class space
    "duplicate",            # same bytes (sha256) as an image already kept
    "malformed_jpeg",       # decodes, but its marker stream cannot be parsed to strip its metadata
    "too_few_votes",        # fewer human-verification votes than --min-votes (never read)
    "voted_out",            # no strict majority of yes votes (never read)
    "failed_to_download",   # a URL list's image could not be downloaded (the error class says why)
    "skipped_by_robots",    # its server said X-Robots-Tag: noai / noimageai
)


@dataclass(frozen=True)
class SourceRecord:
    """One image to verify: its bytes in hand, or a local path to load; ``size`` when known unread."""

    source: str                  # where it came from, e.g. "ILSVRC2012_img_train.tar/n01440764.tar/n01440764_10026.JPEG"
    wnid: str
    key: str                     # shards.key_from_source(source) unless the source knows better
    data: bytes | None = None
    path: str | None = None
    size: int | None = None      # bytes, when the source knows them without reading (tar headers)
    download: Mapping[str, Any] | None = None  # a downloaded record's status fields (URL lists)

    def load(self, max_bytes: int | None = None) -> bytes:
        """The raw file bytes (reads ``path`` when the source did not carry the bytes).

        Raises :class:`TooLarge` (before reading anything) when there are more than ``max_bytes``.
        """
        if self.size is not None and max_bytes is not None and self.size > max_bytes:
            raise TooLarge(self.size, max_bytes)
        if self.data is not None:
            return self.data
        if self.path is None:
            raise ValueError(f"record {self.source!r} has neither data nor path")
        with open(self.path, "rb") as f:
            if max_bytes is None:
                return f.read()
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise TooLarge(size, max_bytes)
            data = f.read(min(size, max_bytes) + 1)  # sized to the file (it may have grown since)
            if len(data) > max_bytes:
                raise TooLarge(len(data), max_bytes)
            return data


@dataclass(frozen=True)
class FailedRecord(SourceRecord):
    """A record whose bytes could not be read (an I/O error, a damaged inner tar): ``load()``
    raises OSError with ``error``, so verify counts it as ``unreadable_file`` with the reason."""

    error: str = ""

    def load(self, max_bytes: int | None = None) -> bytes:
        raise OSError(self.error)


class TooLarge(Exception):
    """A record holds more bytes than allowed; nothing (or nothing past the limit) was read."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size:,} bytes > the limit of {limit:,} (--max-image-bytes)")
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class Verified:
    """An image that passed verification: an RGB or grayscale JPEG (anything else was converted to RGB JPEG)."""

    key: str
    wnid: str
    source: str
    image: bytes                 # JPEG bytes as they will be stored
    sha256: str                  # of ``image``
    source_sha256: str           # of the original bytes (exact-duplicate detection)
    width: int
    height: int
    fixes: tuple[str, ...] = field(default_factory=tuple)  # e.g. ("cmyk_to_rgb",), ("png_to_jpeg",), ("resized",)
    phash: int = 0               # 64-bit perceptual hash (curation.phash) of the stored image


@dataclass(frozen=True)
class Rejected:
    """A record that will not be written, with one of REJECT_REASONS and a human-readable detail."""

    key: str
    wnid: str
    source: str
    reason: str
    detail: str = ""
    download: Mapping[str, Any] | None = None  # a URL record's download facts, when it was fetched

    def __post_init__(self) -> None:
        if self.reason not in REJECT_REASONS and not REGISTRY_REASON.match(self.reason):
            raise ValueError(f"unknown reject reason {self.reason!r}; expected one of {REJECT_REASONS} "
                             "or an opt-out registry's reason word")

"""What flows through the sharder: source records in, Verified or Rejected out."""
from __future__ import annotations

from dataclasses import dataclass, field

#: Reasons a record is not written. Every rejected record carries exactly one of these.
REJECT_REASONS = (
    "unreadable_file",      # the source file could not be read (I/O error, permission)
    "empty_file",           # zero bytes
    "undecodable",          # not an image Pillow can decode
    "truncated",            # the image data ends early
    "too_small",            # width or height below --min-size
    "decompression_bomb",   # more pixels than Pillow's safety limit
    "unknown_class",        # wnid not in the dataset's class space
    "duplicate",            # same bytes (sha256) as an image already kept
)


@dataclass(frozen=True)
class SourceRecord:
    """One image as a source yields it: bytes in hand (streamed tars) or a local path to load (folders)."""

    source: str                  # original path or id, e.g. "ILSVRC2012_img_train.tar/n01440764.tar/n01440764_10026.JPEG"
    wnid: str
    key: str                     # shards.key_from_source(source) unless the source knows better
    data: bytes | None = None
    path: str | None = None

    def load(self) -> bytes:
        """The raw file bytes (reads ``path`` when the source did not carry the bytes)."""
        if self.data is not None:
            return self.data
        if self.path is None:
            raise ValueError(f"record {self.source!r} has neither data nor path")
        with open(self.path, "rb") as f:
            return f.read()


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


@dataclass(frozen=True)
class Rejected:
    """A record that will not be written, with one of REJECT_REASONS and a human-readable detail."""

    key: str
    wnid: str
    source: str
    reason: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.reason not in REJECT_REASONS:
            raise ValueError(f"unknown reject reason {self.reason!r}; expected one of {REJECT_REASONS}")

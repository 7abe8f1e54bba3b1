"""The library's exceptions: one base class and a few families.

Each family also subclasses the builtin a caller would naturally catch, so
``except ValueError`` / ``except OSError`` keep working.
"""
from __future__ import annotations

from typing import Any


class ImageNetStreamError(Exception):
    """Base class of every error raised by imagenet_stream."""


class SourceError(ImageNetStreamError, ValueError):
    """A sharding source (folder, tar, label file, list) is missing or malformed."""


class NothingKeptError(SourceError):
    """The sharder rejected every image; ``report`` says why (``report.json`` is written, ``index.json`` not)."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


class ManifestError(ImageNetStreamError, ValueError):
    """An ``index.json`` manifest or a shard side index is missing, malformed or of an unknown version."""


class ShardIntegrityError(ImageNetStreamError, OSError):
    """A shard's bytes do not match its manifest (size, checksum, offsets) or cannot be parsed."""


class StorageError(ImageNetStreamError, OSError):
    """Reading or writing the object store failed after all retries."""


class PlanError(ImageNetStreamError, ValueError):
    """Arguments to the epoch planner are inconsistent (e.g. rank >= world size)."""


class ConfigError(ImageNetStreamError, ValueError):
    """A user-facing option is invalid (e.g. an unknown transform preset, a crop size <= 0)."""

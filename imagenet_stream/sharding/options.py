"""``ShardOptions``: everything ``imagenet-stream shard`` can be told but its sources, validated once.

:meth:`ShardOptions.output_key` names the options that change the bytes written (a resumed run must
match it); workers, backend, threads and credentials never do.
"""
from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from imagenet_stream import __version__
from imagenet_stream.curation.download import DownloadPolicy
from imagenet_stream.curation.registry import Registry
from imagenet_stream.curation.votes import DEFAULT_MIN_VOTES, VoteTable
from imagenet_stream.errors import ConfigError
from imagenet_stream.format.download_status import STATUS_FORMATS
from imagenet_stream.sharding.backends import BACKENDS
from imagenet_stream.sharding.plan import PLAN_ALGORITHM
from imagenet_stream.sharding.verify_image import DEFAULT_MAX_IMAGE_BYTES, VerifyConfig

#: The smallest --max-shard-bytes: room for a few tar records.
MIN_SHARD_BYTES = 20 * 512


@dataclasses.dataclass(frozen=True)
class ShardOptions:
    """Everything ``imagenet-stream shard`` can be told, minus the sources."""

    out: str
    storage_options: Mapping[str, Any] | None = None
    source_storage_options: Mapping[str, Any] | None = None   # None: the same as storage_options
    classes: str | None = None              # "in1k" | "in21k" | "in22k" | path; None: choose_space
    seed: int = 0
    shard_size: int = 1000
    max_shard_bytes: int = 1 << 30
    workers: int = 0                        # 0 or 1: shard in this process
    backend: str = "local"
    ray_address: str | None = None
    min_size: int = 8
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES  # larger source files are rejected unread
    resize_short_side: int | None = None
    quality: int = 90
    name: str = "imagenet"
    version: str = "1"
    prefix: str = "train"
    tmp_dir: str | None = None              # local scratch: the listing's text, dedup buckets
    staging: str | None = None              # where compressed sources are staged (default: OUT's work area)
    keep_staging: bool = False
    overwrite: bool = False
    mtime: int | None = None                # tar mtime; None: $SOURCE_DATE_EPOCH, else 0
    full_decode: bool = False               # verify unchanged JPEGs at full size, not by a 1/4-scale decode
    io_threads: int = 8                     # per task: concurrent source reads
    index_threads: int = 8                  # remote tars: inner tars indexed at once
    task_retries: int = 2
    keep_metadata: bool = False             # store JPEGs with their EXIF/GPS/XMP/comments (default: stripped)
    opt_out: Registry | None = None         # keys / source sha256 rejected with their reasons (--opt-out)
    terms: str | None = None                # the dataset's terms of use (index.json extra.terms)
    licence: str | None = None              # the images' licence (index.json extra.licence)
    votes: VoteTable | None = None          # human-verification votes (--votes): keep a strict yes majority
    min_votes: int = DEFAULT_MIN_VOTES      # ... of at least this many votes
    download: DownloadPolicy = DownloadPolicy()  # URL lists: timeouts, retries, per-host limits, robots
    status_format: str = "auto"             # URL lists' status files: auto | parquet | jsonl

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0, got {self.workers}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        self.verify_config(None)  # validates min_size, max_image_bytes, resize_short_side, quality
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if not self.name or not self.version:
            raise ConfigError(f"dataset name and version must be non-empty, got {self.name!r} / {self.version!r}")
        if self.io_threads < 1 or self.index_threads < 1:
            raise ConfigError("io_threads and index_threads must be >= 1")
        if not re.match(r"^[A-Za-z0-9_-]+$", self.prefix or ""):
            raise ConfigError(f"prefix must match [A-Za-z0-9_-]+ (shards are PREFIX-NNNNNN.tar), got {self.prefix!r}")
        if isinstance(self.min_votes, bool) or not isinstance(self.min_votes, int) or self.min_votes < 0:
            raise ConfigError(f"min_votes must be an int >= 0, got {self.min_votes!r}")
        if self.status_format not in STATUS_FORMATS:
            raise ConfigError(f"status_format must be one of {STATUS_FORMATS}, got {self.status_format!r}")
        if self.shard_size < 1:
            raise ConfigError(f"shard_size must be >= 1, got {self.shard_size}")
        if self.max_shard_bytes < MIN_SHARD_BYTES:
            raise ConfigError(f"max_shard_bytes must be >= {MIN_SHARD_BYTES}, got {self.max_shard_bytes}")

    def verify_config(self, allowed: Sequence[str] | None) -> VerifyConfig:
        """The per-image verify settings, restricted to ``allowed`` wnids when given."""
        return VerifyConfig(min_size=self.min_size, max_image_bytes=self.max_image_bytes,
                            resize_short_side=self.resize_short_side, quality=self.quality,
                            allowed_wnids=frozenset(allowed) if allowed is not None else None,
                            full_decode=self.full_decode, strip_metadata=not self.keep_metadata,
                            opt_out=self.opt_out)

    @property
    def tar_mtime(self) -> int:
        if self.mtime is not None:
            return int(self.mtime)
        raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
        try:
            return int(raw) if raw else 0
        except ValueError:
            raise ConfigError(f"SOURCE_DATE_EPOCH must be an integer, got {raw!r}") from None

    def output_key(self) -> dict[str, Any]:
        """The options that change what is written (never workers, backend, threads or credentials)."""
        return {"classes": self.classes, "seed": self.seed, "shard_size": self.shard_size,
                "max_shard_bytes": self.max_shard_bytes, "min_size": self.min_size,
                "max_image_bytes": self.max_image_bytes, "resize_short_side": self.resize_short_side,
                "quality": self.quality, "full_decode": self.full_decode, "keep_metadata": self.keep_metadata,
                "opt_out": self.opt_out.digest() if self.opt_out else None,
                "votes": [self.votes.digest(), self.min_votes] if self.votes is not None else None,
                "honor_robots": self.download.honor_robots,
                "name": self.name,
                "version": self.version, "prefix": self.prefix, "mtime": self.tar_mtime,
                "tool": __version__, "plan_algorithm": PLAN_ALGORITHM}


__all__ = ["MIN_SHARD_BYTES", "ShardOptions"]

"""``StreamOptions``: every option of an ``ImageNetStream`` but what it streams, validated once.

``ImageNetStream(url, **options)`` builds one; its fields are the keyword arguments documented on
:class:`~imagenet_stream.streaming.dataset.ImageNetStream`. Frozen, so a dataset's options cannot
drift between the process that built it and its DataLoader workers.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imagenet_stream.errors import ConfigError
from imagenet_stream.retry import RetryPolicy
from imagenet_stream.streaming.reader import DEFAULT_INDEX_CACHE, DEFAULT_MERGE_GAP
from imagenet_stream.streaming.sampling import ClassSampling, parse_sampling

#: Where indexes of foreign shards are kept by default (``$IMAGENET_STREAM_CACHE`` overrides it).
DEFAULT_INDEX_DIR = "~/.cache/imagenet-stream"
PARTIAL_MODES = ("drop", "pad")


def int_option(name: str, value: object, minimum: int) -> int:
    """``value`` as an int ``>= minimum`` (bools refused), else a ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class StreamOptions:
    """The validated options of one dataset object (see ``ImageNetStream`` for each one's meaning).

    ``batch_size=None`` follows the DataLoader's (:mod:`.loader_batch`); ``prefetch=None`` is two
    batches' worth of ranges (at least 8), fixed per pass once the batch size is known; ``retry=None`` the default
    :class:`~imagenet_stream.retry.RetryPolicy`; ``sampling`` a :class:`ClassSampling` or None;
    ``index_dir=None`` ``$IMAGENET_STREAM_CACHE`` or :data:`DEFAULT_INDEX_DIR`.
    """

    shuffle: bool = True
    seed: int = 0
    transform: str | Callable[..., Any] | None = "train"
    size: int = 224
    batch_size: int | None = None
    return_keys: bool = False
    classes: Any = None
    classes_in: Any = None
    sampling: str | ClassSampling | Mapping[str, Any] | None = None
    epoch_size: int | None = None
    replacement: bool | None = None
    storage_options: Mapping[str, Any] | None = field(default=None, repr=False)
    retry: RetryPolicy | None = None
    cache_dir: str | os.PathLike[str] | None = None
    cache_limit: int | None = None
    index_dir: str | os.PathLike[str] | None = None
    partial: str = "drop"
    shuffle_window: int = 64
    chunk: int = 16
    prefetch: int | None = None
    merge_gap: int = DEFAULT_MERGE_GAP
    index_cache_bytes: int = DEFAULT_INDEX_CACHE
    decode_threads: int = 0
    batched: bool = False

    def __post_init__(self) -> None:
        if self.partial not in PARTIAL_MODES:
            raise ConfigError(f"partial must be 'drop' or 'pad', got {self.partial!r}")
        if self.retry is not None and not isinstance(self.retry, RetryPolicy):
            raise ConfigError(f"retry must be a RetryPolicy, got {self.retry!r}")
        if self.batched and self.batch_size is None:
            raise ConfigError("batched=True yields whole batches of batch_size samples: give batch_size= too")
        fix = {
            "shuffle": bool(self.shuffle),
            "return_keys": bool(self.return_keys),
            "batched": bool(self.batched),
            "seed": int_option("seed", self.seed, 0),
            "batch_size": None if self.batch_size is None else int_option("batch_size", self.batch_size, 1),
            "shuffle_window": int_option("shuffle_window", self.shuffle_window, 1),
            "chunk": int_option("chunk", self.chunk, 1),
            "merge_gap": int_option("merge_gap", self.merge_gap, 0),
            "index_cache_bytes": int_option("index_cache_bytes", self.index_cache_bytes, 0),
            "decode_threads": int_option("decode_threads", self.decode_threads, 0),
            "retry": self.retry or RetryPolicy(),
            "sampling": parse_sampling(self.sampling),
            "epoch_size": None if self.epoch_size is None else int_option("epoch_size", self.epoch_size, 0),
            "index_dir": (os.fspath(self.index_dir) if self.index_dir is not None
                          else os.environ.get("IMAGENET_STREAM_CACHE", DEFAULT_INDEX_DIR)),
        }
        fix["prefetch"] = None if self.prefetch is None else int_option("prefetch", self.prefetch, 1)
        for name, value in fix.items():
            object.__setattr__(self, name, value)


__all__ = ["DEFAULT_INDEX_DIR", "PARTIAL_MODES", "StreamOptions", "int_option"]

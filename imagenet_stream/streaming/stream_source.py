"""Open one stream of an ``ImageNetStream``: a dataset root holding ``index.json``, or foreign
webdataset shards (indexed once into a local cache, see :mod:`.foreign`)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imagenet_stream.errors import ConfigError
from imagenet_stream.retry import RetryPolicy
from imagenet_stream.storage import Store
from imagenet_stream.streaming.classes import resolve_space
from imagenet_stream.streaming.foreign import cached_index
from imagenet_stream.streaming.roots import Source, is_shard_url, manifest_source, root_of


def open_stream(url: str, storage_options: Mapping[str, Any] | None, classes_in: Any, index_dir: str,
                retry: RetryPolicy) -> tuple[Source, Store]:
    """The source of one stream and the store of its manifest."""
    options = dict(storage_options or {})
    if is_shard_url(url):
        wnids = None if classes_in is None else resolve_space(classes_in)
        store = cached_index(url, index_dir, options, wnids, retry=retry)
    else:
        if classes_in is not None:
            raise ConfigError("classes_in declares the class space of foreign shards; "
                              f"{url} is a dataset root whose index.json names its classes")
        store = Store(root_of(url), options, retry=retry)
    return manifest_source(store), store


__all__ = ["open_stream"]

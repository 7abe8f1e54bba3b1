"""Sharding sources: ImageNet as it is really distributed, listed as locators (never read here).

:func:`open_source` detects the layout of a local path or an fsspec URL (``s3://...``):

==================================================  ===============================================
folder whose entries are ``nXXXXXXXX/`` folders      :class:`FolderTreeSource` (train/ of the release)
folder of images + ``labels``                        :class:`LabelledFolderSource` (val/)
``.tar`` / ``.tar.gz`` / ``.tgz`` (also bz2, xz)     :class:`TarSource`: per-synset inner tars, synset
                                                     folders, or flat images + ``labels``
folder of ``nXXXXXXXX.tar`` files                   :class:`SynsetTarFolderSource` (train tar unpacked)
``.csv`` / ``.tsv`` / ``.jsonl`` list of path,wnid   :class:`ListSource` (a local file)
URL list: ``fall11_urls.txt``, or a table with url   :class:`UrlListSource` (a local file; downloaded
(``.csv`` / ``.tsv`` / ``.jsonl`` / ``.parquet``)    by the shard tasks)
==================================================  ===============================================

Each source's ``list_into(writer, ctx)`` adds its records to a
:class:`~imagenet_stream.sharding.listing.ListingWriter`. Label files are described in :mod:`.labels`.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from imagenet_stream.errors import SourceError
from imagenet_stream.sharding.listing import ListingWriter
from imagenet_stream.sharding.sources.folder import FolderTreeSource, LabelledFolderSource, scan_folder
from imagenet_stream.sharding.sources.labels import Labels, read_labels
from imagenet_stream.sharding.sources.listfile import ListSource, is_list_name
from imagenet_stream.sharding.sources.rules import (
    IMAGE_EXTENSIONS,
    ListingContext,
    is_image_name,
    is_wnid,
    split_url,
)
from imagenet_stream.sharding.sources.staged_tar import StagedTar
from imagenet_stream.sharding.sources.tar import SynsetTarFolderSource, TarSource
from imagenet_stream.sharding.sources.tar_members import is_tar_name
from imagenet_stream.sharding.sources.urllist import UrlListSource, is_url_list
from imagenet_stream.storage import Store

logger = logging.getLogger(__name__)

__all__ = [
    "Source", "open_source", "open_sources", "ListingContext",
    "FolderTreeSource", "LabelledFolderSource", "TarSource", "StagedTar", "SynsetTarFolderSource", "ListSource",
    "UrlListSource",
    "Labels", "read_labels", "IMAGE_EXTENSIONS", "is_image_name", "is_wnid",
]


@runtime_checkable
class Source(Protocol):
    """What the sharder consumes."""

    description: str

    def list_into(self, writer: ListingWriter, ctx: ListingContext) -> None:
        """Add every image as a record, in a deterministic order."""
        ...


def open_source(spec: str, labels: str | None = None, storage_options: Mapping[str, Any] | None = None) -> Source:
    """Open the path or URL ``spec`` as a source; ``labels`` is a label file for flat image collections."""
    return _open(spec, labels, {}, storage_options)


def open_sources(specs: Sequence[str], labels: str | None = None,
                 storage_options: Mapping[str, Any] | None = None) -> list[Source]:
    """Open several sources (a label file is parsed once and used by the sources that need one)."""
    if not specs:
        raise SourceError("no sources given")
    cache: dict[str, Labels] = {}
    return [_open(spec, labels, cache, storage_options) for spec in specs]


def _labels(path: str | None, cache: dict[str, Labels], spec: str) -> Labels:
    if path is None:
        raise SourceError(f"{spec} is a flat collection of images without class folders; pass a labels file "
                          "(one wnid per line in sorted file-name order, or 'filename,wnid' rows)")
    if path not in cache:
        cache[path] = read_labels(path)
    return cache[path]


def _open(spec: str, labels: str | None, cache: dict[str, Labels],
          storage_options: Mapping[str, Any] | None) -> Source:
    remote = "://" in spec and not spec.startswith("file://")
    path = spec[len("file://"):] if spec.startswith("file://") else spec
    if not remote:
        path = os.path.expanduser(path)
        if not os.path.exists(path):
            raise SourceError(f"source {spec!r} does not exist")
        path = os.path.abspath(path)
    name = path.rstrip("/").rsplit("/", 1)[-1]
    if not remote and is_url_list(path):
        return UrlListSource(path)
    if not remote and os.path.isfile(path) and is_list_name(name):
        return ListSource(path)
    if is_tar_name(name):
        parent, base = split_url(path)
        return TarSource(Store(parent, storage_options), base,
                         labels=None if labels is None else _labels(labels, cache, spec))
    if is_list_name(name):
        raise SourceError(f"source {spec!r}: list files must be local (their rows may name remote images)")
    if not remote and os.path.isfile(path):
        raise SourceError(f"source {spec!r}: expected a folder, a tar (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz) "
                          f"or a list (.csv, .tsv, .jsonl; or a URL list: .txt, .parquet)")
    store = Store(path, storage_options)
    dirs, images, others = scan_folder(store)
    if not (dirs or images or others) and not store.is_folder():
        raise SourceError(f"source {spec!r} does not exist or is not a folder, tar or list")
    if dirs:
        if labels is not None:
            logger.info("labels file %s is not used for the folder tree %s", labels, spec)
        return FolderTreeSource(store)
    if images:
        if labels is None and is_wnid(name):
            raise SourceError(f"{spec} is one synset folder; pass the folder that holds the synset folders")
        return LabelledFolderSource(store, _labels(labels, cache, spec))
    tars = [n for n in others if is_tar_name(n)]
    if tars:
        return SynsetTarFolderSource(store, tars)
    raise SourceError(f"folder {spec!r} holds no synset folders, image files or per-synset tars")

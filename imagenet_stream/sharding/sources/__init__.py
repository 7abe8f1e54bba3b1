"""Sharding sources: read ImageNet as it is really distributed and yield one SourceRecord per image.

:func:`open_source` detects the layout of a local path:

==================================================  ===============================================
folder whose entries are ``nXXXXXXXX/`` folders      :class:`FolderTreeSource` (train/ of the release)
folder of images + ``labels``                        :class:`LabelledFolderSource` (val/)
``.tar`` / ``.tar.gz`` / ``.tgz`` (also bz2, xz)     :class:`TarSource`: per-synset inner tars, synset
                                                     folders, or flat images + ``labels``
folder of ``nXXXXXXXX.tar`` files                   :class:`SynsetTarFolderSource` (train tar unpacked)
``.csv`` / ``.tsv`` / ``.jsonl`` list of path,wnid   :class:`ListSource`
==================================================  ===============================================

Label files are described in :mod:`.labels`.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from ...errors import SourceError
from ..records import SourceRecord
from ._common import IMAGE_EXTENSIONS, UnreadableRecord, is_image_name, is_wnid
from .folder import FolderTreeSource, LabelledFolderSource, scan_folder
from .labels import Labels, read_labels
from .listfile import ListSource, is_list_name
from .tar import DEFAULT_MAX_MEMBER, SynsetTarFolderSource, TarSource, is_tar_name

logger = logging.getLogger(__name__)

__all__ = [
    "Source", "open_source", "open_sources",
    "FolderTreeSource", "LabelledFolderSource", "TarSource", "SynsetTarFolderSource", "ListSource",
    "Labels", "read_labels", "UnreadableRecord", "IMAGE_EXTENSIONS", "is_image_name", "is_wnid",
]


@runtime_checkable
class Source(Protocol):
    """What the packing pipeline consumes."""

    description: str
    #: True: records carry ``path`` (a local file), listing is cheap and the order may be changed.
    random_access: bool

    def records(self) -> Iterator[SourceRecord]:
        """Every image, in a deterministic order."""
        ...

    def wnids(self) -> set[str] | None:
        """The synsets, when known without reading the data (random-access sources), else None."""
        ...

    def count(self) -> int | None:
        """The number of records when cheaply known (for progress bars), else None."""
        ...


def open_source(spec: str, labels: str | None = None, max_member_bytes: int = DEFAULT_MAX_MEMBER) -> Source:
    """Open the local path ``spec`` as a source; ``labels`` is a label file for flat image collections.

    ``max_member_bytes``: tar members larger than this are skipped unread (and rejected by verify).
    """
    return _open(spec, labels, {}, max_member_bytes)


def open_sources(specs: Sequence[str], labels: str | None = None,
                 max_member_bytes: int = DEFAULT_MAX_MEMBER) -> list[Source]:
    """Open several sources (a label file is parsed once and used by the sources that need one)."""
    if not specs:
        raise SourceError("no sources given")
    cache: dict[str, Labels] = {}
    return [_open(spec, labels, cache, max_member_bytes) for spec in specs]


def _labels(path: str | None, cache: dict[str, Labels], spec: str) -> Labels:
    if path is None:
        raise SourceError(f"{spec} is a flat collection of images without class folders; pass a labels file "
                          "(one wnid per line in sorted file-name order, or 'filename,wnid' rows)")
    if path not in cache:
        cache[path] = read_labels(path)
    return cache[path]


def _open(spec: str, labels: str | None, cache: dict[str, Labels], max_member_bytes: int) -> Source:
    path = spec[len("file://"):] if spec.startswith("file://") else spec
    if "://" in path:
        raise SourceError(f"source {spec!r}: only local paths are supported as sources")
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        raise SourceError(f"source {spec!r} does not exist")
    if os.path.isdir(path):
        dirs, images, others = scan_folder(path)
        if dirs:
            if labels is not None:
                logger.info("labels file %s is not used for the folder tree %s", labels, path)
            return FolderTreeSource(path)
        if images:
            if labels is None and is_wnid(os.path.basename(os.path.normpath(path))):
                raise SourceError(f"{spec} is one synset folder; pass the folder that holds the synset "
                                  "folders")
            return LabelledFolderSource(path, _labels(labels, cache, spec))
        tars = [name for name in others if is_tar_name(name)]
        if tars:
            return SynsetTarFolderSource(path, tars, max_member_bytes)
        raise SourceError(f"folder {spec!r} holds no synset folders, image files or per-synset tars")
    name = os.path.basename(path)
    if is_tar_name(name):
        return TarSource(path, labels=None if labels is None else _labels(labels, cache, spec),
                         max_member_bytes=max_member_bytes)
    if is_list_name(name):
        return ListSource(path)
    raise SourceError(f"source {spec!r}: expected a folder, a tar (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz) "
                      f"or a list (.csv, .tsv, .jsonl)")

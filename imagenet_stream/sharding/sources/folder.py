"""Folders: the ImageNet class-folder tree (``ROOT/nXXXXXXXX/*.JPEG``) and a flat folder + labels,
on a local disk or any fsspec store (``s3://bucket/imagenet/train``). Listing reads directory
entries only (name and size); each image becomes a record ``(folder, name, size)``."""
from __future__ import annotations

import logging

from imagenet_stream.errors import SourceError
from imagenet_stream.format.names import key_from_source
from imagenet_stream.sharding.listing import FOLDER, ListingWriter
from imagenet_stream.sharding.sources.labels import Labels
from imagenet_stream.sharding.sources.rules import (
    ListingContext,
    is_hidden,
    is_image_name,
    is_wnid,
    source_label,
)
from imagenet_stream.storage import Store

logger = logging.getLogger(__name__)

Entries = list[tuple[str, int, bool]]


def scan_entries(entries: Entries, where: str) -> tuple[list[str], list[tuple[str, int]], list[str]]:
    """(sub-folders, (image file, size), other files) of a listed folder, each sorted; hidden ones left out."""
    dirs, images, others = [], [], []
    for name, size, is_dir in entries:
        if is_hidden(name):
            logger.debug("skipping hidden %s/%s", where, name)
        elif is_dir:
            dirs.append(name)
        elif is_image_name(name):
            images.append((name, size))
        else:
            others.append(name)
    return sorted(dirs), sorted(images), sorted(others)


def scan_folder(store: Store, sub: str = "") -> tuple[list[str], list[tuple[str, int]], list[str]]:
    """:func:`scan_entries` of ``store``'s folder ``sub``; SourceError when it cannot be listed."""
    try:
        entries = store.entries(sub)
    except OSError as exc:
        raise SourceError(f"cannot list folder {store.url_of(sub)}: {exc}") from None
    return scan_entries(entries, store.url_of(sub))


class FolderTreeSource:
    """``ROOT/nXXXXXXXX/<image>``: one folder per synset, records in sorted (wnid, file name) order."""

    def __init__(self, store: Store, label: str | None = None) -> None:
        self.store = store
        self.label = label or source_label(store.url)
        dirs, images, others = scan_folder(store)
        for name in dirs:
            if not is_wnid(name):
                hint = ""
                if any(is_wnid(d) for d in scan_folder(store, name)[0]):
                    hint = f"; it holds synset folders, so pass {store.url_of(name)!r} as its own source"
                raise SourceError(f"{store.display_url}: folder {name!r} is not named like a wnid (n + 8 digits){hint}")
        if images:
            logger.warning("%s: %d image files directly in the root have no class folder and are not read, "
                           "e.g. %s", store.display_url, len(images), images[0][0])
        self.synsets = dirs
        self.description = f"ImageNet folder tree {self.label} ({len(dirs):,} synsets)"

    def list_into(self, writer: ListingWriter, ctx: ListingContext) -> None:
        container = writer.container(self.store.url, FOLDER, self.label)
        for wnid in self.synsets:
            subdirs, images, others = scan_folder(self.store, wnid)
            if subdirs:
                logger.warning("%s: %d sub-folders are not read (images must sit directly in the synset "
                               "folder), e.g. %s", self.store.url_of(wnid), len(subdirs), subdirs[0])
            for name in others:
                logger.debug("skipping non-image file %s/%s", self.store.url_of(wnid), name)
            for name, size in images:
                writer.add(container, 0, size, wnid, f"{wnid}/{name}", key_from_source(name))
            ctx.listed(len(images))


class LabelledFolderSource:
    """A flat folder of images (``ILSVRC2012_val_00000001.JPEG`` ...) whose classes come from a label file."""

    def __init__(self, store: Store, labels: Labels, label: str | None = None) -> None:
        self.store = store
        self.label = label or source_label(store.url)
        dirs, images, others = scan_folder(store)
        if dirs:
            logger.warning("%s: %d sub-folders are not read in a flat labelled folder, e.g. %s",
                           store.display_url, len(dirs), dirs[0])
        for name in others:
            logger.debug("skipping non-image file %s/%s", store.display_url, name)
        if not images:
            raise SourceError(f"{store.display_url}: no image files found")
        self._images = images
        self._labels = labels.assign([name for name, _ in images], store.display_url)
        self.description = (f"flat image folder {self.label} labelled by {source_label(labels.path)} "
                            f"({len(images):,} images, {len(set(self._labels.values())):,} synsets)")

    def list_into(self, writer: ListingWriter, ctx: ListingContext) -> None:
        container = writer.container(self.store.url, FOLDER, self.label)
        for name, size in self._images:
            writer.add(container, 0, size, self._labels[name], name, key_from_source(name))
        ctx.listed(len(self._images))


"""Local folders: the ImageNet class-folder tree (``ROOT/nXXXXXXXX/*.JPEG``) and a flat folder + labels."""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from ...errors import SourceError
from ...shards.names import key_from_source
from ..records import SourceRecord
from ._common import is_hidden, is_image_name, is_wnid, source_label
from .labels import Labels

logger = logging.getLogger(__name__)


def scan_folder(folder: str) -> tuple[list[str], list[str], list[str]]:
    """(sub-folders, image files, other files) of ``folder``, each sorted; hidden entries are left out."""
    dirs, images, others = [], [], []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if is_hidden(entry.name):
                    logger.debug("skipping hidden %s", entry.path)
                elif entry.is_dir():
                    dirs.append(entry.name)
                elif is_image_name(entry.name):
                    images.append(entry.name)
                else:
                    others.append(entry.name)
    except OSError as e:
        raise SourceError(f"cannot list folder {folder!r}: {e}") from e
    return sorted(dirs), sorted(images), sorted(others)


class FolderTreeSource:
    """``ROOT/nXXXXXXXX/<image>``: one folder per synset, records in sorted (wnid, file name) order."""

    random_access = True

    def __init__(self, root: str) -> None:
        self.root = root
        self._label = source_label(root)
        dirs, images, others = scan_folder(root)
        for name in dirs:
            if not is_wnid(name):
                hint = ""
                if any(is_wnid(d) for d in scan_folder(os.path.join(root, name))[0]):
                    inner = os.path.join(root, name)
                    hint = f"; it holds synset folders, so pass {inner!r} as its own source"
                raise SourceError(f"{root}: folder {name!r} is not named like a wnid (n + 8 digits){hint}")
        if images:
            logger.warning("%s: %d image files directly in the root have no class folder and are not read, "
                           "e.g. %s", root, len(images), images[0])
        for name in others:
            logger.debug("skipping non-image file %s", os.path.join(root, name))
        self._wnids = dirs
        self._files: dict[str, list[str]] | None = None
        self.description = f"ImageNet folder tree {self._label} ({len(dirs):,} synsets)"

    def _listing(self) -> dict[str, list[str]]:
        if self._files is None:
            files = {}
            for wnid in self._wnids:
                folder = os.path.join(self.root, wnid)
                subdirs, images, others = scan_folder(folder)
                if subdirs:
                    logger.warning("%s: %d sub-folders are not read (images must sit directly in the synset "
                                   "folder), e.g. %s", folder, len(subdirs), subdirs[0])
                for name in others:
                    logger.debug("skipping non-image file %s", os.path.join(folder, name))
                files[wnid] = images
            self._files = files
        return self._files

    def wnids(self) -> set[str]:
        """Every synset folder, including empty ones."""
        return set(self._wnids)

    def count(self) -> int:
        return sum(len(v) for v in self._listing().values())

    def records(self) -> Iterator[SourceRecord]:
        for wnid, names in self._listing().items():
            for name in names:
                path = os.path.join(self.root, wnid, name)
                yield SourceRecord(source=f"{self._label}/{wnid}/{name}", wnid=wnid, key=key_from_source(name),
                                   path=path)


class LabelledFolderSource:
    """A flat folder of images (``ILSVRC2012_val_00000001.JPEG`` ...) whose classes come from a label file."""

    random_access = True

    def __init__(self, root: str, labels: Labels) -> None:
        self.root = root
        dirs, images, others = scan_folder(root)
        if dirs:
            logger.warning("%s: %d sub-folders are not read in a flat labelled folder, e.g. %s",
                           root, len(dirs), dirs[0])
        for name in others:
            logger.debug("skipping non-image file %s", os.path.join(root, name))
        if not images:
            raise SourceError(f"{root}: no image files found")
        self._labels = labels.assign(images, root)
        self._names = images
        self._label = source_label(root)
        self.description = (f"flat image folder {self._label} labelled by {source_label(labels.path)} "
                            f"({len(images):,} images, {len(set(self._labels.values())):,} synsets)")

    def wnids(self) -> set[str]:
        return set(self._labels.values())

    def count(self) -> int:
        return len(self._names)

    def records(self) -> Iterator[SourceRecord]:
        for name in self._names:
            path = os.path.join(self.root, name)
            yield SourceRecord(source=f"{self._label}/{name}", wnid=self._labels[name], key=key_from_source(name),
                               path=path)

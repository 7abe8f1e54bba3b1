"""Small rules every source shares: wnid and image-name checks, naming, and how sources reach storage."""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from imagenet_stream.errors import SourceError
from imagenet_stream.storage import Store

WNID_RE = re.compile(r"^n\d{8}$")

#: File extensions (lower case) a source treats as images; anything else is skipped with a debug log.
#: Non-JPEG formats are converted to JPEG by verify.
IMAGE_EXTENSIONS = frozenset({".jpeg", ".jpg", ".jpe", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


def is_wnid(name: str) -> bool:
    """``n`` followed by exactly eight digits (a WordNet noun offset)."""
    return bool(WNID_RE.match(name))


def is_hidden(name: str) -> bool:
    """Dot files and folders (``.DS_Store``, ``.ipynb_checkpoints``, macOS ``._x.JPEG`` forks)."""
    return name.startswith(".")


def is_image_name(name: str) -> bool:
    """Whether a file name has an image extension (any case) and is not hidden."""
    if is_hidden(name):
        return False
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in IMAGE_EXTENSIONS


def source_label(path: str) -> str:
    """How records of the source at ``path`` name themselves in metadata and reports: its last path
    component (``train``, ``ILSVRC2012_img_train.tar``), so no user name or mount point is stored."""
    return os.path.basename(os.path.normpath(path)) or "source"


def check_wnid(wnid: str, where: str) -> str:
    """Return ``wnid`` or raise SourceError naming ``where`` (a folder, a file:line)."""
    if not is_wnid(wnid):
        raise SourceError(f"{where}: {wnid!r} is not a wnid (expected 'n' + 8 digits, e.g. n01440764)")
    return wnid


def split_url(url: str) -> tuple[str, str]:
    """``(parent, name)`` of a path or URL: ``s3://b/x/y.tar`` -> ``("s3://b/x", "y.tar")``."""
    url = url.rstrip("/")
    if "/" not in url:
        return ".", url
    parent, name = url.rsplit("/", 1)
    if parent.endswith(":/") or parent.endswith(":"):  # "s3://bucket"
        parent = url
        name = ""
    return parent or "/", name


@dataclass
class ListingContext:
    """What sources need while listing: storage for their URLs, where to stage compressed tars,
    how many inner tars to index at once, and a progress callback (records listed so far)."""

    storage_options: Mapping[str, Any] | None = None
    staging: Store | None = None
    index_threads: int = 1
    on_records: Callable[[int], None] | None = None
    _stores: dict[str, Store] = field(default_factory=dict)

    def store(self, root: str) -> Store:
        """A Store for ``root`` (one per root, reused)."""
        found = self._stores.get(root)
        if found is None:
            found = self._stores[root] = Store(root, self.storage_options)
        return found

    def listed(self, n: int = 1) -> None:
        if self.on_records is not None:
            self.on_records(n)

"""Small rules every source shares: wnid and image-name checks, and the record of an unreadable member."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ...errors import SourceError
from ..records import SourceRecord

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


@dataclass(frozen=True)
class UnreadableRecord(SourceRecord):
    """A record whose bytes could not be read from its source (e.g. a corrupt inner tar).

    Its ``load()`` raises OSError with ``error``, so verify counts it as ``unreadable_file``
    instead of the images it held silently disappearing.
    """

    error: str = ""

    def load(self, max_bytes: int | None = None) -> bytes:
        raise OSError(f"{self.source}: {self.error}")

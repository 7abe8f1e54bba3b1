"""URL and path naming shared by the storage seam and its callers: no I/O, no fsspec."""
from __future__ import annotations

import os


def protocol_of(url: str) -> str:
    """The URL's scheme, lower-case (``"file"`` for a plain path): storage options apply within one."""
    return url.split("://", 1)[0].lower() if "://" in url else "file"


def absolute_url(url: str) -> str:
    """``url`` itself, or a plain path made absolute (what a manifest may point at)."""
    return url if "://" in url else os.path.abspath(url)


def expand_urls(pattern: str) -> list[str]:
    """Expand a webdataset-style brace pattern (``shard-{000000..000009}.tar``) into URLs."""
    from braceexpand import braceexpand  # installed with webdataset

    return list(braceexpand(pattern))


__all__ = ["absolute_url", "expand_urls", "protocol_of"]

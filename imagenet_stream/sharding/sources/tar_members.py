"""Tar members as the sources meet them: names and layouts, compression, and the header pass that
lists one inner tar's images (shared by :mod:`.tar` and :mod:`.staged_tar`)."""
from __future__ import annotations

import bz2
import gzip
import logging
import lzma
import zlib
from typing import IO, BinaryIO

from imagenet_stream.format import TarDamaged, TarMember, TarWalker
from imagenet_stream.sharding.sources.rules import is_hidden, is_image_name, is_wnid
from imagenet_stream.storage import Store

logger = logging.getLogger(__name__)

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
REMOTE_BLOCK = 1 << 20       # read size of the header pass over object storage
COPY_CHUNK = 8 << 20
#: What a damaged compressed stream raises while being read.
STREAM_ERRORS = (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile, OSError)

NESTED, FOLDERS, FLAT = "tar of per-synset tars", "tar of synset folders", "flat tar of images"
SYNSET = "per-synset tar"

#: Magic bytes of the compressions a source tar may use, and their (bounded) stream readers.
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"))


def is_tar_name(name: str) -> bool:
    return name.lower().endswith(TAR_SUFFIXES)


def strip_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in TAR_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def clean(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def member_kind(name: str) -> str | None:
    """NESTED for an inner tar, FOLDERS for an image in a wnid folder, FLAT for another image, else None."""
    parts = clean(name).split("/")
    if any(is_hidden(p) or p == "__MACOSX" for p in parts):
        return None
    base = parts[-1]
    if is_tar_name(base):
        return NESTED
    if not is_image_name(base):
        return None
    return FOLDERS if len(parts) >= 2 and is_wnid(parts[-2]) else FLAT


def compression_of(head: bytes) -> str | None:
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


def decompressed(fileobj: IO[bytes], kind: str) -> IO[bytes]:
    """A reader of the decompressed bytes of ``fileobj``: each ``read(n)`` decompresses at most what it
    returns (``tarfile``'s own ``r|gz`` decompresses whole input chunks: 64 KB of a gzip bomb became
    64 MB per call)."""
    if kind == "gzip":
        return gzip.GzipFile(fileobj=fileobj, mode="rb")  # type: ignore[return-value]
    if kind == "bzip2":
        return bz2.BZ2File(fileobj)  # type: ignore[return-value]
    return lzma.LZMAFile(fileobj)  # type: ignore[return-value]


def open_for_headers(store: Store, name: str) -> BinaryIO:
    if store.is_local:
        return open(store.path(name), "rb")
    return store.open(name, "rb", block_size=REMOTE_BLOCK, cache_type="readahead")


def inner_records(fileobj: BinaryIO, member: TarMember, where: str, seekable: bool = True
                   ) -> tuple[list[tuple[str, int, int]], str | None]:
    """``([(member name, absolute offset, size)...], damage or None)`` of the inner tar ``member``."""
    found: list[tuple[str, int, int]] = []
    try:
        walker = TarWalker(fileobj, where=where, start=member.offset if seekable else 0,
                           base=member.offset, end=member.offset + member.size, seekable=seekable)
        for m in walker:
            if not m.is_file:
                continue
            base = m.name.rsplit("/", 1)[-1]
            if not is_image_name(base):
                logger.debug("skipping member %s/%s", where, m.name)
                continue
            found.append((clean(m.name), m.offset, m.size))
    except TarDamaged as exc:
        logger.error("%s is damaged after %d images: %s", where, len(found), exc)
        return found, f"damaged tar after {len(found)} images: {exc}"
    return found, None


def object_url(store: Store, name: str) -> str:
    return f"{store.url}/{name}"


def index_remote_inner(store: Store, name: str, member: TarMember, where: str) -> tuple[list, str | None]:
    with open_for_headers(store, name) as f:
        return inner_records(f, member, where)


__all__ = ["COPY_CHUNK", "FLAT", "FOLDERS", "NESTED", "REMOTE_BLOCK", "STREAM_ERRORS", "SYNSET", "TAR_SUFFIXES",
           "clean", "compression_of", "decompressed", "index_remote_inner", "inner_records", "is_tar_name",
           "member_kind", "object_url", "open_for_headers", "strip_suffix"]

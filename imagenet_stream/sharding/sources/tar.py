"""Tar archives as ImageNet ships them, read as one forward stream (never extracted to disk).

* A tar of per-synset tars: ``ILSVRC2012_img_train.tar``, ``fall11_whole.tar`` and the gzip form
  ``winter21_whole.tar.gz`` (inner ``nXXXXXXXX.tar`` holding ``nXXXXXXXX_<n>.JPEG``). The wnid comes
  from the inner tar's name; each inner tar is read in stream mode from the outer member's file object.
* A tar of synset folders (``train/nXXXXXXXX/*.JPEG``): the wnid is the image's parent folder.
* A flat tar of images (``ILSVRC2012_img_val.tar``) with a label file. Its member names are listed
  first (headers only; a seek per member for an uncompressed tar) to match the labels up front.
* One per-synset tar on its own (``n01440764.tar``): the wnid is the tar's name.
* A folder of per-synset tars (the train tar unpacked one level): :class:`SynsetTarFolderSource`.

A corrupt inner tar does not stop the stream: the images read before the damage are yielded, then one
:class:`UnreadableRecord` for the inner tar, which verify counts as ``unreadable_file``. Damage to the
outer archive cannot be skipped in a forward stream and raises SourceError.
"""
from __future__ import annotations

import bz2
import gzip
import logging
import lzma
import os
import tarfile
import zlib
from collections.abc import Iterator
from typing import IO

from ...errors import SourceError
from ...shards.names import key_from_source
from ..records import SourceRecord
from ._common import UnreadableRecord, check_wnid, is_hidden, is_image_name, is_wnid, source_label
from .labels import Labels

logger = logging.getLogger(__name__)

DEFAULT_MAX_MEMBER = 64 << 20  # verify.DEFAULT_MAX_IMAGE_BYTES; the pipeline passes --max-image-bytes
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_READ_SIZE = 1 << 16  # tarfile's stream buffer copies its remainder on every read: keep it small
_PEEK_MEMBERS = 100
#: What a damaged tar or compressed stream raises while being read.
_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, gzip.BadGzipFile)

NESTED, FOLDERS, FLAT = "tar of per-synset tars", "tar of synset folders", "flat tar of images"
SYNSET = "per-synset tar"


def is_tar_name(name: str) -> bool:
    return name.lower().endswith(TAR_SUFFIXES)


def _strip_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in TAR_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _clean(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def member_kind(name: str) -> str | None:
    """NESTED for an inner tar, FOLDERS for an image in a wnid folder, FLAT for another image, else None."""
    parts = _clean(name).split("/")
    if any(is_hidden(p) or p == "__MACOSX" for p in parts):
        return None
    base = parts[-1]
    if is_tar_name(base):
        return NESTED
    if not is_image_name(base):
        return None
    return FOLDERS if len(parts) >= 2 and is_wnid(parts[-2]) else FLAT


class DamagedTarError(tarfile.ReadError):
    """A header block is cut short or invalid, or the archive ends without its end-of-archive block."""


class _StrictTarInfo(tarfile.TarInfo):
    """Header parsing that treats a damaged header as damage, not as the end of the archive.

    ``tarfile`` stops silently (as if the archive had ended) at a truncated or invalid header past the
    first member, which would drop every later image without a trace. Only an all-zero block
    (``EOFHeaderError``) ends an archive here.
    """

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tarfile_)
        except tarfile.EOFHeaderError:
            raise
        except (tarfile.EmptyHeaderError, tarfile.TruncatedHeaderError) as e:
            raise DamagedTarError(f"archive ends without an end-of-archive block at byte {tarfile_.offset:,} "
                                  f"({e})") from None
        except tarfile.InvalidHeaderError as e:
            raise DamagedTarError(f"invalid header at byte {tarfile_.offset:,} ({e})") from None


#: Magic bytes of the compressions a source tar may use, and their (bounded) stream readers.
_MAGIC = ((b"\x1f\x8b", gzip.GzipFile), (b"BZh", bz2.BZ2File), (b"\xfd7zXZ\x00", lzma.LZMAFile))


def decompressed(fileobj: IO[bytes]) -> IO[bytes]:
    """``fileobj`` itself, or a reader of its decompressed bytes when it starts with a gzip/bzip2/xz magic.

    These readers decompress at most what each ``read(n)`` asks for. ``tarfile``'s own ``r|gz``
    decompresses whole input chunks at once: 64 KB of a gzip bomb (zeros) became 64 MB per call.
    """
    peek = getattr(fileobj, "peek", None)
    if peek is not None:  # buffered: works on pipes and FIFOs too
        head = peek(6)[:6]
    else:
        head = fileobj.read(6)
        fileobj.seek(0)
    for magic, reader in _MAGIC:
        if head.startswith(magic):
            return reader(fileobj=fileobj, mode="rb") if reader is gzip.GzipFile else reader(fileobj)
    return fileobj


def _open_stream(fileobj: IO[bytes]) -> tarfile.TarFile:
    return tarfile.open(fileobj=fileobj, mode="r|", bufsize=_READ_SIZE, tarinfo=_StrictTarInfo)


class TarSource:
    """One local tar (optionally compressed) in any of the layouts of the module docstring."""

    random_access = False

    def __init__(self, path: str, labels: Labels | None = None, max_member_bytes: int = DEFAULT_MAX_MEMBER) -> None:
        self.path = path
        self.max_member_bytes = max_member_bytes
        self.name = os.path.basename(path)
        self.layout = self._detect()
        self._flat: dict[str, str] | None = None
        self._own_wnid: str | None = None
        stem = _strip_suffix(self.name)
        if self.layout == FLAT and is_wnid(stem):
            self.layout, self._own_wnid = SYNSET, stem
        if self.layout == FLAT:
            if labels is None:
                raise SourceError(f"{path} holds images outside any synset folder or inner tar "
                                  "(like ILSVRC2012_img_val.tar); pass a labels file for it")
            self._flat = labels.assign(sorted(self._list_flat()), path)
        elif labels is not None:
            logger.info("labels file %s is not used for %s (%s)", labels.path, path, self.layout)
        extra = f", {len(self._flat):,} images" if self._flat is not None else ""
        self.description = f"{self.layout} {self.name} (one forward stream{extra})"

    def _detect(self) -> str:
        """The layout, from the first classifiable member (reads only the archive's head)."""
        try:
            with open(self.path, "rb") as f, _open_stream(decompressed(f)) as tf:
                for i, m in enumerate(tf):
                    kind = member_kind(m.name) if m.isfile() else None
                    if kind is not None:
                        return kind
                    if i >= _PEEK_MEMBERS:
                        break
        except _TAR_ERRORS as e:
            raise SourceError(f"cannot read {self.path} as a tar archive: {e}") from e
        raise SourceError(f"{self.path}: no inner tar or image file among its first {_PEEK_MEMBERS} members")

    def _list_flat(self) -> list[str]:
        names = []
        try:
            with tarfile.open(self.path, mode="r:*", tarinfo=_StrictTarInfo) as tf:
                for m in tf:
                    if m.isfile() and member_kind(m.name) == FLAT:
                        names.append(_clean(m.name))
        except _TAR_ERRORS as e:
            raise SourceError(f"cannot list {self.path}: {e}") from e
        return names

    def wnids(self) -> set[str] | None:
        if self._own_wnid is not None:
            return {self._own_wnid}
        return set(self._flat.values()) if self._flat is not None else None

    def count(self) -> int | None:
        return len(self._flat) if self._flat is not None else None

    def records(self) -> Iterator[SourceRecord]:
        last = "(start)"
        try:
            with open(self.path, "rb") as f, _open_stream(decompressed(f)) as outer:
                for m in outer:
                    kind = member_kind(m.name) if m.isfile() else None
                    if kind is None:
                        if m.isfile():
                            logger.debug("skipping member %s/%s", self.name, m.name)
                        continue
                    last = m.name
                    if kind == NESTED:
                        yield from self._inner(outer, m)
                        continue
                    name = _clean(m.name)
                    if kind == FOLDERS:
                        wnid = name.split("/")[-2]
                    elif self._own_wnid is not None:
                        wnid = self._own_wnid
                    elif self._flat is not None and name in self._flat:
                        wnid = self._flat[name]
                    else:
                        raise SourceError(f"{self.path}: image {m.name!r} is outside any synset folder or "
                                          f"inner tar, unlike the rest of this {self.layout}")
                    yield SourceRecord(source=f"{self.name}/{name}", wnid=wnid, key=key_from_source(name),
                                       data=_read_member(outer, m, self.max_member_bytes), size=m.size)
        except _TAR_ERRORS as e:
            raise SourceError(f"{self.path} is damaged after member {last!r}: {e}") from e

    def _inner(self, outer: tarfile.TarFile, member: tarfile.TarInfo) -> Iterator[SourceRecord]:
        name = _clean(member.name)
        wnid = check_wnid(_strip_suffix(name.rsplit("/", 1)[-1]), f"{self.path}: inner tar {member.name!r}")
        fileobj = outer.extractfile(member)
        if fileobj is None:  # not reached for a regular member; kept for the type checker
            raise tarfile.ReadError(f"member {member.name!r} is not a regular file")
        yield from synset_tar_records(fileobj, wnid, f"{self.name}/{name}", self.max_member_bytes)


class SynsetTarFolderSource:
    """A folder of ``nXXXXXXXX.tar`` files (the train tar unpacked one level), each read as a stream."""

    random_access = False

    def __init__(self, root: str, tar_names: list[str], max_member_bytes: int = DEFAULT_MAX_MEMBER) -> None:
        self.root = root
        self.max_member_bytes = max_member_bytes
        self._tars = {}
        for name in sorted(tar_names):
            self._tars[check_wnid(_strip_suffix(name), f"{root}: tar {name!r}")] = name
        self._label = source_label(root)
        self.description = f"folder of per-synset tars {self._label} ({len(self._tars):,} synsets, read as streams)"

    def wnids(self) -> set[str]:
        return set(self._tars)

    def count(self) -> None:
        return None

    def records(self) -> Iterator[SourceRecord]:
        for wnid, name in self._tars.items():
            path = os.path.join(self.root, name)
            try:
                fileobj = open(path, "rb")
            except OSError as e:
                logger.error("cannot open %s: %s", path, e)
                yield UnreadableRecord(source=f"{self._label}/{name}", wnid=wnid, key=wnid, error=str(e))
                continue
            with fileobj:
                yield from synset_tar_records(fileobj, wnid, f"{self._label}/{name}", self.max_member_bytes)


def synset_tar_records(fileobj: IO[bytes], wnid: str, tar_id: str,
                       max_member_bytes: int = DEFAULT_MAX_MEMBER) -> Iterator[SourceRecord]:
    """The images of one per-synset tar read as a stream from ``fileobj``; damage yields an UnreadableRecord.

    Images read before the damage are kept; the UnreadableRecord (source ``tar_id``) stands for the rest.
    A member larger than ``max_member_bytes`` is yielded unread (verify rejects it as ``too_large``).
    """
    done = 0
    try:
        with _open_stream(fileobj) as tf:
            for m in tf:
                if not m.isfile():
                    continue
                base = m.name.rsplit("/", 1)[-1]
                if not is_image_name(base):
                    logger.debug("skipping member %s/%s", tar_id, m.name)
                    continue
                data = _read_member(tf, m, max_member_bytes)
                done += 1
                yield SourceRecord(source=f"{tar_id}/{_clean(m.name)}", wnid=wnid, key=key_from_source(base),
                                   data=data, size=m.size)
    except _TAR_ERRORS as e:
        logger.error("tar %s is damaged after %d images: %s", tar_id, done, e)
        yield UnreadableRecord(source=tar_id, wnid=wnid, key=wnid,
                               error=f"damaged tar after {done} images: {e}")


def _read_member(tf: tarfile.TarFile, member: tarfile.TarInfo, max_bytes: int) -> bytes | None:
    """The member's bytes; None, unread, when it is larger than ``max_bytes`` (the stream skips it)."""
    if member.size > max_bytes:
        return None
    fileobj = tf.extractfile(member)
    if fileobj is None:
        raise tarfile.ReadError(f"member {member.name!r} is not a regular file")
    return fileobj.read()

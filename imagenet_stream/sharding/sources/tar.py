"""Tar archives as ImageNet ships them, indexed by their headers and then read by ranged reads.

* A tar of per-synset tars: ``ILSVRC2012_img_train.tar``, ``fall11_whole.tar`` (inner
  ``nXXXXXXXX.tar`` holding ``nXXXXXXXX_<n>.JPEG``). The wnid comes from the inner tar's name.
* A tar of synset folders (``train/nXXXXXXXX/*.JPEG``): the wnid is the image's parent folder.
* A flat tar of images (``ILSVRC2012_img_val.tar``) with a label file.
* One per-synset tar on its own (``n01440764.tar``): the wnid is the tar's name.
* A folder of per-synset tars (the train tar unpacked one level): :class:`SynsetTarFolderSource`.

**Uncompressed tars** (local, ``s3://``, ``https://``...) are *indexed*: one pass over the member
headers (inner tars included, seeking over image data; no image byte is copied) lists every image
as ``(tar, absolute byte offset, size)``; shard tasks later read exactly those ranges. Locally the
pass seeks; on object storage it reads in large blocks, and ``index_threads`` inner tars are indexed
at once. **Compressed tars** (``winter21_whole.tar.gz``, also bz2/xz) cannot be read at an offset,
so one streaming pass decompresses them and *stages* each inner tar, uncompressed, to the
``staging`` store (``--staging URL``, object storage is fine), indexing it on the way; other
layouts are staged as one decompressed tar. Staging costs one full decompression and storage of
about the dataset's size until the run is finalized; local scratch stays bounded either way.

A damaged inner tar does not stop the run: the images before the damage are listed, plus one
record that stands for the rest, which verify counts as ``unreadable_file`` with the reason.
Damage to the outer archive (which hides everything after it) is an error.
"""
from __future__ import annotations

import bz2
import gzip
import logging
import lzma
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, BinaryIO

from ...errors import ImageNetStreamError, SourceError
from ...shards import TarDamaged, TarMember, TarWalker
from ...shards.names import key_from_source
from ...storage import Store
from ..listing import DAMAGED, TAR, UNKNOWN_SIZE, ListingWriter
from ._common import ListingContext, check_wnid, is_hidden, is_image_name, is_wnid, source_label
from .labels import Labels

logger = logging.getLogger(__name__)

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_PEEK_MEMBERS = 100
_REMOTE_BLOCK = 1 << 20       # read size of the header pass over object storage
_IN_FLIGHT_PER_THREAD = 4
_COPY_CHUNK = 8 << 20
#: What a damaged compressed stream raises while being read.
_STREAM_ERRORS = (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile, OSError)

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


def _open_for_headers(store: Store, name: str) -> BinaryIO:
    if store.is_local:
        return open(store.path(name), "rb")
    return store.open(name, "rb", block_size=_REMOTE_BLOCK, cache_type="readahead")


def _inner_records(fileobj: BinaryIO, member: TarMember, where: str, seekable: bool = True
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


class TarSource:
    """One tar (optionally compressed) in any of the layouts of the module docstring."""

    def __init__(self, store: Store, name: str, labels: Labels | None = None) -> None:
        self.store = store
        self.name = name
        self.url = store.url_of(name)
        try:
            with store.open(name, "rb") as f:
                self.compression = compression_of(f.read(6))
        except FileNotFoundError:
            raise SourceError(f"source {self.url} does not exist") from None
        self.layout, self._own_wnid = self._detect()
        self._flat: dict[str, str] | None = None
        if self.layout == FLAT:
            if labels is None:
                raise SourceError(f"{self.url} holds images outside any synset folder or inner tar "
                                  "(like ILSVRC2012_img_val.tar); pass a labels file for it")
            self._labels = labels
        elif labels is not None:
            logger.info("labels file %s is not used for %s (%s)", labels.path, self.url, self.layout)
        how = f"staged from {self.compression}" if self.compression else "indexed, read by ranged reads"
        self.description = f"{self.layout} {self.name} ({how})"

    def _members(self) -> Iterator[TarMember]:
        """Members of the archive, for layout detection (compressed: decompressing the head only)."""
        with self.store.open(self.name, "rb") as raw:
            stream = decompressed(raw, self.compression) if self.compression else raw
            yield from TarWalker(stream, where=self.url, seekable=self.compression is None)

    def _detect(self) -> tuple[str, str | None]:
        """The layout, from the first classifiable member (reads only the archive's head)."""
        try:
            for i, m in enumerate(self._members()):
                kind = member_kind(m.name) if m.is_file else None
                if kind == FLAT and is_wnid(strip_suffix(self.name)):
                    return SYNSET, strip_suffix(self.name)
                if kind is not None:
                    return kind, None
                if i >= _PEEK_MEMBERS:
                    break
        except (TarDamaged, *_STREAM_ERRORS) as e:
            raise SourceError(f"cannot read {self.url} as a tar archive: {e}") from None
        raise SourceError(f"{self.url}: no inner tar or image file among its first {_PEEK_MEMBERS} members")

    # -- listing -----------------------------------------------------------------------------------
    def list_into(self, writer: ListingWriter, ctx: ListingContext) -> None:
        if self.compression:
            if ctx.staging is None:
                raise SourceError(f"{self.url} is compressed: it needs a staging location (--staging URL)")
            StagedTar(self, ctx.staging).list_into(writer, ctx)
            return
        self.index_into(writer, ctx, self.store, self.name, label=source_label(self.name))

    def index_into(self, writer: ListingWriter, ctx: ListingContext, store: Store, name: str, label: str) -> None:
        """One header pass over the uncompressed tar ``store/name``."""
        container = writer.container(_url(store, name), TAR, label)
        where = store.url_of(name)
        flat_names = self._flat_names(store, name) if self.layout == FLAT else None
        pending: deque[tuple[str, str, Future | tuple]] = deque()
        pool = ThreadPoolExecutor(ctx.index_threads) if ctx.index_threads > 1 and not store.is_local else None

        def drain(limit: int) -> None:
            while len(pending) > limit:
                wnid, inner_name, job = pending.popleft()
                records, damage = job.result() if isinstance(job, Future) else job
                for member_name, offset, size in records:
                    base = member_name.rsplit("/", 1)[-1]
                    writer.add(container, offset, size, wnid, f"{inner_name}/{member_name}", key_from_source(base))
                ctx.listed(len(records))
                if damage is not None:
                    writer.add(writer.container(damage, DAMAGED, label), 0, int(UNKNOWN_SIZE), wnid, inner_name,
                               key_from_source(inner_name))

        try:
            with _open_for_headers(store, name) as f:
                for m in TarWalker(f, where=where):
                    kind = member_kind(m.name) if m.is_file else None
                    if kind is None:
                        if m.is_file:
                            logger.debug("skipping member %s/%s", where, m.name)
                        continue
                    member_name = clean(m.name)
                    if kind == NESTED:
                        wnid = check_wnid(strip_suffix(member_name.rsplit("/", 1)[-1]),
                                          f"{where}: inner tar {m.name!r}")
                        inner_where = f"{where}/{member_name}"
                        if pool is not None:
                            job: Future | tuple = pool.submit(_index_remote_inner, store, name, m, inner_where)
                        else:
                            job = _inner_records(f, m, inner_where)
                        pending.append((wnid, member_name, job))
                        drain(ctx.index_threads * _IN_FLIGHT_PER_THREAD)
                        continue
                    drain(0)
                    wnid = self._wnid_of(member_name, kind, flat_names, where)
                    writer.add(container, m.offset, m.size, wnid, member_name,
                               key_from_source(member_name.rsplit("/", 1)[-1]))
                    ctx.listed(1)
                drain(0)
        except TarDamaged as exc:
            raise SourceError(f"{where} is damaged: {exc}") from None
        except (OSError, ImageNetStreamError) as exc:
            if isinstance(exc, SourceError):
                raise
            raise SourceError(f"cannot index {where}: {exc}") from None
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _wnid_of(self, member_name: str, kind: str, flat: dict[str, str] | None, where: str) -> str:
        if kind == FOLDERS:
            return member_name.split("/")[-2]
        if self._own_wnid is not None:
            return self._own_wnid
        if flat is not None and member_name in flat:
            return flat[member_name]
        raise SourceError(f"{where}: image {member_name!r} is outside any synset folder or inner tar, "
                          f"unlike the rest of this {self.layout}")

    def _flat_names(self, store: Store, name: str) -> dict[str, str]:
        names = []
        try:
            with _open_for_headers(store, name) as f:
                for m in TarWalker(f, where=store.url_of(name)):
                    if m.is_file and member_kind(m.name) == FLAT:
                        names.append(clean(m.name))
        except TarDamaged as e:
            raise SourceError(f"cannot list {store.url_of(name)}: {e}") from None
        return self._labels.assign(sorted(names), store.url_of(name))


def _url(store: Store, name: str) -> str:
    return f"{store.url}/{name}"


def _index_remote_inner(store: Store, name: str, member: TarMember, where: str) -> tuple[list, str | None]:
    with _open_for_headers(store, name) as f:
        return _inner_records(f, member, where)


class _Tee:
    """Reads from ``source`` and writes everything read to ``sink`` (a staged copy made on the way)."""

    def __init__(self, source: BinaryIO, sink: BinaryIO) -> None:
        self.source = source
        self.sink = sink

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n)
        if data:
            self.sink.write(data)
        return data

    def drain(self) -> None:
        while self.read(_COPY_CHUNK):
            pass


class StagedTar:
    """A compressed tar, read once as a stream: each inner tar is staged uncompressed and indexed."""

    def __init__(self, source: TarSource, staging: Store) -> None:
        self.source = source
        self.staging = staging
        self.stem = _safe_name(strip_suffix(source.name))

    def list_into(self, writer: ListingWriter, ctx: ListingContext) -> None:
        src = self.source
        label = source_label(src.name)
        if src.layout != NESTED:
            self._stage_whole(writer, ctx, label)
            return
        where = src.url
        staged_before = {n: size for n, size, is_dir in self.staging.entries(self.stem) if not is_dir}
        try:
            with src.store.open(src.name, "rb") as raw:
                outer = TarWalker(decompressed(raw, src.compression), where=where, seekable=False)
                for m in outer:
                    if not m.is_file or member_kind(m.name) != NESTED:
                        if m.is_file and member_kind(m.name) is not None:
                            raise SourceError(f"{where}: image {m.name!r} is outside any inner tar, unlike the "
                                              f"rest of this {src.layout}")
                        continue
                    member_name = clean(m.name)
                    inner = member_name.rsplit("/", 1)[-1]
                    wnid = check_wnid(strip_suffix(inner), f"{where}: inner tar {m.name!r}")
                    target = f"{self.stem}/{_safe_name(inner)}"
                    if staged_before.get(_safe_name(inner)) == m.size:  # a resumed run: staged already
                        records, damage = self._index_staged(target, m.size, f"{where}/{member_name}")
                    else:
                        records, damage = self._stage(outer, m, target, f"{where}/{member_name}")
                    container = writer.container(_url(self.staging, target), TAR, label)
                    for name, offset, size in records:
                        writer.add(container, offset, size, wnid, f"{member_name}/{name}",
                                   key_from_source(name.rsplit("/", 1)[-1]))
                    ctx.listed(len(records))
                    if damage is not None:
                        writer.add(writer.container(damage, DAMAGED, label), 0, int(UNKNOWN_SIZE), wnid,
                                   member_name, key_from_source(inner))
        except TarDamaged as exc:
            raise SourceError(f"{where} is damaged: {exc}") from None
        except _STREAM_ERRORS as exc:
            if isinstance(exc, ImageNetStreamError):
                raise
            raise SourceError(f"{where}: the {src.compression} stream is damaged: {exc}") from None

    def _stage(self, outer: TarWalker, member: TarMember, target: str, where: str) -> tuple[list, str | None]:
        """Copy ``member`` (an inner tar) to ``staging/target`` while indexing its headers on the way."""
        with self.staging.open_atomic(target) as out:
            tee = _Tee(outer.data_reader(member), out)
            local = TarMember(member.name, 0, 0, member.size, member.kind)
            records, damage = _inner_records(tee, local, where, seekable=False)  # type: ignore[arg-type]
            tee.drain()
        return records, damage

    def _index_staged(self, target: str, size: int, where: str) -> tuple[list, str | None]:
        with _open_for_headers(self.staging, target) as f:
            return _inner_records(f, TarMember(target, 0, 0, size, "file"), where)

    def _stage_whole(self, writer: ListingWriter, ctx: ListingContext, label: str) -> None:
        """Decompress the whole archive to ``staging/<stem>.tar``, then index that like any tar."""
        src = self.source
        target = f"{self.stem}.tar"
        if not self.staging.exists(target):
            with src.store.open(src.name, "rb") as raw, self.staging.open_atomic(target) as out:
                stream = decompressed(raw, src.compression)
                while chunk := stream.read(_COPY_CHUNK):
                    out.write(chunk)
        src.index_into(writer, ctx, self.staging, target, label)


def _safe_name(name: str) -> str:
    """A staging object name from an archive member's name (never a path: no folders, no dots first)."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name.rsplit("/", 1)[-1]).lstrip(".")
    return cleaned or "member"


class SynsetTarFolderSource:
    """A folder of ``nXXXXXXXX.tar`` files (the train tar unpacked one level), each indexed."""

    def __init__(self, store: Store, tar_names: list[str]) -> None:
        self.store = store
        self.label = source_label(store.url)
        self._tars: dict[str, str] = {}
        for name in sorted(tar_names):
            self._tars[check_wnid(strip_suffix(name), f"{store.display_url}: tar {name!r}")] = name
        self.description = f"folder of per-synset tars {self.label} ({len(self._tars):,} synsets, indexed)"

    def list_into(self, writer: ListingWriter, ctx: ListingContext) -> None:
        for wnid, name in self._tars.items():
            where = self.store.url_of(name)
            try:
                size = self.store.size(name)
                with _open_for_headers(self.store, name) as f:
                    records, damage = _inner_records(f, TarMember(name, 0, 0, size, "file"), where)
            except OSError as exc:
                records, damage = [], f"cannot read {where}: {exc}"
            container = writer.container(_url(self.store, name), TAR, self.label)
            for member_name, offset, msize in records:
                writer.add(container, offset, msize, wnid, f"{name}/{member_name}",
                           key_from_source(member_name.rsplit("/", 1)[-1]))
            ctx.listed(len(records))
            if damage is not None:
                writer.add(writer.container(damage, DAMAGED, self.label), 0, int(UNKNOWN_SIZE), wnid, name,
                           key_from_source(strip_suffix(name)))


__all__ = ["FLAT", "FOLDERS", "NESTED", "SYNSET", "StagedTar", "SynsetTarFolderSource", "TarSource",
           "compression_of", "decompressed", "is_tar_name", "member_kind", "strip_suffix"]

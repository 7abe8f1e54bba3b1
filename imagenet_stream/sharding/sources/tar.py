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

import logging
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from imagenet_stream.errors import ImageNetStreamError, SourceError
from imagenet_stream.format import TarDamaged, TarMember, TarWalker
from imagenet_stream.format.names import key_from_source
from imagenet_stream.sharding.listing import DAMAGED, TAR, UNKNOWN_SIZE, ListingWriter
from imagenet_stream.sharding.sources.labels import Labels
from imagenet_stream.sharding.sources.rules import ListingContext, check_wnid, is_wnid, source_label
from imagenet_stream.sharding.sources.staged_tar import StagedTar
from imagenet_stream.sharding.sources.tar_members import (
    FLAT,
    FOLDERS,
    NESTED,
    STREAM_ERRORS,
    SYNSET,
    clean,
    compression_of,
    decompressed,
    index_remote_inner,
    inner_records,
    member_kind,
    object_url,
    open_for_headers,
    strip_suffix,
)
from imagenet_stream.storage import Store

logger = logging.getLogger(__name__)

_PEEK_MEMBERS = 100
_IN_FLIGHT_PER_THREAD = 4

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
        except (TarDamaged, *STREAM_ERRORS) as e:
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
        container = writer.container(object_url(store, name), TAR, label)
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
            with open_for_headers(store, name) as f:
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
                            job: Future | tuple = pool.submit(index_remote_inner, store, name, m, inner_where)
                        else:
                            job = inner_records(f, m, inner_where)
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
            with open_for_headers(store, name) as f:
                for m in TarWalker(f, where=store.url_of(name)):
                    if m.is_file and member_kind(m.name) == FLAT:
                        names.append(clean(m.name))
        except TarDamaged as e:
            raise SourceError(f"cannot list {store.url_of(name)}: {e}") from None
        return self._labels.assign(sorted(names), store.url_of(name))


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
                with open_for_headers(self.store, name) as f:
                    records, damage = inner_records(f, TarMember(name, 0, 0, size, "file"), where)
            except OSError as exc:
                records, damage = [], f"cannot read {where}: {exc}"
            container = writer.container(object_url(self.store, name), TAR, self.label)
            for member_name, offset, msize in records:
                writer.add(container, offset, msize, wnid, f"{name}/{member_name}",
                           key_from_source(member_name.rsplit("/", 1)[-1]))
            ctx.listed(len(records))
            if damage is not None:
                writer.add(writer.container(damage, DAMAGED, self.label), 0, int(UNKNOWN_SIZE), wnid, name,
                           key_from_source(strip_suffix(name)))


__all__ = ["SynsetTarFolderSource", "TarSource"]

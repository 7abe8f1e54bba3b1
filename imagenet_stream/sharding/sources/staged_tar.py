"""Compressed tars (``winter21_whole.tar.gz``): read once as a stream, each inner tar staged
uncompressed to the staging store and indexed on the way (other layouts staged whole)."""
from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO

from imagenet_stream.errors import ImageNetStreamError, SourceError
from imagenet_stream.format import TarDamaged, TarMember, TarWalker
from imagenet_stream.format.names import key_from_source
from imagenet_stream.sharding.listing import DAMAGED, TAR, UNKNOWN_SIZE, ListingWriter
from imagenet_stream.sharding.sources.rules import ListingContext, check_wnid, source_label
from imagenet_stream.sharding.sources.tar_members import (
    COPY_CHUNK,
    NESTED,
    STREAM_ERRORS,
    clean,
    decompressed,
    inner_records,
    member_kind,
    object_url,
    open_for_headers,
    strip_suffix,
)
from imagenet_stream.storage import Store

if TYPE_CHECKING:
    from imagenet_stream.sharding.sources.tar import TarSource


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
        while self.read(COPY_CHUNK):
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
                    container = writer.container(object_url(self.staging, target), TAR, label)
                    for name, offset, size in records:
                        writer.add(container, offset, size, wnid, f"{member_name}/{name}",
                                   key_from_source(name.rsplit("/", 1)[-1]))
                    ctx.listed(len(records))
                    if damage is not None:
                        writer.add(writer.container(damage, DAMAGED, label), 0, int(UNKNOWN_SIZE), wnid,
                                   member_name, key_from_source(inner))
        except TarDamaged as exc:
            raise SourceError(f"{where} is damaged: {exc}") from None
        except STREAM_ERRORS as exc:
            if isinstance(exc, ImageNetStreamError):
                raise
            raise SourceError(f"{where}: the {src.compression} stream is damaged: {exc}") from None

    def _stage(self, outer: TarWalker, member: TarMember, target: str, where: str) -> tuple[list, str | None]:
        """Copy ``member`` (an inner tar) to ``staging/target`` while indexing its headers on the way."""
        with self.staging.open_atomic(target) as out:
            tee = _Tee(outer.data_reader(member), out)
            local = TarMember(member.name, 0, 0, member.size, member.kind)
            records, damage = inner_records(tee, local, where, seekable=False)  # type: ignore[arg-type]
            tee.drain()
        return records, damage

    def _index_staged(self, target: str, size: int, where: str) -> tuple[list, str | None]:
        with open_for_headers(self.staging, target) as f:
            return inner_records(f, TarMember(target, 0, 0, size, "file"), where)

    def _stage_whole(self, writer: ListingWriter, ctx: ListingContext, label: str) -> None:
        """Decompress the whole archive to ``staging/<stem>.tar``, then index that like any tar."""
        src = self.source
        target = f"{self.stem}.tar"
        if not self.staging.exists(target):
            with src.store.open(src.name, "rb") as raw, self.staging.open_atomic(target) as out:
                stream = decompressed(raw, src.compression)
                while chunk := stream.read(COPY_CHUNK):
                    out.write(chunk)
        src.index_into(writer, ctx, self.staging, target, label)


def _safe_name(name: str) -> str:
    """A staging object name from an archive member's name (never a path: no folders, no dots first)."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name.rsplit("/", 1)[-1]).lstrip(".")
    return cleaned or "member"


__all__ = ["StagedTar"]

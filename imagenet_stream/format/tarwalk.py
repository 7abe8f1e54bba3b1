"""The one tar walker: member headers and their byte offsets, from any file object, with bounded reads.

Everything in the project that reads tar structure goes through :class:`TarWalker`: the sharder's
index pass over source tars (outer and inner, by seeking over image data), ``inspect --verify``
over our shards, and the streamer's index of foreign webdataset shards. It parses ustar, GNU
(``L`` long names, base-256 sizes) and PAX (``x`` path/size records) headers itself, so it knows
every member's header and data offset, and it is strict about damage: a header with a bad
checksum, or data cut short, raises :class:`TarDamaged` naming the byte offset, instead of
silently ending the archive as ``tarfile`` does for some damage.

Member names are returned as text and never used as file-system paths here; callers derive keys
from them (``names.split_member``) and never join them to a directory. Every read is bounded:
headers are 512 bytes, long-name and PAX records at most ``MAX_META_BYTES``, member data only
through :meth:`TarWalker.read_data` with a caller-given limit.
"""
from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from imagenet_stream.errors import ShardIntegrityError
from imagenet_stream.format.names import split_member

BLOCK = 512
MAX_META_BYTES = 1 << 20   # a GNU long name or a PAX header larger than this is damage
_SKIP_CHUNK = 1 << 20

FILE, DIRECTORY, LINK, OTHER = "file", "directory", "link", "other"
_FILE_TYPES = (b"0", b"\0", b"7")   # regular, old-style regular, contiguous
_LINK_TYPES = (b"1", b"2")          # hard link, symlink (never followed)


class TarDamaged(ShardIntegrityError):
    """A tar header is invalid, or the archive ends inside a header or a member's data."""


@dataclass(frozen=True)
class TarMember:
    """One archive member: its (untrusted) name, where its headers and data lie, and its kind."""

    name: str
    header_offset: int   # first header block of the member (its GNU/PAX extension headers included)
    offset: int          # first byte of its data
    size: int
    kind: str            # FILE, DIRECTORY, LINK or OTHER

    @property
    def end(self) -> int:
        """Offset just past the member's data padded to whole blocks (the next header)."""
        return self.offset + padded(self.size)

    @property
    def is_file(self) -> bool:
        return self.kind == FILE


def padded(size: int) -> int:
    """``size`` rounded up to whole 512-byte blocks."""
    return -(-size // BLOCK) * BLOCK


def _octal(field: bytes, what: str, at: int) -> int:
    """A numeric header field: octal text (NUL/space padded) or GNU base-256 (high bit set)."""
    if field and field[0] & 0x80:
        value = int.from_bytes(field[1:], "big") | ((field[0] & 0x3F) << (8 * (len(field) - 1)))
        if field[0] & 0x40:
            raise TarDamaged(f"negative {what} in the header at byte {at:,}")
        return value
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarDamaged(f"invalid {what} {field!r} in the header at byte {at:,}") from None


def _checksum_ok(block: bytes) -> bool:
    stored = block[148:156].split(b"\0", 1)[0].strip(b" ")
    try:
        want = int(stored, 8)
    except ValueError:
        return False
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    signed = unsigned - sum(256 for b in block[:148] + block[156:] if b > 127)
    return want in (unsigned, signed)


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax_records(data: bytes, at: int) -> dict[str, str]:
    """``length key=value\\n`` records of a PAX extended header."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarDamaged(f"invalid PAX record in the header at byte {at:,}") from None
        if length <= space - pos or pos + length > len(data):
            raise TarDamaged(f"invalid PAX record length in the header at byte {at:,}")
        key, _, value = data[space + 1:pos + length - 1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


class TarWalker:
    """Iterate the members of the tar in ``fileobj`` starting at byte ``start`` of it.

    ``base``: the absolute offset that ``start`` has in the enclosing object (an inner tar inside
    an outer one), so every offset reported is absolute there. ``seekable``: skip member data with
    ``seek`` (local files, fsspec files, in-memory bytes); otherwise read and discard it
    (compressed streams, pipes). ``end``: the absolute offset where this tar's bytes stop (the end
    of an inner tar, or the object's size; found by seeking when None and seekable); a member
    whose data would run past it is damage. ``require_end``: an archive that stops at a block
    boundary without its end-of-archive zero block is damage (sharder sources); otherwise it just
    ends (foreign shards, which some writers leave without one).

    Usage: ``for m in walker: data = walker.read_data(m, max_bytes)`` - data can only be read
    for the member just yielded, before the walker advances.
    """

    def __init__(self, fileobj: BinaryIO, *, where: str = "tar", start: int = 0, base: int | None = None,
                 seekable: bool = True, end: int | None = None, require_end: bool = True) -> None:
        self._f = fileobj
        self.where = where
        self._seekable = seekable
        self._require_end = require_end
        base = start if base is None else base
        self._shift = base - start          # absolute offset = file position + shift
        self._pos = base                    # absolute offset of the file object's position
        self._data_left = 0                 # bytes of the current member's padded data not yet consumed
        self._current: TarMember | None = None
        if seekable:
            if end is None:
                end = fileobj.seek(0, 2) + self._shift
            fileobj.seek(start)
        elif start:
            self._discard(start)
        self._end = end

    @property
    def position(self) -> int:
        """The absolute offset the walk has read up to (where the bytes ended, after damage)."""
        return self._pos

    # -- low-level reading -----------------------------------------------------------------
    def _read(self, n: int) -> bytes:
        if self._end is not None:
            n = max(0, min(n, self._end - self._pos))
        data = self._f.read(n) if n else b""
        self._pos += len(data)
        return data

    def _read_exact(self, n: int, what: str) -> bytes:
        chunks, want = [], n
        while want > 0:
            chunk = self._read(want)
            if not chunk:
                raise TarDamaged(f"{self.where}: archive ends inside {what} at byte {self._pos:,}")
            chunks.append(chunk)
            want -= len(chunk)
        return b"".join(chunks)

    def _discard(self, n: int) -> int:
        done = 0
        while done < n:
            got = len(self._read(min(n - done, _SKIP_CHUNK)))
            if not got:
                break
            done += got
        return done

    def _skip(self, n: int, what: str) -> None:
        """Move ``n`` bytes forward; TarDamaged when the tar's bytes end first."""
        if n <= 0:
            return
        target = self._pos + n
        if self._seekable and self._end is not None:
            if target > self._end:
                raise TarDamaged(f"{self.where}: archive ends inside {what} at byte {self._end:,}")
            self._f.seek(target - self._shift)
            self._pos = target
        elif self._discard(n) < n:
            raise TarDamaged(f"{self.where}: archive ends inside {what} at byte {self._pos:,}")

    # -- members ---------------------------------------------------------------------------
    def read_data(self, member: TarMember, max_bytes: int) -> bytes:
        """The data of ``member`` (the one just yielded); TarDamaged when it is cut short.

        Raises ValueError when ``member.size > max_bytes`` without reading any of it.
        """
        if member is not self._current or self._data_left != padded(member.size):
            raise ValueError(f"{self.where}: data of {member.name!r} is no longer available")
        if member.size > max_bytes:
            raise ValueError(f"{self.where}: member {member.name!r} has {member.size:,} bytes, "
                             f"more than the limit of {max_bytes:,}")
        data = self._read_exact(member.size, f"the data of {member.name!r}")
        self._data_left -= member.size
        return data

    def data_reader(self, member: TarMember) -> BinaryIO:
        """A reader of ``member``'s data (the one just yielded) in pieces, for copying it without
        holding it: ``read(n)`` returns at most ``n`` bytes and ``b""`` at its end; TarDamaged when
        the archive ends first."""
        if member is not self._current or self._data_left != padded(member.size):
            raise ValueError(f"{self.where}: data of {member.name!r} is no longer available")
        return _MemberReader(self, member)  # type: ignore[return-value]

    def __iter__(self) -> Iterator[TarMember]:
        long_name: str | None = None
        pax: dict[str, str] = {}
        ext_start: int | None = None
        while True:
            if self._data_left:
                self._skip_data()
            elif self._current is not None:
                self._current = None
            at = self._pos
            block = self._read(BLOCK)
            if not block:
                if self._require_end:
                    raise TarDamaged(f"{self.where}: archive ends without an end-of-archive block at byte {at:,}")
                return
            if len(block) < BLOCK:
                raise TarDamaged(f"{self.where}: archive ends inside a header at byte {at:,}")
            if block == bytes(BLOCK):
                return  # end of archive (the second zero block and the record padding are not read)
            if not _checksum_ok(block):
                raise TarDamaged(f"{self.where}: invalid header (bad checksum) at byte {at:,}")
            size = _octal(block[124:136], "size", at)
            kind_flag = block[156:157]
            header_offset = at if ext_start is None else ext_start
            if kind_flag in (b"L", b"x", b"g", b"K"):
                if size > MAX_META_BYTES:
                    raise TarDamaged(f"{self.where}: extension header of {size:,} bytes at byte {at:,}")
                data = self._read_exact(size, "an extension header")
                self._skip(padded(size) - size, "an extension header")
                ext_start = header_offset
                if kind_flag == b"L":
                    long_name = _text(data)
                elif kind_flag == b"x":
                    pax.update(_pax_records(data, at))
                continue
            name = _text(block[:100])
            if block[257:262] == b"ustar" and block[345:500].strip(b"\0"):
                name = _text(block[345:500]) + "/" + name
            if long_name is not None:
                name = long_name
            if "path" in pax:
                name = pax["path"]
            if "size" in pax:
                try:
                    size = int(pax["size"])
                except ValueError:
                    raise TarDamaged(f"{self.where}: invalid PAX size at byte {at:,}") from None
            if kind_flag in _FILE_TYPES:
                kind = FILE
            elif kind_flag == b"5":
                kind = DIRECTORY
            elif kind_flag in _LINK_TYPES:
                kind, size = LINK, 0 if kind_flag == b"2" else size
            else:
                kind = OTHER
            if kind in (DIRECTORY, LINK):
                size = 0 if kind == LINK else size
            member = TarMember(name=name, header_offset=header_offset, offset=self._pos, size=size, kind=kind)
            long_name, pax, ext_start = None, {}, None
            if self._seekable and self._end is not None and member.offset + size > self._end:
                raise TarDamaged(f"{self.where}: the data of {name!r} runs past the end of the archive "
                                 f"(byte {member.offset + size:,} of {self._end:,})")
            self._current = member
            self._data_left = padded(size)
            yield member

    def _skip_data(self) -> None:
        """Move past what is left of the current member's padded data (damage if it is cut short)."""
        left, self._data_left = self._data_left, 0
        name = self._current.name if self._current is not None else "?"
        self._skip(left, f"the data of {name!r}")


class _MemberReader(io.RawIOBase):
    """Reads one member's data through its walker, which then skips only the padding."""

    def __init__(self, walker: TarWalker, member: TarMember) -> None:
        self._walker = walker
        self._member = member
        self._left = member.size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        if n is None or n < 0 or n > self._left:
            n = self._left
        data = self._walker._read(n)
        if not data:
            raise TarDamaged(f"{self._walker.where}: archive ends inside the data of {self._member.name!r} "
                             f"at byte {self._walker._pos:,}")
        self._left -= len(data)
        self._walker._data_left -= len(data)
        return data

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def group_samples(members: Iterable[tuple[str, bytes]]) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Group consecutive members by key: ``("KEY", {"jpg": ..., "cls": ..., "msgpack": ...})``."""
    key: str | None = None
    group: dict[str, bytes] = {}
    for name, data in members:
        k, ext = split_member(name)
        if k != key and group:
            yield key, group  # type: ignore[misc]
            group = {}
        key = k
        group[ext] = data
    if group:
        yield key, group  # type: ignore[misc]


def iter_samples(data: bytes, where: str = "shard", max_member_bytes: int = 1 << 30
                 ) -> Iterator[tuple[str, dict[str, bytes]]]:
    """All samples (regular files grouped by key) of a whole shard held in memory."""
    walker = TarWalker(io.BytesIO(data), where=where, require_end=False)
    return group_samples((m.name, walker.read_data(m, max_member_bytes)) for m in walker if m.is_file)


__all__ = ["group_samples", "iter_samples", "BLOCK", "DIRECTORY", "FILE", "LINK", "OTHER", "MAX_META_BYTES", "TarDamaged", "TarMember",
           "TarWalker", "padded"]

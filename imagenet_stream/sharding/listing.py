"""The listing: every source image as a locator, compact enough for 14.2M of them in one process.

A source lists its images without reading them: each record is a *locator* (which container, at
which byte offset, how many bytes), a wnid, a key and a name. Containers are the few big things
records live in: a folder tree (each record is a file under it) or a tar object (each record is a
byte range of it, inner tars included, so a tar of per-synset tars is read by ranged reads and
never copied).

In memory a record costs five fixed-width numpy columns (36 bytes); its name and key live in a
text file on local disk, read back only for the records of the shard being dispatched. The whole
listing persists to the output's work area (:meth:`Listing.save`), so a run resumed on another
machine reuses it instead of scanning 1.3 TB of tar headers again.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import msgpack
import numpy as np

from ..errors import SourceError
from ..storage import Store
from .plan import key_hash

#: ``Container.kind``: a folder whose records are files (``url/name``), a tar whose records are ranges,
#: or the stand-in for images a damaged inner tar hid (its ``url`` is the damage; verify rejects it).
FOLDER, TAR, DAMAGED = "folder", "tar", "damaged"
#: A size the source could not tell without reading (a list row on remote storage); read with the cap.
UNKNOWN_SIZE = np.iinfo(np.uint64).max
_CHUNK = 1 << 16
_COLUMNS = {"container": np.uint32, "offset": np.uint64, "size": np.uint64, "wnid": np.uint32,
            "key_hash": np.uint64}
LISTING_VERSION = 1


@dataclass(frozen=True)
class Container:
    """Where records live: ``url`` (fsspec URL), ``kind`` (FOLDER or TAR), ``label`` (how sample
    metadata names it: the last path component the user gave, never an absolute path)."""

    url: str
    kind: str
    label: str


@dataclass(frozen=True)
class Record:
    """One listed record, as a shard task needs it."""

    container: int
    offset: int
    size: int          # UNKNOWN_SIZE when not known without reading
    wnid: str
    name: str          # path under a folder container, or the member path inside a tar
    key: str


class Listing:
    """The records of a run, columnar; ``text_path`` holds ``name\\0key`` per record, back to back."""

    def __init__(self, containers: Sequence[Container], wnids: Sequence[str], columns: dict[str, np.ndarray],
                 text_offsets: np.ndarray, text_path: str) -> None:
        self.containers = tuple(containers)
        self.wnids = tuple(wnids)
        self.columns = columns
        self.text_offsets = text_offsets     # uint64 [n + 1]
        self.text_path = text_path
        self._text = open(text_path, "rb")

    def __len__(self) -> int:
        return int(self.columns["offset"].shape[0])

    def close(self) -> None:
        self._text.close()

    def __getstate__(self) -> dict:  # never pickled across processes: tasks get Records
        raise TypeError("a Listing stays in the coordinating process")

    def text(self, i: int) -> tuple[str, str]:
        """``(name, key)`` of record ``i`` (one pread of the local text file)."""
        lo, hi = int(self.text_offsets[i]), int(self.text_offsets[i + 1])
        raw = os.pread(self._text.fileno(), hi - lo, lo).decode("utf-8", "surrogateescape")
        name, _, key = raw.partition("\0")
        return name, key

    def records(self, indices: np.ndarray) -> list[Record]:
        """The records at ``indices`` (in that order)."""
        cols = self.columns
        out = []
        for i in np.asarray(indices).tolist():
            name, key = self.text(i)
            out.append(Record(int(cols["container"][i]), int(cols["offset"][i]), int(cols["size"][i]),
                              self.wnids[int(cols["wnid"][i])], name, key))
        return out

    def digest(self) -> str:
        """sha256 of everything the plan depends on: containers, wnids, columns and texts."""
        h = hashlib.sha256()
        h.update(msgpack.packb([[c.url, c.kind, c.label] for c in self.containers], use_bin_type=True))
        h.update("\n".join(self.wnids).encode())
        for name in _COLUMNS:
            h.update(np.ascontiguousarray(self.columns[name]).tobytes())
        h.update(self.text_offsets.tobytes())
        with open(self.text_path, "rb") as f:
            while chunk := f.read(8 << 20):
                h.update(chunk)
        return h.hexdigest()

    # -- persistence in the output's work area -----------------------------------------------------
    def save(self, store: Store, prefix: str) -> None:
        """Write ``prefix.columns`` (msgpack) and ``prefix.text`` to ``store`` atomically."""
        with open(self.text_path, "rb") as f:
            store.put_file_atomic(f.name, f"{prefix}.text")
        doc = {"version": LISTING_VERSION, "containers": [[c.url, c.kind, c.label] for c in self.containers],
               "wnids": list(self.wnids), "text_offsets": self.text_offsets.astype("<u8").tobytes(),
               **{name: np.ascontiguousarray(self.columns[name]).astype(np.dtype(dtype).newbyteorder("<")).tobytes()
                  for name, dtype in _COLUMNS.items()}}
        store.write_atomic(f"{prefix}.columns", msgpack.packb(doc, use_bin_type=True))

    @classmethod
    def load(cls, store: Store, prefix: str, work_dir: str) -> Listing:
        """Read a saved listing back (its text file is copied into ``work_dir``)."""
        try:
            doc = msgpack.unpackb(store.read(f"{prefix}.columns"), raw=False)
            if doc.get("version") != LISTING_VERSION:
                raise SourceError(f"listing {store.url_of(prefix)} has version {doc.get('version')!r}")
            columns = {name: np.frombuffer(doc[name], dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)
                       for name, dtype in _COLUMNS.items()}
            offsets = np.frombuffer(doc["text_offsets"], dtype="<u8").astype(np.uint64)
            containers = [Container(*c) for c in doc["containers"]]
        except (KeyError, TypeError, ValueError, msgpack.UnpackException) as exc:
            raise SourceError(f"the saved listing {store.url_of(prefix)} is unreadable ({exc}); "
                              "re-run with --overwrite") from None
        fd, path = tempfile.mkstemp(prefix="listing-", suffix=".text", dir=work_dir)
        with os.fdopen(fd, "wb") as out, store.open(f"{prefix}.text", "rb") as src:
            while chunk := src.read(8 << 20):
                out.write(chunk)
        if os.path.getsize(path) != int(offsets[-1]) or any(len(c) != len(offsets) - 1 for c in columns.values()):
            raise SourceError(f"the saved listing {store.url_of(prefix)} is inconsistent; re-run with --overwrite")
        return cls(containers, doc["wnids"], columns, offsets, path)


class ListingWriter:
    """Accumulates records from sources into a :class:`Listing` (columns grow in chunks)."""

    def __init__(self, work_dir: str) -> None:
        fd, self._path = tempfile.mkstemp(prefix="listing-", suffix=".text", dir=work_dir)
        self._text = os.fdopen(fd, "wb")
        self._text_end = 0
        self.containers: list[Container] = []
        self._container_ids: dict[tuple[str, str], int] = {}
        self._wnids: list[str] = []
        self._wnid_ids: dict[str, int] = {}
        self._chunks: dict[str, list[np.ndarray]] = {name: [] for name in _COLUMNS}
        self._offset_chunks: list[np.ndarray] = []
        self._pending: dict[str, list[int]] = {name: [] for name in _COLUMNS}
        self._pending_ends: list[int] = []
        self.count = 0

    def container(self, url: str, kind: str, label: str) -> int:
        """The id of a container (added once)."""
        found = self._container_ids.get((url, kind))
        if found is None:
            found = self._container_ids[(url, kind)] = len(self.containers)
            self.containers.append(Container(url, kind, label))
        return found

    def add(self, container: int, offset: int, size: int, wnid: str, name: str, key: str) -> None:
        wnid_id = self._wnid_ids.get(wnid)
        if wnid_id is None:
            wnid_id = self._wnid_ids[wnid] = len(self._wnids)
            self._wnids.append(wnid)
        if "\0" in name or "\0" in key:
            raise SourceError(f"a record name or key holds a NUL character: {name!r}")
        text = f"{name}\0{key}".encode("utf-8", "surrogateescape")
        self._text.write(text)
        self._text_end += len(text)
        p = self._pending
        p["container"].append(container)
        p["offset"].append(offset)
        p["size"].append(size)
        p["wnid"].append(wnid_id)
        p["key_hash"].append(key_hash(key))
        self._pending_ends.append(self._text_end)
        self.count += 1
        if len(self._pending_ends) >= _CHUNK:
            self._flush()

    def _flush(self) -> None:
        for name, dtype in _COLUMNS.items():
            if self._pending[name]:
                self._chunks[name].append(np.asarray(self._pending[name], dtype=dtype))
                self._pending[name] = []
        if self._pending_ends:
            self._offset_chunks.append(np.asarray(self._pending_ends, dtype=np.uint64))
            self._pending_ends = []

    def finish(self) -> Listing:
        self._flush()
        self._text.close()
        columns = {name: (np.concatenate(chunks) if chunks else np.zeros(0, dtype=dtype))
                   for (name, dtype), chunks in zip(_COLUMNS.items(), self._chunks.values())}
        ends = np.concatenate(self._offset_chunks) if self._offset_chunks else np.zeros(0, np.uint64)
        offsets = np.concatenate([np.zeros(1, np.uint64), ends])
        self._chunks = {name: [] for name in _COLUMNS}
        self._offset_chunks = []
        return Listing(self.containers, self._wnids, columns, offsets, self._path)


def iter_chunks(n: int, size: int = _CHUNK) -> Iterator[tuple[int, int]]:
    """``[lo, hi)`` chunks covering ``range(n)``."""
    for lo in range(0, n, size):
        yield lo, min(lo + size, n)


__all__ = ["Container", "DAMAGED", "FOLDER", "TAR", "UNKNOWN_SIZE", "Listing", "ListingWriter", "Record", "iter_chunks"]

"""The listing: every source image as a locator, compact enough for 14.2M of them in one process.

A source lists its images without reading them: each record is a *locator* (which container, at
which byte offset, how many bytes), a wnid, a key and a name. Containers are the few big things
records live in: a folder tree (each record is a file under it) or a tar object (each record is a
byte range of it, inner tars included, so a tar of per-synset tars is read by ranged reads and
never copied).

Columns are appended to local files as records arrive (``work_dir``) and loaded once listed: in
memory a record costs 28 bytes (container u4, offset u8, size u4, wnid u4, text end u8); its 64-bit
key hash is read only while planning; its name and key stay in a text file on disk, read back only
for the records of a shard being dispatched. The listing persists column by column to the
output's work area (:meth:`Listing.save`), so a run resumed on another machine reuses it instead
of scanning 1.3 TB of tar headers again.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

import msgpack
import numpy as np

from imagenet_stream.errors import SourceError
from imagenet_stream.sharding.plan import key_hash
from imagenet_stream.storage import Store

#: ``Container.kind``: a folder whose records are files (``url/name``), a tar whose records are ranges,
#: the stand-in for images a damaged inner tar hid (its ``url`` is the damage; verify rejects it), or a
#: URL list whose records are web URLs to download (``name`` is the URL).
FOLDER, TAR, DAMAGED, URL = "folder", "tar", "damaged", "url"
#: A size the source could not tell without reading (a list row on remote storage); read with the cap.
UNKNOWN_SIZE = np.iinfo(np.uint32).max
_LARGEST_SIZE = UNKNOWN_SIZE - 1   # sizes above it are stored as it: far above any --max-image-bytes
_CHUNK = 1 << 16
#: In-memory columns (little-endian on disk); ``key_hash`` stays on disk until the plan reads it.
_COLUMNS = {"container": "<u4", "offset": "<u8", "size": "<u4", "wnid": "<u4", "text_end": "<u8"}
_KEY_HASH = "<u8"
LISTING_VERSION = 2


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
    name: str          # path under a folder container, the member path inside a tar, or a URL
    key: str
    extra: str = ""    # a URL list row's other columns (licence, author, ...), as a JSON object


class Listing:
    """The records of a run: columns in memory, key hashes and ``name\\0key`` texts in ``folder``."""

    def __init__(self, containers: Sequence[Container], wnids: Sequence[str], folder: str) -> None:
        self.containers = tuple(containers)
        self.wnids = tuple(wnids)
        self.folder = folder
        self.columns = {name: np.fromfile(self._path(name), dtype=dtype) for name, dtype in _COLUMNS.items()}
        n = len(self.columns["offset"])
        if any(len(c) != n for c in self.columns.values()) or os.path.getsize(self._path("key_hash")) != 8 * n:
            raise SourceError(f"the listing in {folder} is inconsistent (columns of different lengths)")
        if n and int(self.columns["text_end"][-1]) != os.path.getsize(self._path("text")):
            raise SourceError(f"the listing in {folder} is inconsistent (its text file has another length)")
        self._text = open(self._path("text"), "rb")

    def _path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def __len__(self) -> int:
        return int(self.columns["offset"].shape[0])

    def close(self) -> None:
        self._text.close()

    def __getstate__(self) -> dict:  # never pickled across processes: tasks get Records
        raise TypeError("a Listing stays in the coordinating process")

    def key_hashes(self) -> np.ndarray:
        """Every record's 64-bit key hash (read from disk: the caller holds it only while planning)."""
        return np.fromfile(self._path("key_hash"), dtype=_KEY_HASH)

    def text(self, i: int) -> tuple[str, str, str]:
        """``(name, key, extra)`` of record ``i`` (one pread of the local text file)."""
        ends = self.columns["text_end"]
        lo, hi = (int(ends[i - 1]) if i else 0), int(ends[i])
        raw = os.pread(self._text.fileno(), hi - lo, lo).decode("utf-8", "surrogateescape")
        name, _, rest = raw.partition("\0")
        key, _, extra = rest.partition("\0")
        return name, key, extra

    def records(self, indices: np.ndarray) -> list[Record]:
        """The records at ``indices`` (in that order)."""
        cols = self.columns
        out = []
        for i in np.asarray(indices).tolist():
            name, key, extra = self.text(i)
            out.append(Record(int(cols["container"][i]), int(cols["offset"][i]), int(cols["size"][i]),
                              self.wnids[int(cols["wnid"][i])], name, key, extra))
        return out

    def _meta(self) -> bytes:
        return msgpack.packb({"version": LISTING_VERSION, "records": len(self),
                              "containers": [[c.url, c.kind, c.label] for c in self.containers],
                              "wnids": list(self.wnids)}, use_bin_type=True)

    def digest(self) -> str:
        """sha256 of everything the plan depends on: containers, wnids, columns, key hashes and texts."""
        h = hashlib.sha256(self._meta())
        for name in (*_COLUMNS, "key_hash", "text"):
            with open(self._path(name), "rb") as f:
                while chunk := f.read(8 << 20):
                    h.update(chunk)
        return h.hexdigest()

    # -- persistence in the output's work area -----------------------------------------------------
    def save(self, store: Store, prefix: str) -> None:
        """Upload every file (streamed from disk), then ``prefix/meta``: its presence means complete."""
        for name in (*_COLUMNS, "key_hash", "text"):
            store.put_file_atomic(self._path(name), f"{prefix}/{name}")
        store.write_atomic(f"{prefix}/meta", self._meta())

    @classmethod
    def load(cls, store: Store, prefix: str, work_dir: str) -> Listing:
        """Download a saved listing into a new folder of ``work_dir`` and open it."""
        try:
            meta = msgpack.unpackb(store.read(f"{prefix}/meta"), raw=False)
            if meta.get("version") != LISTING_VERSION:
                raise SourceError(f"listing {store.url_of(prefix)} has version {meta.get('version')!r}")
            containers = [Container(*c) for c in meta["containers"]]
            wnids = list(meta["wnids"])
        except (KeyError, TypeError, ValueError, msgpack.UnpackException) as exc:
            raise SourceError(f"the saved listing {store.url_of(prefix)} is unreadable ({exc}); "
                              "re-run with --overwrite") from None
        folder = tempfile.mkdtemp(prefix="listing-", dir=work_dir)
        for name in (*_COLUMNS, "key_hash", "text"):
            with open(os.path.join(folder, name), "wb") as out, store.open(f"{prefix}/{name}", "rb") as src:
                while chunk := src.read(8 << 20):
                    out.write(chunk)
        listing = cls(containers, wnids, folder)
        if len(listing) != meta["records"]:
            raise SourceError(f"the saved listing {store.url_of(prefix)} is inconsistent; re-run with --overwrite")
        return listing


class ListingWriter:
    """Accumulates records from sources into a :class:`Listing` (columns appended to files in chunks)."""

    def __init__(self, work_dir: str) -> None:
        self.folder = tempfile.mkdtemp(prefix="listing-", dir=work_dir)
        self._files = {name: open(os.path.join(self.folder, name), "wb") for name in (*_COLUMNS, "key_hash", "text")}
        self._text_end = 0
        self.containers: list[Container] = []
        self._container_ids: dict[tuple[str, str], int] = {}
        self._wnids: list[str] = []
        self._wnid_ids: dict[str, int] = {}
        self._pending: dict[str, list[int]] = {name: [] for name in (*_COLUMNS, "key_hash")}
        self.count = 0

    def container(self, url: str, kind: str, label: str) -> int:
        """The id of a container (added once)."""
        found = self._container_ids.get((url, kind))
        if found is None:
            found = self._container_ids[(url, kind)] = len(self.containers)
            self.containers.append(Container(url, kind, label))
        return found

    def add(self, container: int, offset: int, size: int, wnid: str, name: str, key: str, extra: str = "") -> None:
        wnid_id = self._wnid_ids.get(wnid)
        if wnid_id is None:
            wnid_id = self._wnid_ids[wnid] = len(self._wnids)
            self._wnids.append(wnid)
        if "\0" in name or "\0" in key or "\0" in extra:
            raise SourceError(f"a record name, key or column holds a NUL character: {name!r}")
        text = (f"{name}\0{key}\0{extra}" if extra else f"{name}\0{key}").encode("utf-8", "surrogateescape")
        self._files["text"].write(text)
        self._text_end += len(text)
        p = self._pending
        p["container"].append(container)
        p["offset"].append(offset)
        p["size"].append(int(size) if size == UNKNOWN_SIZE else min(int(size), int(_LARGEST_SIZE)))
        p["wnid"].append(wnid_id)
        p["text_end"].append(self._text_end)
        p["key_hash"].append(key_hash(key))
        self.count += 1
        if len(p["offset"]) >= _CHUNK:
            self._flush()

    def _flush(self) -> None:
        for name, values in self._pending.items():
            if values:
                dtype = _KEY_HASH if name == "key_hash" else _COLUMNS[name]
                self._files[name].write(np.asarray(values, dtype=dtype).tobytes())
                self._pending[name] = []

    def finish(self) -> Listing:
        self._flush()
        for f in self._files.values():
            f.close()
        return Listing(self.containers, self._wnids, self.folder)


__all__ = ["Container", "DAMAGED", "FOLDER", "TAR", "UNKNOWN_SIZE", "URL", "Listing", "ListingWriter", "Record"]

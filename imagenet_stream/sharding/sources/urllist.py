"""URL lists: images to download, as ImageNet itself was published (an index of web URLs).

* ``fall11_urls.txt`` (and the winter21 / ILSVRC lists of the same shape): ``nXXXXXXXX_<n><TAB>url``
  per line; the key is the first field, the wnid its prefix.
* CSV / TSV (with a header) or JSONL with ``url``, ``wnid`` and optionally ``key`` (default: the
  URL's file name), plus any columns such as ``licence``, ``author``, ``source_page``: they go into
  each downloaded sample's metadata.
* Parquet with the same columns (``pip install 'imagenet-stream[parquet]'`` for pyarrow).

Listing reads the file once, in order, and never downloads: each row is a record of the ``url``
container whose name is the URL. Shard tasks download, verify and pack them
(:mod:`imagenet_stream.curation.download`). Rows are checked as they are read: a missing URL or a
wnid that is not one raises ``SourceError`` naming ``file:line``.
"""
from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator
from typing import Any

from imagenet_stream.errors import SourceError
from imagenet_stream.format.names import is_valid_key, key_from_source
from imagenet_stream.rows import jsonl_objects
from imagenet_stream.sharding.listing import UNKNOWN_SIZE, URL, ListingWriter
from imagenet_stream.sharding.sources.rules import ListingContext, check_wnid, source_label

_TXT_ROW = re.compile(r"^(n\d{8})_(\d+)\t(\S.*)$")
_TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".ndjson": None, ".parquet": None}
#: Extra columns kept per sample: their text is capped (a list is untrusted input).
MAX_EXTRA_CHARS = 1000
_RESERVED = {"url", "wnid", "key"}

_Row = tuple[str, str, str, str]  # key, wnid, url, extra (JSON or "")


def is_url_list(path: str) -> bool:
    """A local file that lists URLs: a ``.txt`` whose first row is ``nXXXXXXXX_<n><TAB>url``, or a
    table (CSV/TSV/JSONL/Parquet) with a ``url`` column."""
    suffix = os.path.splitext(path)[1].lower()
    if not os.path.isfile(path):
        return False
    try:
        if suffix == ".txt":
            with open(path, encoding="utf-8", errors="replace") as f:
                first = next((line for line in f if line.strip()), "")
            return bool(_TXT_ROW.match(first.rstrip("\r\n")))
        if suffix in (".csv", ".tsv"):
            with open(path, encoding="utf-8-sig", newline="") as f:
                header = next(csv.reader(f, delimiter=_TABLE_SUFFIXES[suffix]), [])
            return "url" in {h.strip().lower() for h in header}
        if suffix in (".jsonl", ".ndjson"):
            with open(path, encoding="utf-8") as f:
                first = next((line for line in f if line.strip()), "")
            return isinstance(obj := json.loads(first), dict) and "url" in obj
        if suffix == ".parquet":
            return "url" in _parquet_columns(path)
    except (OSError, ValueError):
        return False
    return False


class UrlListSource:
    """The rows of a local URL list, in file order."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.label = source_label(path)
        self.suffix = os.path.splitext(path)[1].lower()
        if next(self._rows(), None) is None:
            raise SourceError(f"URL list {path!r} has no rows")
        self.description = f"URL list {self.label}"

    def list_into(self, writer: ListingWriter, ctx: ListingContext) -> None:
        container = writer.container(f"urls:{self.label}", URL, self.label)
        n = 0
        for key, wnid, url, extra in self._rows():
            writer.add(container, 0, int(UNKNOWN_SIZE), wnid, url, key, extra)
            n += 1
            if n % 4096 == 0:
                ctx.listed(4096)
        ctx.listed(n % 4096)

    def _rows(self) -> Iterator[_Row]:
        try:
            if self.suffix == ".txt":
                yield from self._read_txt()
            elif self.suffix == ".parquet":
                yield from self._read_parquet()
            else:
                yield from self._read_table()
        except (OSError, UnicodeDecodeError) as exc:
            raise SourceError(f"cannot read URL list {self.path!r}: {exc}") from exc

    def _read_txt(self) -> Iterator[_Row]:
        with open(self.path, encoding="utf-8", errors="replace", newline="") as f:
            for lineno, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                match = _TXT_ROW.match(line)
                if match is None:
                    raise SourceError(f"{self.path}:{lineno}: expected nXXXXXXXX_<n><TAB>url, got {line[:80]!r}")
                wnid, number, url = match.groups()
                yield f"{wnid}_{number}", wnid, url.strip(), ""

    def _read_table(self) -> Iterator[_Row]:
        delimiter = _TABLE_SUFFIXES.get(self.suffix, ",")
        with open(self.path, encoding="utf-8-sig", newline="") as f:
            if delimiter is None:
                for where, obj in jsonl_objects(f, self.path, SourceError):
                    yield self._row(where, obj)
                return
            reader = csv.DictReader(f, delimiter=delimiter)
            if "url" not in {h.strip().lower() for h in reader.fieldnames or ()}:
                raise SourceError(f"{self.path}: expected a header with url and wnid columns, got {reader.fieldnames}")
            for row in reader:
                yield self._row(f"{self.path}:{reader.line_num}", {k.strip().lower(): v for k, v in row.items() if k})

    def _read_parquet(self) -> Iterator[_Row]:
        pq = _pyarrow_parquet()
        table = pq.ParquetFile(self.path)
        row_number = 0
        for batch in table.iter_batches(batch_size=8192):
            for obj in batch.to_pylist():
                row_number += 1
                yield self._row(f"{self.path}: row {row_number}", obj)

    def _row(self, where: str, obj: dict[str, Any]) -> _Row:
        url = str(obj.get("url") or "").strip()
        if not url:
            raise SourceError(f"{where}: missing url")
        wnid = str(obj.get("wnid") or "").strip()
        check_wnid(wnid, where)
        key = obj.get("key")
        if key in (None, ""):
            key = key_from_source(url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "image")
        elif not isinstance(key, str) or not is_valid_key(key):
            raise SourceError(f"{where}: key {key!r} must be 1-90 characters of [A-Za-z0-9_-]")
        extra = {k: str(v)[:MAX_EXTRA_CHARS] for k, v in obj.items() if k not in _RESERVED and v not in (None, "")}
        return str(key), wnid, url, json.dumps(extra, sort_keys=True) if extra else ""


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SourceError("reading a Parquet URL list needs pyarrow: pip install 'imagenet-stream[parquet]'") from None
    return pq


def _parquet_columns(path: str) -> set[str]:
    return {name.lower() for name in _pyarrow_parquet().ParquetFile(path).schema_arrow.names}


__all__ = ["MAX_EXTRA_CHARS", "UrlListSource", "is_url_list"]

"""A list of ``path,wnid`` rows: ``.csv`` / ``.tsv`` (header optional) or ``.jsonl``, read as a stream.

JSONL lines are objects with ``path`` and ``wnid`` and optionally ``key``; a CSV header may name the
columns ``path``, ``wnid`` and ``key`` in any order.

Relative paths resolve against the list file's folder; a path may also be absolute or a URL.
Samples' ``source`` metadata keeps each path as the list wrote it. Malformed rows raise SourceError
naming ``file:line``; a listed file that does not exist is not an error here: its record fails to
load and verify counts it as ``unreadable_file``.
"""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from typing import IO

from imagenet_stream.errors import SourceError
from imagenet_stream.format.names import is_valid_key, key_from_source
from imagenet_stream.sharding.listing import FOLDER, UNKNOWN_SIZE, ListingWriter
from imagenet_stream.sharding.sources.rules import ListingContext, check_wnid, is_wnid, source_label

LIST_SUFFIXES = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".ndjson": None}

_Row = tuple[str, str, str]  # path as written, wnid, key


def is_list_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in LIST_SUFFIXES


class ListSource:
    """The rows of a local list file, in file order."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._base = os.path.dirname(os.path.abspath(path))
        self._delimiter = LIST_SUFFIXES.get(os.path.splitext(path)[1].lower(), ",")
        first = next(self._rows(), None)  # validates the header and the first row
        if first is None:
            raise SourceError(f"list file {path!r} has no rows")
        self.description = f"list {source_label(path)}"

    def _rows(self) -> Iterator[_Row]:
        try:
            with open(self.path, encoding="utf-8-sig", newline="") as f:
                yield from (self._read_jsonl(f) if self._delimiter is None else self._read_csv(f, self._delimiter))
        except (OSError, UnicodeDecodeError) as e:
            raise SourceError(f"cannot read list file {self.path!r}: {e}") from e

    def list_into(self, writer: ListingWriter, ctx: ListingContext) -> None:
        container = writer.container(self._base, FOLDER, "")
        n = 0
        for written, wnid, key in self._rows():
            writer.add(container, 0, self._size(written), wnid, written, key)
            n += 1
            if n % 4096 == 0:
                ctx.listed(4096)
        ctx.listed(n % 4096)

    def _size(self, written: str) -> int:
        if "://" in written:
            return int(UNKNOWN_SIZE)
        path = written if os.path.isabs(written) else os.path.join(self._base, written)
        try:
            return os.stat(path).st_size
        except OSError:
            return int(UNKNOWN_SIZE)  # read at verify time: unreadable_file, with the reason

    def _row(self, where: str, path: object, wnid: object, key: object) -> _Row:
        if not isinstance(path, str) or not path.strip():
            raise SourceError(f"{where}: missing or empty path")
        if not isinstance(wnid, str):
            raise SourceError(f"{where}: wnid must be a string, got {wnid!r}")
        path = path.strip()
        check_wnid(wnid.strip(), where)
        if key is None or key == "":
            key = key_from_source(path)
        elif not isinstance(key, str) or not is_valid_key(key):
            raise SourceError(f"{where}: key {key!r} must be 1-90 characters of [A-Za-z0-9_-]")
        return path, wnid.strip(), key

    def _read_csv(self, f: IO[str], delimiter: str) -> Iterator[_Row]:
        columns: dict[str, int] | None = None
        rows = 0
        reader = csv.reader(f, delimiter=delimiter)
        for fields in reader:
            where = f"{self.path}:{reader.line_num}"
            if all(not x.strip() for x in fields):
                continue  # blank line
            if columns is None and not rows and not (len(fields) >= 2 and is_wnid(fields[1].strip())):
                columns = {name.strip().lower(): i for i, name in enumerate(fields)}
                if "path" not in columns or "wnid" not in columns:
                    raise SourceError(f"{where}: expected a header naming the columns 'path' and 'wnid' (and "
                                      f"optionally 'key') or a 'path{delimiter}wnid' row with a valid wnid, "
                                      f"got {fields!r}")
                continue
            rows += 1
            if columns is None:
                if len(fields) != 2:
                    raise SourceError(f"{where}: expected 'path{delimiter}wnid', got {fields!r}")
                yield self._row(where, fields[0], fields[1], None)
            else:
                if len(fields) != len(columns):
                    raise SourceError(f"{where}: expected {len(columns)} columns like the header, "
                                      f"got {fields!r}")
                key = fields[columns["key"]].strip() if "key" in columns else None
                yield self._row(where, fields[columns["path"]], fields[columns["wnid"]], key)

    def _read_jsonl(self, f: IO[str]) -> Iterator[_Row]:
        for lineno, line in enumerate(f, 1):
            where = f"{self.path}:{lineno}"
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise SourceError(f"{where}: not valid JSON: {e}") from e
            if not isinstance(obj, dict):
                raise SourceError(f"{where}: expected an object with 'path' and 'wnid', "
                                  f"got {line.strip()[:80]!r}")
            yield self._row(where, obj.get("path"), obj.get("wnid"), obj.get("key"))

"""A list of ``path,wnid`` rows: ``.csv`` / ``.tsv`` (header optional) or ``.jsonl``.

JSONL lines are objects with ``path`` and ``wnid`` and optionally ``key``; a CSV header may name the
columns ``path``, ``wnid`` and ``key`` in any order.

Relative paths resolve against the list file's folder; samples' ``source`` metadata keeps each path
as the list wrote it. Malformed rows raise SourceError naming
``file:line``; a listed file that does not exist is not an error here: its record fails to load and
verify counts it as ``unreadable_file``.
"""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from typing import IO

from ...errors import SourceError
from ...shards.names import is_valid_key, key_from_source
from ..records import SourceRecord
from ._common import check_wnid, is_wnid, source_label

LIST_SUFFIXES = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".ndjson": None}

_Row = tuple[str, str, str, str]  # resolved path, path as written, wnid, key


def is_list_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in LIST_SUFFIXES


class ListSource:
    """The rows of a list file, in file order."""

    random_access = True

    def __init__(self, path: str) -> None:
        self.path = path
        self._base = os.path.dirname(os.path.abspath(path))
        delimiter = LIST_SUFFIXES.get(os.path.splitext(path)[1].lower(), ",")
        try:
            with open(path, encoding="utf-8-sig", newline="") as f:
                self._rows = self._read_jsonl(f) if delimiter is None else self._read_csv(f, delimiter)
        except (OSError, UnicodeDecodeError) as e:
            raise SourceError(f"cannot read list file {path!r}: {e}") from e
        if not self._rows:
            raise SourceError(f"list file {path!r} has no rows")
        self.description = f"list {source_label(path)} ({len(self._rows):,} images, {len(self.wnids()):,} synsets)"

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
        resolved = path if os.path.isabs(path) else os.path.normpath(os.path.join(self._base, path))
        return resolved, path, wnid.strip(), key

    def _read_csv(self, f: IO[str], delimiter: str) -> list[_Row]:
        rows: list[_Row] = []
        columns: dict[str, int] | None = None
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
            if columns is None:
                if len(fields) != 2:
                    raise SourceError(f"{where}: expected 'path{delimiter}wnid', got {fields!r}")
                rows.append(self._row(where, fields[0], fields[1], None))
            else:
                if len(fields) != len(columns):
                    raise SourceError(f"{where}: expected {len(columns)} columns like the header, "
                                      f"got {fields!r}")
                key = fields[columns["key"]].strip() if "key" in columns else None
                rows.append(self._row(where, fields[columns["path"]], fields[columns["wnid"]], key))
        return rows

    def _read_jsonl(self, f: IO[str]) -> list[_Row]:
        rows: list[_Row] = []
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
            rows.append(self._row(where, obj.get("path"), obj.get("wnid"), obj.get("key")))
        return rows

    def wnids(self) -> set[str]:
        return {wnid for _, _, wnid, _ in self._rows}

    def count(self) -> int:
        return len(self._rows)

    def records(self) -> Iterator[SourceRecord]:
        for path, written, wnid, key in self._rows:  # metadata keeps the path as the list wrote it
            yield SourceRecord(source=written, wnid=wnid, key=key, path=path)

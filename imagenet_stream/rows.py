"""Rows of the small text files users hand in (votes, URL lists, digest and URL lists): JSON lines,
and ``ENTRY[<TAB>REASON]`` lines, each error naming the file and line."""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any


def jsonl_objects(lines: Iterable[str], where: str, error: type[Exception]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where:line, object)`` of each non-blank JSON line; ``error`` for one that is not a JSON object."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        at = f"{where}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{at}: not valid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise error(f"{at}: expected a JSON object, got {line.strip()[:80]!r}")
        yield at, obj


def reasoned_entries(text: str, what: str, default_reason: str, reason_pattern: re.Pattern[str],
                     error: type[Exception]) -> Iterator[tuple[str, str, str]]:
    """``(where, entry, reason)`` of each ``ENTRY`` or ``ENTRY<TAB>REASON`` line (blank lines and ``#``
    comments skipped); ``error`` for a reason that does not match ``reason_pattern``."""
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry, _, reason = line.partition("\t")
        reason = reason.strip() or default_reason
        where = f"{what} line {number}"
        if not reason_pattern.match(reason):
            raise error(f"{where}: reason {reason!r} must be a word ({reason_pattern.pattern})")
        yield where, entry.strip(), reason


__all__ = ["jsonl_objects", "reasoned_entries"]

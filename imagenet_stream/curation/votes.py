"""Human-verification votes: keep an image only when most of its annotators said it shows its class.

ImageNet's labels were verified by several crowd workers per image; a release that carries their
votes lets a user choose how sure a label must be. ``shard --votes FILE`` reads one of:

* counts: a CSV/TSV/JSONL with columns ``key``, ``yes``, ``no`` (votes for and against);
* per-annotator rows: ``key``, ``annotator``, ``answer`` (``yes``/``no``, ``1``/``0``, ``true``/``false``);
  each annotator counts once per image (their first answer).

An image is kept only with a **strict majority of yes votes** (``yes > no``) and **at least
``min_votes`` votes** (default 3): with fewer, one careless or malicious answer decides; 3 is the
smallest count where a majority survives one bad vote. Images without a row have 0 votes, so they
are rejected as ``too_few_votes``; those outvoted as ``voted_out``. The decision needs only the key,
so a rejected image is never read (or downloaded). Kept images carry ``votes: [yes, no]`` in their
metadata.

The table is columnar (12 bytes per voted image: a 64-bit key hash and two counts), held by the
coordinating process only; each shard task receives its own records' votes.
"""
from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from imagenet_stream.errors import ConfigError
from imagenet_stream.rows import jsonl_objects

DEFAULT_MIN_VOTES = 3
TOO_FEW_VOTES, VOTED_OUT = "too_few_votes", "voted_out"
_YES = {"yes", "y", "1", "true", "t"}
_NO = {"no", "n", "0", "false", "f"}


def vote_key_hash(key: str) -> int:
    """A 64-bit hash of a sample key (how the table finds a key's votes)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")


@dataclass(frozen=True, eq=False)
class VoteTable:
    """Votes per key hash: ``hashes`` sorted, ``yes`` and ``no`` aligned with them."""

    hashes: np.ndarray     # uint64, sorted, unique
    yes: np.ndarray        # uint32
    no: np.ndarray         # uint32
    source: str = ""

    def __len__(self) -> int:
        return int(self.hashes.size)

    def lookup(self, keys: Iterable[str]) -> tuple[tuple[int, int], ...]:
        """``(yes, no)`` of each key, ``(0, 0)`` for keys without votes."""
        wanted = np.asarray([vote_key_hash(k) for k in keys], dtype=np.uint64)
        at = np.minimum(np.searchsorted(self.hashes, wanted), max(0, self.hashes.size - 1))
        found = self.hashes.size > 0
        hit = (self.hashes[at] == wanted) if found else np.zeros(wanted.size, dtype=bool)
        yes = np.where(hit, self.yes[at] if found else 0, 0)
        no = np.where(hit, self.no[at] if found else 0, 0)
        return tuple(zip(yes.tolist(), no.tolist()))

    def digest(self) -> str:
        """sha256 of the table (part of a sharding run's identity: other votes, other output)."""
        h = hashlib.sha256()
        for column in (self.hashes, self.yes, self.no):
            h.update(np.ascontiguousarray(column).tobytes())
        return h.hexdigest()


def verdict(yes: int, no: int, min_votes: int) -> str | None:
    """The reject reason of an image with these votes, or None when it is kept."""
    if yes + no < min_votes:
        return TOO_FEW_VOTES
    if yes <= no:
        return VOTED_OUT
    return None


def read_votes(path: str) -> VoteTable:
    """The votes of a CSV / TSV / JSONL file (module docstring); errors name ``file:line``."""
    hashes: list[int] = []
    annotators: list[int] = []
    yes: list[int] = []
    no: list[int] = []
    per_annotator = None
    try:
        for where, row in _rows(path):
            mode = "annotator" in row
            if per_annotator is None:
                per_annotator = mode
            elif per_annotator != mode:
                raise ConfigError(f"{where}: mixes per-annotator rows and vote counts")
            key = str(row.get("key") or "").strip()
            if not key:
                raise ConfigError(f"{where}: missing key")
            hashes.append(vote_key_hash(key))
            if per_annotator:
                answer = str(row.get("answer", "")).strip().lower()
                if answer not in _YES and answer not in _NO:
                    raise ConfigError(f"{where}: answer {row.get('answer')!r} is not yes/no, 1/0 or true/false")
                annotators.append(vote_key_hash(str(row.get("annotator", ""))))
                yes.append(int(answer in _YES))
                no.append(int(answer in _NO))
            else:
                y, n = _count(row.get("yes"), where, "yes"), _count(row.get("no"), where, "no")
                yes.append(y)
                no.append(n)
    except OSError as exc:
        raise ConfigError(f"cannot read the votes file {path}: {exc.strerror or exc}") from None
    keys = np.asarray(hashes, dtype=np.uint64)
    y_arr, n_arr = np.asarray(yes, dtype=np.int64), np.asarray(no, dtype=np.int64)
    if per_annotator:  # each (image, annotator) once: the first answer
        pairs = np.stack([keys, np.asarray(annotators, dtype=np.uint64)], axis=1)
        _, first = np.unique(pairs, axis=0, return_index=True)
        first.sort()
        keys, y_arr, n_arr = keys[first], y_arr[first], n_arr[first]
    unique, inverse = np.unique(keys, return_inverse=True)
    return VoteTable(unique, np.bincount(inverse, weights=y_arr, minlength=unique.size).astype(np.uint32),
                     np.bincount(inverse, weights=n_arr, minlength=unique.size).astype(np.uint32),
                     source=os.path.basename(path))


def _count(value: object, where: str, name: str) -> int:
    try:
        count = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{where}: {name} must be a count, got {value!r}") from None
    if count < 0:
        raise ConfigError(f"{where}: {name} must be >= 0, got {count}")
    return count


def _rows(path: str) -> Iterator[tuple[str, dict]]:
    """``(file:line, row dict)`` of a votes file."""
    suffix = os.path.splitext(path)[1].lower()
    with open(path, encoding="utf-8-sig", newline="") as f:
        if suffix in (".jsonl", ".ndjson"):
            yield from jsonl_objects(f, path, ConfigError)
            return
        reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
        fields = {name.strip().lower() for name in reader.fieldnames or ()}
        if "key" not in fields or not ({"yes", "no"} <= fields or {"annotator", "answer"} <= fields):
            raise ConfigError(f"{path}: expected a header with key,yes,no or key,annotator,answer, "
                              f"got {reader.fieldnames}")
        for row in reader:
            yield f"{path}:{reader.line_num}", {k.strip().lower(): v for k, v in row.items() if k}


__all__ = ["DEFAULT_MIN_VOTES", "TOO_FEW_VOTES", "VOTED_OUT", "VoteTable", "read_votes", "verdict",
           "vote_key_hash"]

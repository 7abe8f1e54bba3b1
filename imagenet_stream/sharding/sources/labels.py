"""Label files for flat image collections (the ILSVRC-2012 validation set).

Two forms are read:

* one wnid per line, in sorted file-name order (TFDS ``validation_labels.txt``);
* rows of ``filename,wnid`` (comma, tab or whitespace separated, header optional). The file name may
  carry a folder and an extension or not; rows match images by key (``ILSVRC2012_val_00000001``).
  The wnid is the first word of the second column, so Kaggle's ``LOC_val_solution.csv``
  (``ImageId,PredictionString``) works as is.

Numeric labels are refused: the devkit's ``ILSVRC2012_validation_ground_truth.txt`` holds
ILSVRC2012_IDs in meta.mat order, which is not sorted-wnid order, so guessing would mislabel.
"""
from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from imagenet_stream.errors import SourceError
from imagenet_stream.format.names import key_from_source
from imagenet_stream.sharding.sources.rules import check_wnid, is_wnid

logger = logging.getLogger(__name__)

_NUMERIC_HINT = (
    "labels must be wnids, not numbers. The devkit's ILSVRC2012_validation_ground_truth.txt holds "
    "ILSVRC2012_IDs in meta.mat order (not sorted-wnid order); convert each ID to its wnid with the "
    "devkit's data/meta.mat (synsets[ID-1].WNID) and pass one wnid per line, or use TFDS's "
    "validation_labels.txt")


@dataclass(frozen=True)
class Labels:
    """A parsed label file: either ``by_order`` (one wnid per sorted file name) or ``by_key``."""

    path: str
    by_order: tuple[str, ...] | None = None
    by_key: Mapping[str, str] | None = None

    def assign(self, names: Sequence[str], where: str) -> dict[str, str]:
        """Map each image name (or member path) of ``where`` to its wnid; SourceError when they do not match.

        ``names`` must already be in sorted order for the one-wnid-per-line form.
        """
        if self.by_order is not None:
            if len(self.by_order) != len(names):
                raise SourceError(
                    f"labels file {self.path} has {len(self.by_order):,} labels but {where} has "
                    f"{len(names):,} images; one wnid per line must match the images in sorted file-name "
                    "order")
            return dict(zip(names, self.by_order))
        assert self.by_key is not None  # invariant of read_labels
        out: dict[str, str] = {}
        missing: list[str] = []
        for name in names:
            wnid = self.by_key.get(key_from_source(name))
            if wnid is None:
                missing.append(name)
            else:
                out[name] = wnid
        if missing:
            shown = ", ".join(repr(m) for m in missing[:5])
            raise SourceError(f"labels file {self.path} has no label for {len(missing):,} of the "
                              f"{len(names):,} images of {where}, e.g. {shown}")
        unused = len(self.by_key) - len(out)
        if unused > 0:
            logger.warning("labels file %s names %d images that %s does not hold", self.path, unused, where)
        return out


def _split(line: str) -> list[str]:
    if "," in line:
        return [f.strip() for f in next(csv.reader([line]))]
    if "\t" in line:
        return [f.strip() for f in line.split("\t")]
    return line.split()


def _wnid_of(token: str, where: str) -> str:
    if token.isdigit():
        raise SourceError(f"{where}: numeric label {token!r}: {_NUMERIC_HINT}")
    return check_wnid(token, where)


def read_labels(path: str) -> Labels:
    """Parse a label file (see the module docstring); SourceError naming file:line on anything malformed."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise SourceError(f"cannot read labels file {path!r}: {e}") from e
    rows = [(n, _split(s)) for n, s in ((n, line.strip()) for n, line in enumerate(lines, 1))
            if s and not s.startswith("#")]
    if not rows:
        raise SourceError(f"labels file {path!r} is empty")
    if len(rows[0][1]) == 1:
        return Labels(path, by_order=tuple(_one_per_line(path, rows)))
    return Labels(path, by_key=_by_name(path, rows))


def _one_per_line(path: str, rows: list[tuple[int, list[str]]]) -> list[str]:
    wnids = []
    for lineno, fields in rows:
        where = f"{path}:{lineno}"
        if len(fields) != 1:
            raise SourceError(f"{where}: expected one wnid per line (as on line {rows[0][0]}), "
                              f"got {fields!r}")
        wnids.append(_wnid_of(fields[0], where))
    return wnids


def _by_name(path: str, rows: list[tuple[int, list[str]]]) -> dict[str, str]:
    first_words = rows[0][1][1].split()
    if not first_words or not (is_wnid(first_words[0]) or first_words[0].isdigit()):
        rows = rows[1:]  # a header row, e.g. "filename,wnid" or Kaggle's "ImageId,PredictionString"
    out: dict[str, str] = {}
    for lineno, fields in rows:
        where = f"{path}:{lineno}"
        words = fields[1].split() if len(fields) >= 2 else []
        if not fields[0] or not words:
            raise SourceError(f"{where}: expected 'filename,wnid', got {fields!r}")
        wnid = _wnid_of(words[0], where)
        key = key_from_source(fields[0])
        if out.setdefault(key, wnid) != wnid:
            raise SourceError(f"{where}: {fields[0]!r} is labelled {wnid} here and {out[key]} on an "
                              "earlier line")
    if not out:
        raise SourceError(f"labels file {path!r} has a header but no rows")
    return out

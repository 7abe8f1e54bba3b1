"""Class spaces: the ordered wnid lists that define what a ``.cls`` index means.

Standard spaces (all shipped as package data, see docs/HIERARCHY.md):

* ``in1k``  — ILSVRC-2012's 1,000 classes in the standard order (sorted wnids): index 0 = n01440764
  (tench), 850 = n04399382 (teddy bear).
* ``in21k`` — fall11's 21,841 synsets, sorted. n04399382 (teddy bear) is NOT among them, so sharding
  ILSVRC-2012 into ``in21k`` would reject its teddy-bear images as ``unknown_class``; that is why
  :func:`choose_space` picks ``in1k`` (or ``in22k``) for ILSVRC-2012.
* ``in22k`` — Microsoft's 21,842: the 1,000 ILSVRC classes first in ILSVRC order, then the rest of
  fall11 sorted, so ``in22k`` index ``i`` equals ``in1k`` index ``i`` for ``i < 1000``.

The class orders of pretrained heads (package data too, from timm's wheel, entry by entry as the
models use them; usable wherever a standard space is: ``classes=`` of the streamer, ``--classes`` of
the sharder, :meth:`Hierarchy.for_space`):

* ``in21k-p`` — ImageNet-21K-P (Ridnik et al. 2021, MIIL; timm's ``*_in21k_miil`` weights): the
  11,221 fall11 classes with at least 500 images, sorted. ``in21k-p-w21`` — the same recipe on
  winter21: 10,450 classes.
* ``in12k`` — timm's ImageNet-12k: 11,821 classes (its ``*.in12k`` heads).
* ``in21k-goog`` — Google's 21,843-entry order of BiT/ViT in21k checkpoints: fall11's 21,841 plus
  n03931044 (picture, image, icon) and n09859684 (bleacher), both WordNet 3.0 nouns outside fall11.
  They are real synsets, so the shipped graph holds them (and their ancestors) too: a dataset of
  fall11 images simply has no samples of those two classes, and their logits never get a target.
* ``imagenet-a`` / ``imagenet-r`` — the 200 classes of ImageNet-A and ImageNet-R, in in1k order
  (:func:`subset_indices` gives their positions in ``in1k`` to slice a 1,000-way head).

Custom spaces (id ``custom:<name>``) come from a text file, one wnid per line (:func:`load_space`).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from imagenet_stream.errors import SourceError
from imagenet_stream.format.manifest import wnids_sha256
from imagenet_stream.hierarchy.graph import load_graph

#: The pretrained heads' class orders shipped as named spaces (module docstring).
NAMED_SPACES = ("in21k-p", "in21k-p-w21", "in12k", "in21k-goog", "imagenet-a", "imagenet-r")
STANDARD_SPACES = ("in1k", "in21k", "in22k") + NAMED_SPACES
CUSTOM_PREFIX = "custom:"
_WNID_RE = re.compile(r"^n\d{8}$")


def is_wnid(value: object) -> bool:
    """True for a well-formed wnid: ``n`` followed by 8 digits."""
    return isinstance(value, str) and bool(_WNID_RE.match(value))


@dataclass(frozen=True)
class ClassSpace:
    """An ordered list of wnids: ``wnids[i]`` is class index ``i``.

    ``id`` is ``"in1k"``, ``"in21k"``, ``"in22k"`` or ``"custom:<name>"``. Wnids must be well formed
    and unique (SourceError otherwise); they need not be in the shipped WordNet graph.
    """

    id: str
    wnids: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)
    _sha256: str = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        custom = isinstance(self.id, str) and self.id.startswith(CUSTOM_PREFIX) and self.id != CUSTOM_PREFIX
        if not (custom or self.id in STANDARD_SPACES):
            raise SourceError(f"class space id must be one of {STANDARD_SPACES} or 'custom:<name>', "
                              f"got {self.id!r}")
        wnids = tuple(self.wnids)
        if not wnids:
            raise SourceError(f"class space {self.id!r} has no classes")
        index: dict[str, int] = {}
        for i, wnid in enumerate(wnids):
            if not is_wnid(wnid):
                raise SourceError(f"class space {self.id!r}: malformed wnid {wnid!r} at index {i}")
            if wnid in index:
                raise SourceError(f"class space {self.id!r}: duplicate wnid {wnid} "
                                  f"at indices {index[wnid]} and {i}")
            index[wnid] = i
        object.__setattr__(self, "wnids", wnids)
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_sha256", wnids_sha256(wnids))

    @classmethod
    def custom(cls, name: str, wnids: Iterable[str]) -> ClassSpace:
        """A custom space ``custom:<name>``."""
        return cls(CUSTOM_PREFIX + name, tuple(wnids))

    def index(self, wnid: str) -> int:
        """The class index of ``wnid``; KeyError naming it when it is not in this space."""
        try:
            return self._index[wnid]
        except (KeyError, TypeError):
            raise KeyError(f"{wnid!r} is not a class of space {self.id!r}") from None

    def __contains__(self, wnid: object) -> bool:
        try:
            return wnid in self._index
        except TypeError:
            return False

    def __len__(self) -> int:
        return len(self.wnids)

    @property
    def sha256(self) -> str:
        """``imagenet_stream.format.wnids_sha256(self.wnids)``, the checksum recorded in manifests."""
        return self._sha256

    @property
    def is_standard(self) -> bool:
        return self.id in STANDARD_SPACES

    def __repr__(self) -> str:  # the wnids would be 21k entries long
        return f"ClassSpace(id={self.id!r}, classes={len(self.wnids)}, sha256={self._sha256[:12]}...)"


@lru_cache(maxsize=None)
def standard_space(name: str) -> ClassSpace:
    """One of ``STANDARD_SPACES``; SourceError (a ValueError) for any other name."""
    if name not in STANDARD_SPACES:
        raise SourceError(f"unknown class space {name!r}; standard spaces are {', '.join(STANDARD_SPACES)}")
    graph = load_graph()
    if name in NAMED_SPACES:
        return ClassSpace(name, tuple(graph.node_wnids[i] for i in graph.named_spaces[name]))
    in1k = tuple(graph.node_wnids[i] for i in graph.in1k_nodes)
    if name == "in1k":
        return ClassSpace("in1k", in1k)
    in21k = tuple(graph.node_wnids[i] for i in graph.in21k_nodes)
    if name == "in21k":
        return ClassSpace("in21k", in21k)
    first = set(in1k)
    return ClassSpace("in22k", in1k + tuple(w for w in in21k if w not in first))


def load_space(spec: str | Path) -> ClassSpace:
    """A standard space by name, or a custom space read from a text file.

    The file holds one wnid per line (line order = class index); blank lines and ``#`` comments are
    ignored. Malformed or duplicate wnids raise SourceError naming the file and line. The space id is
    ``custom:<file stem>``.
    """
    if isinstance(spec, str) and spec in STANDARD_SPACES:
        return standard_space(spec)
    path = Path(spec)
    if not path.is_file():
        raise SourceError(f"class space {str(spec)!r} is neither a standard space "
                          f"({', '.join(STANDARD_SPACES)}) nor an existing file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read class list {path}: {exc}") from exc
    wnids: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        wnid = line.split("#", 1)[0].strip()
        if not wnid:
            continue
        if not is_wnid(wnid):
            raise SourceError(f"{path}:{number}: malformed wnid {wnid!r} (expected 'n' + 8 digits)")
        if wnid in first_line:
            raise SourceError(f"{path}:{number}: duplicate wnid {wnid} (first on line {first_line[wnid]})")
        first_line[wnid] = number
        wnids.append(wnid)
    if not wnids:
        raise SourceError(f"class list {path} holds no wnids")
    return ClassSpace(CUSTOM_PREFIX + path.stem, tuple(wnids))


def choose_space(wnids: Iterable[str]) -> ClassSpace:
    """The smallest standard space holding every given wnid that is in any standard space.

    Preference order: ``in1k``, ``in21k``, ``in22k``. Wnids in no standard space are ignored here (the
    sharder rejects their images as ``unknown_class``); with none left, ``in1k`` is returned. For
    ILSVRC-2012 this gives ``in1k``: ``in21k`` lacks n04399382 (teddy bear).
    """
    in22k = standard_space("in22k")
    known = {w for w in wnids if w in in22k}
    for name in ("in1k", "in21k"):
        space = standard_space(name)
        if all(w in space for w in known):
            return space
    return in22k  # in22k = in1k ∪ in21k holds them all


def subset_indices(src: ClassSpace | str, dst: ClassSpace | str) -> np.ndarray:
    """The index in ``src`` of each class of ``dst``, in ``dst``'s order: ``logits[:, subset_indices(
    "in1k", "imagenet-a")]`` turns 1,000-way logits into ImageNet-A's 200, whose argmax is then an
    ImageNet-A class index. SourceError naming the classes ``src`` lacks."""
    src_space = src if isinstance(src, ClassSpace) else load_space(src)
    dst_space = dst if isinstance(dst, ClassSpace) else load_space(dst)
    missing = [w for w in dst_space.wnids if w not in src_space]
    if missing:
        raise SourceError(f"{len(missing)} class(es) of {dst_space.id!r} are not in {src_space.id!r}, "
                          f"e.g. {', '.join(missing[:5])}")
    return np.array([src_space.index(w) for w in dst_space.wnids], dtype=np.int64)


def is_known_wnid(wnid: str) -> bool:
    """True when ``wnid`` is a node of the shipped WordNet 3.0 graph (a class or an ancestor of one)."""
    return wnid in load_graph()

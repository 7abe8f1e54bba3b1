"""Resolve ``classes=`` to a subset of a dataset's classes and the remap of targets onto it.

* ``None``: every class, targets unchanged.
* ``"in1k"`` / ``"in21k"`` / ``"in22k"``: that standard space in its standard order, so targets are
  the standard indices (``"in1k"`` gives ILSVRC-2012 indices 0..999 even over an in21k dataset).
  Classes of the space the dataset lacks stay in ``classes`` without samples (logged); none at all
  is an error.
* a single wnid: the *subtree* rooted there - every dataset class that is that node or under it in
  WordNet (``"n02084071"`` = all dogs), in dataset class order.
* a list of wnids: exactly those, in the given order; each must be a class of the dataset.
* a path to a text file of wnids (one per line): as a list.
* a :class:`~imagenet_stream.hierarchy.Hierarchy` or :class:`~imagenet_stream.hierarchy.ClassSpace`
  (e.g. ``Hierarchy.imagenet21k().restrict_subtree("n02084071")``): its classes, in its order.

Targets are remapped to ``0 .. len(classes) - 1``; samples of other classes are not streamed.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imagenet_stream.errors import ConfigError, SourceError
from imagenet_stream.hierarchy import (
    STANDARD_SPACES,
    ClassSpace,
    Hierarchy,
    load_graph,
    load_space,
    standard_space,
)
from imagenet_stream.hierarchy.spaces import is_wnid

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ClassSubset:
    """``wnids[t]`` is target ``t``; ``remap[c]`` is the target of dataset class ``c`` (-1: not selected)."""

    wnids: tuple[str, ...]
    remap: np.ndarray

    def select(self, labels: np.ndarray) -> np.ndarray:
        """In-shard indices (sorted) of the samples whose dataset class is selected."""
        labels = np.asarray(labels, dtype=np.int64)
        inside = (labels >= 0) & (labels < self.remap.size)
        keep = np.zeros(labels.shape, dtype=bool)
        keep[inside] = self.remap[labels[inside]] >= 0
        return np.flatnonzero(keep)


def resolve_classes(spec: object, dataset_wnids: Sequence[str] | None, strict: bool = True) -> ClassSubset | None:
    """The subset ``spec`` selects among ``dataset_wnids`` (class index order); None for all classes.

    ``strict``: an explicitly named class the dataset lacks is an error (else it just gets no
    samples, as in a mixture where each stream holds some of the target classes).
    """
    if spec is None:
        return None
    if dataset_wnids is None:
        raise ConfigError(f"classes={spec!r} needs a dataset with a manifest (its class names); "
                          "brace-URL shards have none")
    dataset = tuple(dataset_wnids)
    position = {w: i for i, w in enumerate(dataset)}
    if isinstance(spec, (Hierarchy, ClassSpace)):
        wnids = spec.classes if isinstance(spec, Hierarchy) else spec.wnids
        return _explicit(tuple(wnids), position, len(dataset), f"classes={spec!r}", strict)
    if isinstance(spec, str) and spec in STANDARD_SPACES:
        wnids = standard_space(spec).wnids
        missing = [w for w in wnids if w not in position]
        if len(missing) == len(wnids) and strict:
            raise ConfigError(f"classes={spec!r}: the dataset holds none of its {len(wnids)} classes")
        if missing and strict:
            log.warning("classes=%r: %d of its classes are not in the dataset (e.g. %s); their targets get no "
                        "samples", spec, len(missing), ", ".join(missing[:3]))
        return _subset(wnids, position, len(dataset))
    if isinstance(spec, str) and is_wnid(spec):
        return _subset(_subtree(spec, dataset), position, len(dataset))
    if isinstance(spec, (str, os.PathLike)):
        try:
            wnids = load_space(os.fspath(spec)).wnids
        except SourceError as exc:
            raise ConfigError(f"classes={spec!r} is not a standard space, a wnid or a class-list file: {exc}") from exc
        return _explicit(wnids, position, len(dataset), f"classes file {os.fspath(spec)!r}", strict)
    if isinstance(spec, Sequence):
        return _explicit(tuple(spec), position, len(dataset), "classes", strict)
    raise ConfigError(f"classes must be None, a space name, a wnid, a list of wnids or a file, got {spec!r}")


def resolve_space(spec: object) -> tuple[str, ...]:
    """The wnids of a declared class space: a standard space name, a wnid list, or a file of wnids."""
    if isinstance(spec, str) and spec in STANDARD_SPACES:
        return standard_space(spec).wnids
    if isinstance(spec, (str, os.PathLike)):
        try:
            return load_space(os.fspath(spec)).wnids
        except SourceError as exc:
            raise ConfigError(f"class space {spec!r} is not a standard space or a class-list file: {exc}") from None
    if isinstance(spec, (ClassSpace, Hierarchy)):
        return tuple(spec.wnids if isinstance(spec, ClassSpace) else spec.classes)
    if isinstance(spec, Sequence) and spec:
        wnids = tuple(spec)
        bad = [w for w in wnids if not isinstance(w, str) or not is_wnid(w)]
        if bad or len(set(wnids)) != len(wnids):
            raise ConfigError(f"class space: expected distinct wnids, got {(bad or list(wnids))[:5]}")
        return wnids
    raise ConfigError(f"class space must be a space name, a list of wnids or a file, got {spec!r}")


def _explicit(wnids: tuple, position: dict[str, int], num_classes: int, what: str, strict: bool = True) -> ClassSubset:
    if not wnids:
        raise ConfigError(f"{what}: empty list of classes")
    bad = [w for w in wnids if not is_wnid(w)]
    if bad:
        raise ConfigError(f"{what}: not wnids: {bad[:5]}")
    if len(set(wnids)) != len(wnids):
        dupes = sorted({w for w in wnids if wnids.count(w) > 1})
        raise ConfigError(f"{what}: duplicate wnids {dupes[:5]}")
    missing = [w for w in wnids if w not in position]
    if missing and strict:
        raise ConfigError(f"{what}: {len(missing)} wnid(s) are not classes of the dataset, e.g. {missing[:5]}")
    return _subset(wnids, position, num_classes)


def _subtree(root: str, dataset: tuple[str, ...]) -> tuple[str, ...]:
    if root not in load_graph():
        raise ConfigError(f"classes={root!r}: not a node of the shipped WordNet 3.0 graph")
    known = tuple(w for w in dataset if w in load_graph())
    if not known:
        raise ConfigError(f"classes={root!r}: none of the dataset's classes is in the WordNet graph")
    chosen = set(Hierarchy(ClassSpace.custom("dataset", known)).subtree(root))
    wnids = tuple(w for w in dataset if w in chosen)
    if not wnids:
        raise ConfigError(f"classes={root!r}: no class of the dataset is {root} or under it")
    return wnids


def _subset(wnids: tuple[str, ...], position: dict[str, int], num_classes: int) -> ClassSubset:
    remap = np.full(num_classes, -1, dtype=np.int64)
    for target, wnid in enumerate(wnids):
        if wnid in position:
            remap[position[wnid]] = target
    remap.flags.writeable = False
    return ClassSubset(wnids=tuple(wnids), remap=remap)


__all__ = ["ClassSubset", "resolve_classes", "resolve_space"]

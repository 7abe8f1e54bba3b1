"""What an :class:`~imagenet_stream.streaming.dataset.ImageNetStream` streams: one or more datasets,
their classes mapped into one target space, the eligible samples, and how an epoch draws from them.

Built once in the process that creates the dataset (it reads each source's ``labels.bin`` when a
class selection, a mixture of different class spaces or class balance needs it: one O(samples)
pass), then pickled into workers as compact per-shard arrays. Per epoch it yields a
:class:`~imagenet_stream.streaming.plan.SampleSet` in O(shards); a shard's drawn members are
computed only by the worker that reads it.

* **Target space.** ``classes`` (a standard space, a wnid list, a subtree, a file, a Hierarchy) is
  what targets index. Each source's own classes map into it by wnid; samples of classes outside
  it are not eligible. Without ``classes``, a single source keeps its own space; several sources
  must share one.
* **Mixtures.** Sources with weights ``w_k`` contribute ``w_k / sum(w)`` of the epoch each
  (``epoch_size`` samples, default: every eligible sample once, summed over sources).
* **Class balance.** ``sampling="balanced"`` gives every target class present the same expected
  count; :class:`ClassSampling` also takes per-class weights, or a ``cap`` / ``floor`` per class
  (``floor`` oversamples the tail with replacement). A sample's weight is its source's factor times
  its class's factor; each shard's count is apportioned from the sum of its samples' weights and
  its members drawn in proportion to them, so a class's expected count is its target (the
  per-shard rounding and the draw add about ``sqrt(count)`` of noise).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from imagenet_stream.errors import ConfigError
from imagenet_stream.streaming.classes import resolve_classes
from imagenet_stream.streaming.plan import SampleSet, Selection, drawn, eligible
from imagenet_stream.streaming.roots import Source
from imagenet_stream.streaming.sampling import ClassSampling


@dataclass(frozen=True)
class Stream:
    """One source of a mixture: a dataset root or shard URLs, its weight and its own options."""

    url: str
    weight: float = 1.0
    classes_in: Any = None                       # the class space of manifest-less shards
    storage_options: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url:
            raise ConfigError(f"a stream's url must be a non-empty string, got {self.url!r}")
        if not isinstance(self.weight, (int, float)) or isinstance(self.weight, bool) or not self.weight > 0:
            raise ConfigError(f"a stream's weight must be a number > 0, got {self.weight!r}")

    def __repr__(self) -> str:  # never shows storage options
        return f"Stream({self.url!r}, weight={self.weight})"


@dataclass(eq=False)
class Mixture:
    """The sources, the target classes, the eligible samples and the sampling of one dataset object."""

    sources: tuple[Source, ...]
    shard_offsets: np.ndarray                   # global shard id of each source's first shard, [K+1]
    remaps: tuple[np.ndarray | None, ...]       # per source: its class -> target (-1: not eligible)
    target_wnids: tuple[str, ...]
    selection: Selection
    epoch_total: int
    draws: bool                                 # False: every eligible sample once, in plan order
    source_factor: np.ndarray = field(default_factory=lambda: np.ones(1))
    class_factor: np.ndarray | None = None      # per target class
    shard_weights: np.ndarray | None = None     # per global shard: the sum of its samples' weights
    replacement: bool | None = None

    @property
    def num_shards(self) -> int:
        return int(self.shard_offsets[-1])

    def source_of(self, shard: int) -> int:
        if len(self.shard_offsets) == 2:  # one source (per sample: numpy's scalar search costs ~3 us)
            return 0
        return int(np.searchsorted(self.shard_offsets, shard, side="right") - 1)

    def target(self, shard: int, label: int) -> int:
        """The target class of a sample of global ``shard`` with the source's class ``label``."""
        remap = self.remaps[self.source_of(shard)]
        if remap is None:
            return int(label)
        return int(remap[label]) if 0 <= label < len(remap) else -1

    def sample_set(self, seed: int, epoch: int, labels_of: Callable[[int], np.ndarray]) -> SampleSet:
        """This epoch's multiset; ``labels_of(shard)`` gives a shard's source labels (its side index)."""
        if not self.draws:
            return eligible(self.selection)

        def member_weights(shard: int, members: np.ndarray) -> np.ndarray | None:
            k = self.source_of(shard)
            factor = float(self.source_factor[k])
            if self.class_factor is None:
                return None if len(self.sources) == 1 else np.full(len(members), factor)
            labels = np.asarray(labels_of(shard), dtype=np.int64)[members]
            remap = self.remaps[k]
            targets = labels if remap is None else remap[np.clip(labels, 0, len(remap) - 1)]
            valid = (targets >= 0) & (targets < len(self.class_factor)) & (labels >= 0)
            weights = np.where(valid, self.class_factor[np.where(valid, targets, 0)], 0.0) * factor
            # the side index disagrees with labels.bin for every member: draw them uniformly (each
            # is then counted as a label mismatch and substituted)
            return weights if weights.sum() > 0 else None

        weights = self.shard_weights if self.shard_weights is not None else self.selection.counts.astype(float)
        if self.replacement is not None:
            replace = bool(self.replacement)
        elif self.class_factor is not None:
            replace = True  # class balance draws classes past their size: duplicates are its point
        else:
            replace = None  # only in shards asked for more than they have (a source weighted past its size)
        return drawn(self.selection, weights, self.epoch_total, seed=seed, epoch=epoch, replace=replace,
                     member_weights=member_weights)


def build_mixture(sources: Sequence[Source], weights: Sequence[float] | None, classes: object,
                  sampling: ClassSampling | None, epoch_size: int | None, replacement: bool | None,
                  labels_of_source: Callable[[int], list[np.ndarray]],
                  excluded_of_source: Callable[[int], np.ndarray]) -> Mixture:
    """Resolve the target space, the eligible samples and the sampling (see the module docstring).

    ``labels_of_source(k)`` gives source ``k``'s labels per shard (its ``labels.bin``); called only
    when needed. ``excluded_of_source(k)`` its exclusion overlay (sorted global ids of that source).
    """
    if not sources:
        raise ConfigError("no dataset to stream")
    k_count = len(sources)
    if classes is None:
        first = sources[0].wnids
        if any(s.wnids != first for s in sources[1:]):
            raise ConfigError("the streams have different class spaces: declare the target space with classes= "
                              "(e.g. classes='in22k'), into which each stream's classes are mapped by wnid")
        target = tuple(first)
        subsets = [None] * k_count
    else:
        subsets = [resolve_classes(classes, s.wnids, strict=k_count == 1) for s in sources]
        target = tuple(subsets[0].wnids)
        if any(tuple(sub.wnids) != target for sub in subsets[1:]):
            raise ConfigError(f"classes={classes!r} selects different classes in each stream (a subtree does): "
                              "name the target space explicitly (a standard space, a wnid list or a file)")
    remaps = tuple(None if sub is None else sub.remap for sub in subsets)
    offsets = np.concatenate([[0], np.cumsum([len(s.shards) for s in sources])]).astype(np.int64)
    needs_labels = sampling is not None
    per_shard: list[np.ndarray | None] = []
    sizes: list[int] = []
    class_counts = np.zeros(len(target), dtype=np.int64)
    shard_targets: list[np.ndarray] = []  # per global shard: its eligible samples' target classes (O(samples))
    any_selection = False
    for k, source in enumerate(sources):
        excluded = excluded_of_source(k)
        remap = remaps[k]
        all_selected = remap is None or bool(np.all(remap >= 0))
        labels = labels_of_source(k) if (needs_labels or not all_selected) else None
        starts = np.concatenate([[0], np.cumsum(source.sample_counts)]).astype(np.int64)
        for s, size in enumerate(source.sample_counts):
            sizes.append(size)
            members = None
            if labels is not None and not all_selected:
                members = np.flatnonzero(remap[labels[s]] >= 0)
            lo, hi = np.searchsorted(excluded, starts[s:s + 2])
            if hi > lo:
                base = members if members is not None else np.arange(size)
                members = np.setdiff1d(base, excluded[lo:hi] - starts[s], assume_unique=True)
            any_selection = any_selection or members is not None
            per_shard.append(members)
            if needs_labels:
                chosen = labels[s] if members is None else labels[s][members]
                targets = chosen if remap is None else remap[chosen]
                targets = targets[targets >= 0].astype(np.int32)
                class_counts += np.bincount(targets, minlength=len(target))
                shard_targets.append(targets)
    if any_selection:
        selection = Selection.of(sizes, [p if p is not None else np.arange(n) for p, n in zip(per_shard, sizes)])
    else:
        selection = Selection.of(sizes)
    eligible_total = int(selection.counts.sum())
    source_eligible = np.array([selection.counts[offsets[k]:offsets[k + 1]].sum() for k in range(k_count)], float)
    mixing = k_count > 1 and weights is not None
    weights = np.asarray(list(weights) if weights is not None else source_eligible, dtype=np.float64)
    source_factor = np.divide(weights, source_eligible, out=np.zeros(k_count), where=source_eligible > 0)
    class_factor = None
    total = eligible_total if epoch_size is None else int(epoch_size)
    if sampling is not None:
        wanted = sampling.targets(class_counts)
        class_factor = np.divide(wanted, class_counts, out=np.zeros(len(target)), where=class_counts > 0)
        if epoch_size is None and (sampling.cap is not None or sampling.floor is not None):
            total = int(round(wanted.sum()))
    draws = sampling is not None or mixing or epoch_size is not None
    shard_weights = None
    if draws:
        shard_source = np.repeat(np.arange(k_count), np.diff(offsets))
        if class_factor is not None:
            per = np.array([float(class_factor[t].sum()) for t in shard_targets])
        else:
            per = selection.counts.astype(np.float64)
        shard_weights = per * (source_factor[shard_source] if k_count > 1 else 1.0)
    return Mixture(sources=tuple(sources), shard_offsets=offsets, remaps=remaps, target_wnids=target,
                   selection=selection, epoch_total=total, draws=draws,
                   source_factor=source_factor if k_count > 1 else np.ones(1), class_factor=class_factor,
                   shard_weights=shard_weights, replacement=replacement)


def normalize_streams(url: Any, streams: Any, weights: Any, classes_in: Any,
                      storage_options: Mapping[str, Any] | None) -> tuple[list[Stream], list[float] | None]:
    """``(streams, mixture weights or None)`` from the ways a dataset can be named."""
    if (url is None) == (streams is None):
        raise ConfigError("give the data as url=... or as streams=[Stream(...), ...], not both or neither")
    if streams is not None:
        if weights is not None:
            raise ConfigError("streams carry their own weights: Stream(url, weight=...)")
        out = [s if isinstance(s, Stream) else Stream(**dict(s)) for s in streams]
        if not out:
            raise ConfigError("streams is empty")
        out = [replace(s, classes_in=s.classes_in if s.classes_in is not None else classes_in,
                       storage_options=s.storage_options if s.storage_options is not None else storage_options)
               for s in out]
        return out, [s.weight for s in out] if len(out) > 1 else None
    urls = [url] if isinstance(url, (str, Stream)) else list(url)
    if not urls:
        raise ConfigError("url is an empty list")
    out = []
    for u in urls:
        if isinstance(u, Stream):
            out.append(u)
        elif isinstance(u, str) and u:
            out.append(Stream(u, classes_in=classes_in, storage_options=storage_options))
        else:
            raise ConfigError(f"url must be a non-empty string (or a list of them), got {u!r}")
    if weights is None:
        return out, None
    weights = list(weights)
    if len(weights) != len(out):
        raise ConfigError(f"{len(weights)} weights for {len(out)} datasets")
    return [replace(s, weight=float(w)) for s, w in zip(out, weights)], [float(w) for w in weights]


__all__ = ["Mixture", "Stream", "build_mixture", "normalize_streams"]

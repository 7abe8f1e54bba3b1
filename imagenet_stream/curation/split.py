"""Train / val splits as two versions over the same shards, and the ImageNet-21K-P recipe.

``split(dataset, out_train, out_val, holdout_per_class=K, min_class_images=N)``:

* a class is **kept** when it has at least ``max(N, K + 1)`` available samples (enough for K val
  images and at least one to train on); the others are dropped from both versions;
* the **val** version holds exactly K samples of every kept class: with ``select="first"`` the K
  smallest keys (ImageNet keys ``nXXXXXXXX_<n>`` in key order, as the recipe's "first 50 images"),
  with ``select="random"`` K drawn by a seeded hash of each key (so neither choice depends on how
  the images were sharded);
* the **train** version holds every other sample of the kept classes.

Train and val are disjoint and their union is the kept classes' samples. Each version is written
with :func:`~imagenet_stream.curation.versions.write_version` (nothing copied, the parent untouched)
and declares its own class space: the kept classes sorted by wnid, or a named space (such as
``in21k-p``) when they are exactly its classes, in its order. So ``ImageNetStream(train)`` yields
targets ``0 .. C-1`` of that space and ``Hierarchy.for_space(ds.classes)`` gives its semantic-softmax
levels. What a version does not hold is its exclusion overlay, stored as a bitmap when that is
smaller (1.8 MB at 14.2M samples). ``--recipe in21k-p`` is ``N=500, K=50, first`` (Ridnik et al.
2021: from fall11, 11,221 classes, 11,797,632 train / 561,052 val images; from winter21, 10,450
classes, 11,060,223 / 522,500).
"""
from __future__ import annotations

import bisect
import hashlib
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from imagenet_stream.curation.versions import new_version_store, open_parent, write_version
from imagenet_stream.errors import ConfigError
from imagenet_stream.format import ClassesInfo, Manifest
from imagenet_stream.hierarchy.spaces import NAMED_SPACES, standard_space
from imagenet_stream.streaming.roots import source_reader

log = logging.getLogger(__name__)

#: Named recipes: ``--recipe NAME`` -> (min_class_images, holdout_per_class, select).
RECIPES = {"in21k-p": (500, 50, "first")}
SELECT_MODES = ("first", "random")
DROPPED_REASON, HELD_OUT_REASON, TRAIN_REASON = "class_too_small", "held_out_for_val", "in_train"
_READERS = 16
_WINDOW = 64          # shards whose keys are read ahead at once
_SENTINEL = "\U0010ffff"  # ranks below it: any key or hex digest


@dataclass(frozen=True)
class SplitPlan:
    """What a split holds: the kept classes (parent class indices) and the val samples' global ids."""

    kept_classes: np.ndarray      # sorted parent class indices
    val_ids: np.ndarray           # sorted global ids
    train_ids: np.ndarray         # sorted global ids
    dropped_classes: int
    dropped_samples: int


@dataclass(frozen=True)
class Split:
    """The two versions written (None for a dry run) and the plan."""

    plan: SplitPlan
    train: Manifest | None
    val: Manifest | None


def _priority(key: str, seed: int) -> str:
    return hashlib.blake2b(f"{seed}\0{key}".encode(), digest_size=8).hexdigest()


def plan_split(labels: np.ndarray, available: np.ndarray, keys_of_shard, shard_starts: np.ndarray, *,
               holdout_per_class: int, min_class_images: int, select: str, seed: int,
               num_classes: int, progress: bool = False) -> SplitPlan:
    """The split of the samples ``available`` (bool per global id) with classes ``labels``.

    ``keys_of_shard(s)`` gives shard ``s``'s keys; only shards holding samples of kept classes are
    read, and only the K best candidates per class are kept in memory while they are.
    """
    counts = np.bincount(labels[available], minlength=num_classes)
    need = max(min_class_images, holdout_per_class + 1)
    kept = counts >= need
    chosen: dict[int, list[tuple[str, str, int]]] = {}  # class -> sorted [(rank, key, gid)] of at most K
    # a class's K-th best rank so far (the sentinel while it has fewer): only samples that beat it are
    # inserted, about K * ln(n / K) per class instead of every sample
    threshold = np.full(num_classes, _SENTINEL, dtype=object)
    eligible = available & kept[labels]
    shards = [s for s in range(len(shard_starts) - 1) if eligible[shard_starts[s]:shard_starts[s + 1]].any()]
    bar = tqdm(total=len(shards), desc="choosing val", unit="shard", disable=not progress)
    with ThreadPoolExecutor(_READERS) as pool:
        for window in range(0, len(shards), _WINDOW):  # a bounded number of shards' keys in memory
            batch = shards[window:window + _WINDOW]
            for s, keys in zip(batch, pool.map(keys_of_shard, batch)):
                start = int(shard_starts[s])
                rows = np.flatnonzero(eligible[start:int(shard_starts[s + 1])])
                names = np.asarray(keys, dtype=object)[rows]
                ranks = names if select == "first" else np.array([_priority(k, seed) for k in names], dtype=object)
                classes = labels[start + rows]
                for j in np.flatnonzero(ranks <= threshold[classes]).tolist():
                    c = int(classes[j])
                    bucket = chosen.setdefault(c, [])
                    bisect.insort(bucket, (ranks[j], names[j], start + int(rows[j])))
                    del bucket[holdout_per_class:]
                    if len(bucket) == holdout_per_class:
                        threshold[c] = bucket[-1][0]
                bar.update(1)
    bar.close()
    val = np.sort(np.array([gid for bucket in chosen.values() for _, _, gid in bucket], dtype=np.int64))
    train_mask = eligible.copy()
    train_mask[val] = False
    return SplitPlan(kept_classes=np.flatnonzero(kept), val_ids=val, train_ids=np.flatnonzero(train_mask),
                     dropped_classes=int(((counts > 0) & ~kept).sum()),
                     dropped_samples=int(counts[~kept].sum()))


def target_space(wnids: tuple[str, ...]) -> ClassesInfo:
    """A version's class space: a named space when the kept classes are exactly its classes (in its
    order), else ``custom:split`` of the kept classes sorted by wnid."""
    chosen = set(wnids)
    for name in NAMED_SPACES + ("in1k", "in21k"):
        space = standard_space(name)
        if len(space) == len(wnids) and set(space.wnids) == chosen:
            return ClassesInfo(name, space.wnids)
    return ClassesInfo("custom:split", tuple(sorted(wnids)))


def split(parent_url: str, out_train: str | None, out_val: str | None, *, holdout_per_class: int,
          min_class_images: int = 0, select: str = "first", seed: int = 0, dry_run: bool = False,
          storage_options: Mapping[str, object] | None = None, recipe: str | None = None,
          progress: bool = False) -> Split:
    """Plan the split of ``parent_url`` and, unless ``dry_run``, publish its two versions."""
    if select not in SELECT_MODES:
        raise ConfigError(f"select must be one of {SELECT_MODES}, got {select!r}")
    if holdout_per_class < 1 or min_class_images < 0:
        raise ConfigError(f"holdout_per_class must be >= 1 and min_class_images >= 0, got {holdout_per_class} "
                          f"and {min_class_images}")
    parent = open_parent(parent_url, storage_options)
    if not dry_run:
        if not out_train or not out_val:
            raise ConfigError("give both --out-train and --out-val (or --dry-run)")
        if out_train.rstrip("/") == out_val.rstrip("/"):
            raise ConfigError("--out-train and --out-val must be different folders")
        train_store = new_version_store(parent, out_train, storage_options)
        val_store = new_version_store(parent, out_val, storage_options)
    m = parent.manifest
    labels = parent.labels()
    available = np.ones(m.num_samples, dtype=bool)
    available[parent.excluded()] = False
    reader = source_reader(parent.source, parent.store)
    starts = np.concatenate([[0], np.cumsum(parent.source.sample_counts)]).astype(np.int64)
    plan = plan_split(labels, available, lambda s: reader.side_index(s).keys, starts,
                      holdout_per_class=holdout_per_class, min_class_images=min_class_images, select=select,
                      seed=seed, num_classes=m.classes.num_classes, progress=progress)
    if dry_run:
        return Split(plan, None, None)
    wnids = tuple(m.classes.wnids[i] for i in plan.kept_classes.tolist())
    targets = target_space(wnids)
    params = {"split": {"holdout_per_class": holdout_per_class, "min_class_images": min_class_images,
                        "select": select, "seed": seed, "recipe": recipe, "kept_classes": len(wnids),
                        "dropped_classes": plan.dropped_classes}}
    before = parent.excluded()
    parent_reasons = dict(m.exclusions.reasons) if m.exclusions else {}
    manifests = []
    parts = ((train_store, plan.train_ids, plan.val_ids, HELD_OUT_REASON, "train"),
             (val_store, plan.val_ids, plan.train_ids, TRAIN_REASON, "val"))
    for store, part, other, other_reason, name in parts:
        held = np.zeros(m.num_samples, dtype=bool)
        held[part] = True
        excluded = np.flatnonzero(~held).astype(np.int64)
        added = {DROPPED_REASON: plan.dropped_samples, other_reason: int(other.size)}
        assert excluded.size == before.size + sum(added.values()), "a split's parts and drops tile the dataset"
        reasons = {r: n for r, n in {**parent_reasons, **added}.items() if n}
        step = parent.step(excluded={r: n for r, n in added.items() if n}, **params, part=name)
        manifests.append(write_version(parent, store, excluded=excluded, reasons=reasons, labels=labels, step=step,
                                       version=f"{m.version}.{name}", targets=targets))
    log.info("split %s: %d classes kept, %d train / %d val samples", parent.store.display_url, len(wnids),
             plan.train_ids.size, plan.val_ids.size)
    return Split(plan, manifests[0], manifests[1])


__all__ = ["RECIPES", "SELECT_MODES", "Split", "SplitPlan", "plan_split", "split", "target_space"]

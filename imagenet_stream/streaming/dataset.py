"""``ImageNetStream``: an IterableDataset streaming ImageNet shards exactly once per epoch to every
(DDP rank x DataLoader worker), with deterministic shuffling, fast decoding and mid-epoch resumption.

Everything in ``__init__`` is cheap (one read of ``index.json``; ``labels.bin`` only for class
subsets). Where the iterator runs (rank, world size, worker) is detected in ``__iter__``, in the
process that iterates, and the epoch plan (:func:`imagenet_stream.streaming.plan.plan_epoch`) is
computed there; so one object works unchanged in DataLoader workers and under torchrun.

``set_epoch``, ``load_state_dict`` and ``stats`` reach DataLoader workers, also persistent ones,
through shared memory (:mod:`imagenet_stream.streaming.shared`).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from imagenet_stream.errors import ConfigError, PlanError
from imagenet_stream.shards.overlay import load_exclusions
from imagenet_stream.storage import Store
from imagenet_stream.streaming.cache import ShardCache
from imagenet_stream.streaming.classes import resolve_classes, resolve_space
from imagenet_stream.streaming.decode import build_transform
from imagenet_stream.streaming.plan import EpochPlan, World, locate, plan_epoch, resume_world
from imagenet_stream.streaming.plan.partition import rank_share
from imagenet_stream.streaming.reader import DEFAULT_MERGE_GAP, ShardReader
from imagenet_stream.streaming.shared import Counter, SharedState, slot_for_worker
from imagenet_stream.streaming.sources import (Source, brace_source, is_shard_url, manifest_source, read_labels,
                                               root_of)
from imagenet_stream.streaming.world import detect_rank_world, detect_world

log = logging.getLogger(__name__)

RESUME_FORMAT = "imagenet-stream/resume/1"      # state_dict(samples_seen=n): a rank's place in an epoch
ITERATOR_FORMAT = "imagenet-stream/iterator/1"  # state_dict(): this process's iterator (torchdata Stateful)
_CONFIG_KEYS = ("seed", "batch_size", "shuffle", "shuffle_window", "partial", "num_samples")

#: Per-process objects inherited from a parent process through fork, kept alive on purpose.
_INHERITED: list[object] = []

#: Errors of an undecodable image (PIL raises UnidentifiedImageError/OSError, SyntaxError for some PNGs).
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def _int_option(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


class ImageNetStream(IterableDataset):
    """Stream an imagenet-stream dataset (or brace-URL shards) as ``(uint8 CHW image, int target)``.

    Args:
        url: dataset root holding ``index.json`` on any fsspec URL (``/data/in1k``, ``s3://b/in1k``,
            ``https://host/in1k``), or a brace pattern ``.../shard-{000000..000099}.tar`` (see
            :mod:`imagenet_stream.streaming.sources` for the cost of a dataset without manifest).
        shuffle, seed: deterministic shuffling; the order depends only on ``(seed, epoch)`` and the
            world shape. Set the epoch with :meth:`set_epoch`.
        transform: ``"train"`` (RandomResizedCrop + flip), ``"eval"`` (resize + centre crop), None
            (the full decoded image, CHW uint8) or a callable taking a PIL image.
        size: output side of ``"train"`` / ``"eval"`` (default 224).
        batch_size: the DataLoader's batch size; the plan gives every worker whole batches in the
            order the DataLoader collects them, so resumption and equal batch counts are exact.
        return_keys: yield ``(image, target, key)``.
        classes: a subset (see :mod:`imagenet_stream.streaming.classes`); targets are remapped
            to ``0 .. len(ds.classes) - 1``.
        storage_options: fsspec options (credentials); never logged.
        cache_dir, cache_limit: local LRU cache of whole remote shards (bytes); local datasets
            bypass it.
        partial: ``"drop"`` (equal share per rank, at most ``world_size - 1`` samples dropped)
            or ``"pad"`` (repeat samples so none is dropped).
        shuffle_window: shards mixed at once per worker. A worker holds the compressed bytes of
            its current window (at most this many contiguous pieces of shards) plus ``prefetch``
            byte ranges fetched ahead: lower it, or shard smaller, to save memory.
        prefetch: byte ranges fetched ahead of decoding by each worker's background thread
            (default ``shuffle_window``: about one window ahead).
        merge_gap: bytes of unneeded samples a single request may read across to join two ranges.
        classes_in: for shards without a manifest (brace URLs, one ``.tar``), the class space of
            their ``.cls`` values: ``"in1k"`` / ``"in21k"`` / ``"in22k"``, a list of wnids or a
            file of them. Samples whose class lies outside it are skipped and counted; without it
            class indices are not range-checked.

    Notes:
        * Use the same ``batch_size`` in the DataLoader: the plan hands each worker whole batches in
          the order the DataLoader collects them (other sizes still stream every sample once, but
          batches mix workers and resumption is no longer exact).
        * ``len(ds)`` is the samples this rank yields this epoch (after a pending resume: the rest).
        * A corrupt image, or the part of a shard past a truncation, is skipped, counted in
          :meth:`stats` and logged once. A skipped sample makes its rank yield one sample less, so
          ranks may then differ by a batch at the end of an epoch.
        * :meth:`stats` sums the counters of the main process and of all DataLoader workers of this
          dataset object (one rank; gather across ranks yourself).
    """

    def __init__(self, url: str, *, shuffle: bool = True, seed: int = 0,
                 transform: str | Callable[..., Any] | None = "train", size: int = 224, batch_size: int = 1,
                 return_keys: bool = False, classes: str | os.PathLike[str] | Sequence[str] | None = None,
                 storage_options: Mapping[str, Any] | None = None, cache_dir: str | os.PathLike[str] | None = None,
                 cache_limit: int | None = None, partial: str = "drop", shuffle_window: int = 4,
                 prefetch: int | None = None, merge_gap: int = DEFAULT_MERGE_GAP,
                 classes_in: str | os.PathLike[str] | Sequence[str] | None = None) -> None:
        super().__init__()
        if not isinstance(url, str) or not url:
            raise ConfigError(f"url must be a non-empty string, got {url!r}")
        if partial not in ("drop", "pad"):
            raise ConfigError(f"partial must be 'drop' or 'pad', got {partial!r}")
        self.url = url
        self.shuffle = bool(shuffle)
        self.seed = _int_option("seed", seed, 0)
        self.batch_size = _int_option("batch_size", batch_size, 1)
        self.shuffle_window = _int_option("shuffle_window", shuffle_window, 1)
        self.prefetch = self.shuffle_window if prefetch is None else _int_option("prefetch", prefetch, 1)
        self.merge_gap = _int_option("merge_gap", merge_gap, 0)
        self.partial = partial
        self.return_keys = bool(return_keys)
        self._transform = build_transform(transform, size)
        self._storage_options = dict(storage_options or {})
        self._cache = ShardCache(cache_dir, cache_limit) if cache_dir is not None else None
        self._shared = SharedState()
        self._proc: tuple[int, Store, ShardReader, Counter] | None = None  # per process, never pickled
        self._iter_state: dict[str, Any] | None = None   # this process's current iterator (Stateful)
        self._pending_iter: dict[str, Any] | None = None  # from load_state_dict(iterator state)
        self._logged: set[str] = set()
        self._parent_world: tuple[int, int] | None = None  # (rank, world_size) of the pickling process

        if is_shard_url(url):
            declared = None if classes_in is None else resolve_space(classes_in)
            self._source: Source = brace_source(url, self._storage_options, declared)
        else:
            if classes_in is not None:
                raise ConfigError("classes_in declares the class space of manifest-less shards; "
                                  f"{url} is a dataset root whose index.json names its classes")
            self._source = manifest_source(Store(root_of(url), self._storage_options))
        for counter_name, n in self._source.skipped.items():
            self._shared.add(0, counter_name, n)
        full_counts = np.asarray(self._source.sample_counts, dtype=np.int64)
        self._full_starts = np.concatenate([[0], np.cumsum(full_counts)]).astype(np.int64)

        subset = resolve_classes(classes, self._source.wnids)
        excluded = (load_exclusions(self._store(), self._source.manifest) if self._source.manifest is not None
                    else np.zeros(0, dtype=np.int64))
        self._remap: np.ndarray | None = None if subset is None else subset.remap
        self._selected: np.ndarray | None = None  # selected-space id -> in-shard index
        if subset is None and excluded.size == 0:
            self._counts = [int(c) for c in full_counts]
        else:
            labels = self._shard_labels() if subset is not None else None
            per_shard = []
            for number, count in enumerate(full_counts.tolist()):
                keep = subset.select(labels[number]) if labels is not None else np.arange(count, dtype=np.int64)
                lo, hi = np.searchsorted(excluded, self._full_starts[number:number + 2])
                if hi > lo:  # the overlay: excluded samples are never planned, so every rank stays equal
                    keep = np.setdiff1d(keep, excluded[lo:hi] - self._full_starts[number], assume_unique=True)
                per_shard.append(keep)
            self._counts = [len(k) for k in per_shard]
            self._selected = np.concatenate(per_shard).astype(np.int64) if per_shard else np.zeros(0, np.int64)
        self.classes: list[str] | None
        if subset is None:
            self.classes = None if self._source.wnids is None else list(self._source.wnids)
        else:
            self.classes = list(subset.wnids)
        self.num_classes = len(self.classes) if self.classes is not None else self._source.num_classes


    @property
    def hierarchy(self) -> Any:
        """The WordNet hierarchy over ``ds.classes`` (target ``i`` is class ``i``), for
        :class:`~imagenet_stream.hierarchy.HierarchicalTargets`, losses and metrics."""
        from imagenet_stream.hierarchy import Hierarchy

        if self.classes is None:
            raise ConfigError("brace-URL shards have no class list; a hierarchy needs a manifest")
        return Hierarchy.for_classes(self.classes, name="dataset")

    # -- pickling into DataLoader workers -----------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_proc"] = None
        # Spawned and forkserver DataLoader workers do not inherit torch.distributed's process group:
        # the rank and world size this (parent) process sees travel with the pickled copy.
        state["_parent_world"] = self._rank_world()
        return state

    def _rank_world(self) -> tuple[int, int]:
        return detect_rank_world(inherited=self._parent_world)

    def __repr__(self) -> str:  # never shows storage options
        return (f"ImageNetStream({self.url!r}, samples={sum(self._counts)}, shards={len(self._counts)}, "
                f"batch_size={self.batch_size}, epoch={self.epoch})")

    # -- per-process objects -----------------------------------------------------------------------
    def _store(self) -> Store:
        return self._process(0)[1]

    def _process(self, slot: int) -> tuple[int, Store, ShardReader, Counter]:
        """Store, reader and counter row of this process (recreated after a fork or a pickle)."""
        if self._proc is not None and self._proc[0] != os.getpid():
            # Inherited through fork: never let it be garbage-collected here. Finalizing the parent's
            # fsspec filesystem in the child closes the parent's connections on the event-loop
            # (epoll) instance that fork shares, which silently stalls the parent's remote I/O.
            _INHERITED.append(self._proc)
            self._proc = None
        if self._proc is None or self._proc[3].slot != slot:
            store = Store(self._source.root, self._storage_options)
            counter = Counter(self._shared, slot)
            reader = ShardReader(store, self._source.shards, cache=self._cache, count=counter.add,
                                 side_indexes=self._source.side_indexes, merge_gap=self.merge_gap,
                                 prefetch=self.prefetch)
            self._proc = (os.getpid(), store, reader, counter)
        return self._proc

    def _shard_labels(self) -> list[np.ndarray]:
        """Every sample's dataset class, per shard: ``labels.bin``, else every side index (slower)."""
        store = self._store()
        if self._source.manifest is not None:
            labels = read_labels(store, self._source.manifest)
            if labels is not None:
                return labels
            log.info("%s has no labels.bin: reading %d side indexes to select classes",
                     self._source.root, len(self._source.shards))
        reader = self._process(0)[2]
        return [reader.side_index(i).labels.astype(np.int64) for i in range(len(self._source.shards))]

    # -- epochs, length, counters ------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self._shared.epoch

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` for the next iteration, in this process and in every DataLoader worker
        (persistent ones too). A pending resume of another epoch is dropped."""
        self._shared.set_epoch(_int_option("epoch", epoch, 0))

    def _plan(self, world: World, epoch: int) -> EpochPlan:
        return plan_epoch(self._counts, world, seed=self.seed, epoch=epoch, batch_size=self.batch_size,
                          shuffle=self.shuffle, shuffle_window=self.shuffle_window, partial=self.partial)

    def _rank_plan(self) -> EpochPlan:
        rank, world_size = self._rank_world()
        return self._plan(World(rank=rank, world_size=world_size), self.epoch)

    def __len__(self) -> int:
        """Samples this rank yields this epoch (the rest of it when a resume is pending)."""
        _, world_size = self._rank_world()
        rank_samples = rank_share(sum(self._counts), world_size, self.partial)
        return rank_samples - (self._shared.pending_resume(self.epoch) or 0)

    def stats(self) -> dict[str, int]:
        """Counters (see :data:`imagenet_stream.streaming.shared.COUNTERS`) summed over the main
        process and every DataLoader worker of this dataset object."""
        return self._shared.totals()

    # -- iteration ---------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        world = detect_world(inherited=self._parent_world)
        in_worker = get_worker_info() is not None
        slot = slot_for_worker(world.worker if in_worker else None)
        self._shared.note_num_workers(world.num_workers if in_worker else 0)
        epoch, plan_world, start, samples_seen = self._start_point(world, slot, in_worker)
        plan = self._plan(plan_world, epoch)
        if samples_seen is not None:  # a rank-level resume: where this worker's share continues
            start = plan.resume_offset(samples_seen)
        self._iter_state = {"epoch": epoch, "position": start, "rank": world.rank, "world_size": world.world_size,
                            "worker": world.worker, "num_workers": world.num_workers,
                            "plan_worker": plan_world.worker}
        return self._generate(plan, start, epoch, slot)

    def _start_point(self, world: World, slot: int, in_worker: bool) -> tuple[int, World, int, int | None]:
        """``(epoch, world to plan with, first position, rank samples_seen of a resume or None)``."""
        pending, self._pending_iter = self._pending_iter, None
        if pending is not None:  # torchdata StatefulDataLoader restored this worker's iterator
            for key in ("rank", "world_size", "worker", "num_workers"):
                if pending[key] != getattr(world, key):
                    raise PlanError(f"iterator state was saved with {key}={pending[key]}, "
                                    f"this iterator has {key}={getattr(world, key)}")
            plan_world = World(world.rank, world.world_size, int(pending["plan_worker"]), world.num_workers)
            return int(pending["epoch"]), plan_world, int(pending["position"]), None
        epoch = self._shared.epoch
        samples_seen = self._shared.take_resume(slot, epoch)
        if samples_seen is None:
            return epoch, world, 0, None
        saved = self._shared.resume_num_workers
        actual = world.num_workers if in_worker else 0
        if saved is not None and max(saved, 1) != max(actual, 1):
            raise PlanError(f"the resume state was saved with a DataLoader of num_workers={saved}, "
                            f"this one has num_workers={actual}: batches would differ")
        # A fresh DataLoader starts at worker 0, but the next rank batch is worker k % W's.
        return epoch, resume_world(world, samples_seen // self.batch_size), 0, samples_seen

    def _locate(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Planned ids -> ``(shard, in-shard index)``."""
        shards, pos = locate(ids, self._counts)
        if self._selected is None:
            return shards, pos
        return shards, self._selected[ids]

    def _generate(self, plan: EpochPlan, start: int, epoch: int, slot: int) -> Iterator[tuple[Any, ...]]:
        _, _, reader, counter = self._process(slot)
        windows = [self._locate(np.asarray(w)) for w in plan.windows(start)]
        state = self._iter_state
        assert state is not None
        for raw in reader.read(windows):
            state["position"] = start + raw.position + 1
            rng = np.random.default_rng([self.seed, epoch, int(self._full_starts[raw.shard]) + raw.index])
            try:
                image = self._transform(raw.data, rng)
            except DECODE_ERRORS as exc:
                counter.add("corrupt_images")
                if raw.key not in self._logged:
                    self._logged.add(raw.key)
                    log.warning("skipping corrupt image %s in shard %s: %s", raw.key,
                                self._source.shards[raw.shard].name, exc)
                continue
            target = raw.label if self._remap is None else int(self._remap[raw.label])
            if target < 0:  # labels.bin and the side index disagree: never hand a -1 to the loss
                counter.add("label_mismatches")
                log.warning("skipping %s in shard %s: its class %d is not among the selected ones (labels.bin "
                            "disagrees with the side index)", raw.key, self._source.shards[raw.shard].name,
                            raw.label)
                continue
            counter.add("samples_yielded")
            yield (image, target, raw.key) if self.return_keys else (image, target)
        state["position"] = len(plan.samples)

    # -- resumption ----------------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {"seed": self.seed, "batch_size": self.batch_size, "shuffle": self.shuffle,
                "shuffle_window": self.shuffle_window, "partial": self.partial, "num_samples": sum(self._counts)}

    def state_dict(self, samples_seen: int | None = None) -> dict[str, Any]:
        """A JSON-serializable resume state.

        ``state_dict(samples_seen=n)``: the rank has consumed ``n`` samples of the current epoch
        (whole batches, or the whole epoch); :meth:`load_state_dict` of it in a fresh dataset makes
        the next iteration yield exactly the rest of the epoch, with any DataLoader of the same
        ``num_workers`` and ``batch_size``.

        ``state_dict()``: the state of this process's iterator (torchdata's ``Stateful`` protocol,
        which ``StatefulDataLoader`` calls inside each worker).
        """
        if samples_seen is None:
            current = self._iter_state or {"epoch": self.epoch, "position": 0, "rank": None, "world_size": None,
                                           "worker": None, "num_workers": None, "plan_worker": None}
            return {"format": ITERATOR_FORMAT, **self._config(), **current}
        n = _int_option("samples_seen", samples_seen, 0)
        plan = self._rank_plan()
        plan.resume_offset(n)  # validates n: whole batches, at most the epoch (PlanError otherwise)
        return {"format": RESUME_FORMAT, **self._config(), "epoch": self.epoch, "samples_seen": n,
                "world_size": plan.world.world_size, "num_workers": self._shared.num_workers_seen}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict`; a rank state applies to the next pass over its epoch."""
        if not isinstance(state, Mapping) or state.get("format") not in (RESUME_FORMAT, ITERATOR_FORMAT):
            raise ConfigError(f"not an ImageNetStream state: {state!r:.200}")
        mine = self._config()
        for key in _CONFIG_KEYS:
            if state.get(key) != mine[key]:
                raise PlanError(f"cannot resume: the state has {key}={state.get(key)!r}, "
                                f"this dataset has {key}={mine[key]!r}")
        if state["format"] == ITERATOR_FORMAT:
            self._pending_iter = dict(state) if state.get("worker") is not None else None
            if self._pending_iter is None:
                self.set_epoch(int(state["epoch"]))
            return
        rank, world_size = self._rank_world()
        if state["world_size"] != world_size:
            raise PlanError(f"cannot resume: the state was saved with world_size={state['world_size']}, "
                            f"this process has world_size={world_size}")
        epoch = _int_option("epoch", state["epoch"], 0)
        n = _int_option("samples_seen", state["samples_seen"], 0)
        self._plan(World(rank=rank, world_size=world_size), epoch).resume_offset(n)  # validates n
        workers = state.get("num_workers")
        self._shared.set_resume(epoch, n, None if workers is None else int(workers))


__all__ = ["ImageNetStream", "RESUME_FORMAT", "ITERATOR_FORMAT", "DECODE_ERRORS"]

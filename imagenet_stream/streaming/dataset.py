"""``ImageNetStream``: an IterableDataset streaming one or more datasets to every (DDP rank x
DataLoader worker): each planned sample once per epoch, equal counts per rank whatever the data,
deterministic, and resumable in any world.

How an epoch is made (see :mod:`imagenet_stream.streaming.plan`):

1. the epoch's sample multiset (:mod:`.mixture`: class subsets, the exclusion overlay, mixtures,
   class balance) and its one global order, the same on every rank;
2. rank ``r`` of ``R`` takes batch ``t`` = order positions ``P + (t*R + r)*B + [0, B)``, DataLoader
   worker ``w`` of ``W`` the batches ``t ≡ w (mod W)``;
3. each batch is read with a few ranged requests, decoded, and any unusable sample replaced by a
   substitute (:mod:`.epoch_pass`), so every rank yields exactly ``len(ds)`` samples.

The resume state is the number of order positions the world has consumed: after ``k`` batches it
is ``P + k*R*B`` on every rank (DDP ranks advance in lockstep), so each rank computes it without
gathering, and it resumes the rest of the epoch in any world ``(R', W', B')``.

``__init__`` reads each source's ``index.json`` (plus ``labels.bin`` when classes are selected or
balanced, and the exclusion overlay); rank, world size and worker are detected in ``__iter__``, in
the process that iterates. ``set_epoch``, ``load_state_dict`` and ``stats`` reach DataLoader
workers, persistent ones too, through shared memory (:mod:`.shared_state`); per-process objects (stores,
reader, plans) live in a :class:`~.process_local.ProcessLocal`.
"""
from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from torch.utils.data import IterableDataset, get_worker_info

from imagenet_stream.errors import ConfigError, PlanError, StorageError
from imagenet_stream.format.overlay import load_exclusions
from imagenet_stream.retry import RetryPolicy
from imagenet_stream.storage import Store
from imagenet_stream.streaming.batch_output import BatchOutput
from imagenet_stream.streaming.cache import ShardCache
from imagenet_stream.streaming.decoding import jpeg_region
from imagenet_stream.streaming.decoding.presets import build_transform
from imagenet_stream.streaming.decoding.transforms import EvalTransform, TrainTransform
from imagenet_stream.streaming.epoch_pass import DECODE_ERRORS, EpochView, WorkerPass
from imagenet_stream.streaming.launch_env import detect_rank_world, detect_world
from imagenet_stream.streaming.loader_batch import default_prefetch, fetch_batch_size, planned_batch_size
from imagenet_stream.streaming.mixture import Mixture, Stream, build_mixture, normalize_streams
from imagenet_stream.streaming.options import DEFAULT_INDEX_DIR, StreamOptions, int_option
from imagenet_stream.streaming.plan import OrderSpec, RankPlan, World
from imagenet_stream.streaming.process_local import ProcessLocal
from imagenet_stream.streaming.reader import DEFAULT_INDEX_CACHE, DEFAULT_MERGE_GAP, ShardReader
from imagenet_stream.streaming.resume import (
    ITERATOR_FORMAT,
    RANK_FORMAT,
    check_config,
    dataset_fingerprint,
    merge_rank_states,
    rank_state,
)
from imagenet_stream.streaming.roots import declared_targets, labels_per_shard, require_ranged_reads
from imagenet_stream.streaming.sampling import ClassSampling
from imagenet_stream.streaming.shared_state import Counter, SharedState, slot_for_worker
from imagenet_stream.streaming.stream_source import open_stream
from imagenet_stream.urls import protocol_of

log = logging.getLogger(__name__)

_VIEWS_KEPT = 2


@dataclass
class _Here:
    """This process's objects (see :mod:`.process_local`)."""

    reader: ShardReader
    counter: Counter
    views: OrderedDict[int, EpochView] = field(default_factory=OrderedDict)
    current: dict[str, Any] | None = None   # the latest iterator's world and pass (its state)
    decoders: ThreadPoolExecutor | None = None  # decode_threads, started by the first pass that needs them


class ImageNetStream(IterableDataset):
    """Stream imagenet-stream datasets (or foreign webdataset shards) as ``(uint8 CHW image, int target)``.

    Args:
        url: a dataset root holding ``index.json`` on any fsspec URL (``/data/in1k``, ``s3://b/in1k``,
            ``https://host/in1k``); foreign webdataset shards by brace pattern
            (``https://host/imagenet1k-train-{0000..1023}.tar``) or one ``.tar``; or a list of these,
            streamed as one dataset (every sample once), or mixed by ``weights``.
        streams: instead of ``url``: :class:`~imagenet_stream.streaming.mixture.Stream` objects, each
            with its own weight, ``classes_in`` and storage options (a weighted mixture).
        weights: one weight per ``url`` of a list: each contributes ``weight / sum`` of the epoch.
        classes: the target space (``"in1k"``, ``"in22k"``, a wnid list, a file, a subtree, a
            Hierarchy): targets are ``0 .. len(ds.classes) - 1``; each source's classes are mapped
            into it by wnid, samples of other classes are not streamed. Needed to mix sources with
            different class spaces.
        classes_in: the class space of foreign shards' ``.cls`` values (``"in1k"``, ``"in21k"``,
            ``"in22k"``, a wnid list or a file). Values outside it are skipped and counted; without it
            the raw ``.cls`` values are the targets (below 65,536) and ``ds.classes`` is None.
        sampling: ``"balanced"`` (every target class equally often per epoch) or a
            :class:`~imagenet_stream.streaming.mixture.ClassSampling` (per-class weights, a cap or a
            floor per class).
        epoch_size: samples per epoch (default: every eligible sample once, or for a cap/floor the
            sum of the clipped class sizes); ``replacement``: draw with replacement (default: only
            where a source or class must give more samples than it has).
        shuffle, seed: the order depends only on ``(seed, epoch)``; set the epoch with :meth:`set_epoch`.
        transform: ``"train"`` (RandomResizedCrop + flip), ``"eval"`` (resize + centre crop), None
            (the full decoded image, CHW uint8) or a callable taking a PIL image. ``size``: the output
            side of the presets (224).
        batch_size: the DataLoader's batch size. Unset (None), the stream follows its DataLoader's
            (learned at the first fetch; 1 outside a DataLoader); set, a DataLoader with another is
            refused. Batches are planned whole, so resumption is exact and ranks yield equal batches.
        return_keys: yield ``(image, target, key)``.
        partial: ``"drop"`` (equal share per rank, fewer than ``world_size`` positions left out)
            or ``"pad"`` (positions past the end wrap to the epoch's start, so none is left out).
        shuffle_window: shards whose samples are mixed together in the global order (64).
        chunk: consecutive samples of a shard read together (16): a batch of ``B`` samples costs about
            ``B / chunk`` ranged requests. Smaller mixes more finely, at more requests.
        storage_options: fsspec options (credentials) for the URLs; never logged.
        retry: how transient storage errors (S3 ``SlowDown``, 5xx, 429, resets, timeouts) are retried:
            a :class:`~imagenet_stream.retry.RetryPolicy`; the default rides out minutes of them.
        cache_dir, cache_limit: a local LRU cache of whole remote shards (bytes); local data bypass it.
        index_dir: where foreign shards' indexes are kept (default ``$IMAGENET_STREAM_CACHE`` or
            ``~/.cache/imagenet-stream``); the first run builds one in a pass over the shards.
        prefetch: byte ranges fetched ahead of decoding by each worker (default: two batches' worth).
        merge_gap: bytes of unneeded samples one request may read across to join two ranges.
        index_cache_bytes: the side indexes a worker keeps (LRU, by their encoded size; 64 MB).
        decode_threads: decode and transform each batch on this many threads of the iterating process
            (the training process with ``num_workers=0``, or each DataLoader worker), the next batch
            while the current one is consumed; 0: on the iterating thread. Same samples, pixels and
            order either way.
        batched: yield whole batches ``(uint8 images [B, 3, size, size], int64 targets [B][, keys])``,
            the presets' images decoded straight into one batch tensor (shared memory in a DataLoader
            worker): no per-sample tensor, no collate copy. Read it with ``DataLoader(ds, batch_size=None)``;
            ``len(ds)`` then counts batches. Needs ``batch_size``. Same samples, pixels and order.

    Attributes:
        classes: the target wnids (None for foreign shards without ``classes_in``); ``num_classes``.
        terms: the dataset's terms of use from its ``index.json`` (``shard --terms``), None when it
            declares none; for several streams, ``{url: terms}``.

    Notes:
        * ``len(ds)`` is what this rank yields this epoch (after a loaded resume: the rest of it),
          exactly: unusable samples are replaced (see :mod:`imagenet_stream.streaming.epoch_pass`).
        * :meth:`stats` sums the counters of the main process and of all DataLoader workers of this
          dataset object (one rank; gather across ranks yourself).
    """

    def __init__(self, url: str | Sequence[str | Stream] | None = None, *,
                 streams: Sequence[Stream | Mapping[str, Any]] | None = None,
                 weights: Sequence[float] | None = None, shuffle: bool = True, seed: int = 0,
                 transform: str | Callable[..., Any] | None = "train", size: int = 224,
                 batch_size: int | None = None, return_keys: bool = False, classes: Any = None,
                 classes_in: Any = None, sampling: str | ClassSampling | None = None, epoch_size: int | None = None,
                 replacement: bool | None = None, storage_options: Mapping[str, Any] | None = None,
                 retry: RetryPolicy | None = None, cache_dir: str | os.PathLike[str] | None = None,
                 cache_limit: int | None = None, index_dir: str | os.PathLike[str] | None = None,
                 partial: str = "drop", shuffle_window: int = 64, chunk: int = 16, prefetch: int | None = None,
                 merge_gap: int = DEFAULT_MERGE_GAP, index_cache_bytes: int = DEFAULT_INDEX_CACHE,
                 decode_threads: int = 0, batched: bool = False) -> None:
        super().__init__()
        self.options = o = StreamOptions(
            shuffle=shuffle, seed=seed, transform=transform, size=size, batch_size=batch_size,
            return_keys=return_keys, classes=classes, classes_in=classes_in, sampling=sampling,
            epoch_size=epoch_size, replacement=replacement, storage_options=storage_options, retry=retry,
            cache_dir=cache_dir, cache_limit=cache_limit, index_dir=index_dir, partial=partial,
            shuffle_window=shuffle_window, chunk=chunk, prefetch=prefetch, merge_gap=merge_gap,
            index_cache_bytes=index_cache_bytes, decode_threads=decode_threads, batched=batched)
        self._transform = build_transform(o.transform, o.size)
        if isinstance(self._transform, (TrainTransform, EvalTransform)):
            jpeg_region.status()  # which decoder runs: resolved and logged here, once, not in every worker
        self._cache = ShardCache(o.cache_dir, o.cache_limit) if o.cache_dir is not None else None
        self._shared = SharedState()
        self._local: ProcessLocal[_Here] = ProcessLocal()
        self._pending_iter: dict[str, Any] | None = None   # from load_state_dict(iterator state)
        self._logged: set[str] = set()
        self._parent_world: tuple[int, int] | None = None  # (rank, world_size) of the pickling process

        self._streams, mix_weights = normalize_streams(url, streams, weights, o.classes_in, o.storage_options)
        self.url = self._streams[0].url if len(self._streams) == 1 else [s.url for s in self._streams]
        opened = [open_stream(s.url, s.storage_options, s.classes_in, o.index_dir, o.retry) for s in self._streams]
        sources = [source for source, _ in opened]
        for k, source in enumerate(sources):  # a server ignoring Range: one clear error now, not in a worker
            require_ranged_reads(Store(source.shards_root, self._options_for(source.shards_root, k),
                                       retry=o.retry), source)
        if o.classes is not None and not all(s.declared for s in sources):
            raise ConfigError("classes= selects classes by wnid, but these foreign shards' classes have no names: "
                              "declare the space of their .cls values with classes_in= (e.g. 'in1k')")
        self._mixture: Mixture = build_mixture(
            sources, mix_weights, o.classes if o.classes is not None else declared_targets(sources), o.sampling,
            o.epoch_size, o.replacement,
            labels_of_source=lambda k: labels_per_shard(sources[k], opened[k][1]),
            excluded_of_source=lambda k: load_exclusions(opened[k][1], sources[k].manifest))
        terms = [(s.manifest.extra.get("terms") if s.manifest is not None else None) for s in sources]
        self.terms: str | dict[str, str | None] | None = (
            terms[0] if len(terms) == 1 else {s.url: t for s, t in zip(self._streams, terms)})
        # Workers get the per-shard arrays, never a manifest (the shards are listed once, in _shards).
        self._mixture.sources = tuple(replace(s, manifest=None) for s in sources)
        for source in sources:
            for counter_name, n in source.skipped.items():
                self._shared.add(0, counter_name, n)
        self._shards = tuple(replace(info, data_store=2 * k, index_store=2 * k + 1)
                             for k, source in enumerate(sources) for info in source.shards)
        self._store_urls = tuple((url_, self._options_for(url_, k)) for k, source in enumerate(sources)
                                 for url_ in (source.shards_root, source.indexes_root))
        self.total = self._mixture.epoch_total if self._mixture.draws else int(self._mixture.selection.counts.sum())
        declared = all(s.declared for s in sources)
        self.classes: list[str] | None = list(self._mixture.target_wnids) if declared else None
        self.num_classes = len(self._mixture.target_wnids)
        self._config = {"seed": o.seed, "shuffle": o.shuffle, "shuffle_window": o.shuffle_window,
                        "chunk": o.chunk, "partial": o.partial, "epoch_total": self.total,
                        "dataset": dataset_fingerprint(self._shards, self._mixture)}
        if self.total == 0:
            log.warning("%r plans no samples (every class or sample is deselected or excluded)", self)

    @property
    def batch_size(self) -> int | None:
        """``batch_size=``: None when the stream follows its DataLoader's batch size."""
        return self.options.batch_size

    @property
    def batched(self) -> bool:
        """``batched=``: the stream yields whole batches (read it with ``DataLoader(batch_size=None)``)."""
        return self.options.batched

    # -- construction ------------------------------------------------------------------------
    def _options_for(self, url: str, k: int) -> dict[str, Any]:
        """A stream's storage options apply to its stores on the stream's protocol (not to a local index)."""
        stream = self._streams[k]
        return dict(stream.storage_options or {}) if protocol_of(url) == protocol_of(stream.url) else {}

    @property
    def hierarchy(self) -> Any:
        """The WordNet hierarchy over ``ds.classes`` (target ``i`` is class ``i``), for
        :class:`~imagenet_stream.hierarchy.HierarchicalTargets`, losses and metrics."""
        from imagenet_stream.hierarchy import Hierarchy

        if self.classes is None:
            raise ConfigError("these shards have no class names: declare them with classes_in= (e.g. 'in1k')")
        return Hierarchy.for_classes(self.classes, name="dataset")

    # -- pickling into DataLoader workers -------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        # Spawned and forkserver DataLoader workers do not inherit torch.distributed's process group:
        # the rank and world size this (parent) process sees travel with the pickled copy.
        state["_parent_world"] = self._rank_world()
        return state

    def _rank_world(self) -> tuple[int, int]:
        return detect_rank_world(inherited=self._parent_world)

    def __repr__(self) -> str:  # never shows storage options
        if "_shards" not in self.__dict__:  # __init__ did not finish
            return f"ImageNetStream({getattr(self, 'url', None)!r}, not initialised)"
        return (f"ImageNetStream({self.url!r}, samples={self.total}, shards={len(self._shards)}, "
                f"batch_size={self.batch_size}, epoch={self.epoch})")

    # -- per-process objects ---------------------------------------------------------------------
    def _here(self, slot: int) -> _Here:
        def make() -> _Here:
            stores = [Store(u, options, retry=self.options.retry) for u, options in self._store_urls]
            counter = Counter(self._shared, slot)
            reader = ShardReader(stores, self._shards, cache=self._cache, count=lambda n, v=1: here.counter.add(n, v),
                                 merge_gap=self.options.merge_gap,
                                 index_cache_bytes=self.options.index_cache_bytes)
            here = _Here(reader, counter)
            return here

        here = self._local.get(make)
        if here.counter.slot != slot:
            here.counter = Counter(self._shared, slot)
        return here

    def _view(self, here: _Here, epoch: int) -> EpochView:
        view = here.views.get(epoch)
        if view is None:
            o = self.options
            spec = OrderSpec(o.seed, epoch, o.shuffle, o.shuffle_window, o.chunk)
            view = here.views[epoch] = EpochView(self._mixture, spec, lambda s: here.reader.side_index(s).labels)
            while len(here.views) > _VIEWS_KEPT:
                here.views.popitem(last=False)
            if view.total != self.total:
                raise PlanError(f"epoch {epoch} planned {view.total} samples, expected {self.total}")
        return view

    # -- epochs, length, counters ------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self._shared.epoch

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` for the next iteration, in this process and in every DataLoader worker
        (persistent ones too). A loaded resume of another epoch is dropped."""
        self._shared.set_epoch(int_option("epoch", epoch, 0))

    def _rank_plan(self, epoch: int) -> RankPlan:
        rank, world_size = self._rank_world()
        # len() and resume states count samples: P + n·R positions once every rank consumed n samples,
        # whatever the planned batch size (1 here when it follows a DataLoader's).
        return RankPlan(self.total, self._shared.resume_start(epoch), rank, world_size, self.batch_size or 1,
                        self.options.partial)

    def __len__(self) -> int:
        """Samples (``batched``: batches) this rank yields this epoch (the rest of it after a loaded resume)."""
        plan = self._rank_plan(self.epoch)
        return plan.num_batches if self.options.batched else plan.samples

    def stats(self) -> dict[str, int]:
        """Counters (see :data:`imagenet_stream.streaming.shared_state.COUNTERS`) summed over the main
        process and every DataLoader worker of this dataset object."""
        return self._shared.totals()

    # -- iteration ---------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        world = detect_world(inherited=self._parent_world)
        here = self._here(slot_for_worker(world.worker if get_worker_info() is not None else None))
        pending, self._pending_iter = self._pending_iter, None
        return self._generate(world, here, pending)

    def _pass(self, world: World, here: _Here, pending: dict[str, Any] | None, batch_size: int) -> WorkerPass:
        if pending is not None:  # torchdata's StatefulDataLoader restored this iterator
            for key in ("rank", "world_size", "worker", "num_workers", "batch_size"):
                mine = batch_size if key == "batch_size" else getattr(world, key)
                if pending[key] != mine:
                    raise PlanError(f"iterator state was saved with {key}={pending[key]}, this iterator has "
                                    f"{key}={mine}")
            epoch, start = int(pending["epoch"]), int(pending["start"])
            first, skip = int(pending["batch"]), int(pending["offset"])
        else:
            epoch = self._shared.epoch
            start, first, skip = self._shared.resume_start(epoch), world.worker, 0
        view = self._view(here, epoch)
        plan = RankPlan(view.total, start, world.rank, world.world_size, batch_size, self.options.partial)
        here.reader.prefetch = self.options.prefetch or default_prefetch(batch_size, self.options.chunk)
        if self.options.decode_threads and here.decoders is None:
            here.decoders = ThreadPoolExecutor(self.options.decode_threads, thread_name_prefix="imagenet-stream-decode")
        worker_pass = WorkerPass(view=view, plan=plan, batches=range(first, plan.num_batches, world.num_workers),
                                 skip=skip, reader=here.reader, transform=self._transform,
                                 target_of=self._mixture.target, num_classes=self.num_classes, counter=here.counter,
                                 logged=self._logged, shard_name=lambda s: self._shards[s].name,
                                 decoders=here.decoders, output=BatchOutput(self._transform.out_shape()))
        here.current = {"epoch": epoch, "start": start, "rank": world.rank, "world_size": world.world_size,
                        "worker": world.worker, "num_workers": world.num_workers, "batch_size": batch_size,
                        "pass": worker_pass}
        return worker_pass

    def _generate(self, world: World, here: _Here, pending: dict[str, Any] | None) -> Iterator[tuple[Any, ...]]:
        # Runs from the first next(): inside the DataLoader's first fetch, whose batch size it reads.
        entered = time.perf_counter_ns()
        batch_size = planned_batch_size(self.options.batch_size, fetch_batch_size(), self.options.batched)
        worker_pass = self._pass(world, here, pending, batch_size)
        worker_pass.entered = entered  # the pass's set-up counts as iterating
        try:
            for image, target, key in (worker_pass.batches() if self.options.batched else worker_pass):
                yield (image, target, key) if self.options.return_keys else (image, target)
            return
        except StorageError as exc:  # fail fast, saying where: a DDP job then stops instead of hanging
            failure = (f"rank {world.rank} of {world.world_size} (DataLoader worker {world.worker} of "
                       f"{world.num_workers}), epoch {worker_pass.view.spec.epoch}: {exc}")
        raise StorageError(failure)

    # -- resumption ----------------------------------------------------------------------------------
    def state_dict(self, samples_seen: int | None = None) -> dict[str, Any]:
        """A JSON-serializable resume state.

        ``state_dict(samples_seen=n)``: the rank has consumed ``n`` samples of the current epoch
        (whole batches, or its whole share). The state holds the prefix of the epoch's order the
        whole world has consumed (``P + (n / B) * R * B``, the same on every rank), so
        :meth:`load_state_dict` of it, in any world and with any ``num_workers`` and batch size,
        streams exactly the rest of the epoch once, with equal counts per rank.

        ``state_dict()``: the state of this process's latest iterator (torchdata's ``Stateful``
        protocol, which ``StatefulDataLoader`` calls inside each worker).
        """
        if samples_seen is None:
            here = self._local.peek()
            current = here.current if here is not None else None
            if current is None:
                return {"format": ITERATOR_FORMAT, **self._config, "epoch": self.epoch, "worker": None}
            position = current["pass"].position
            return {"format": ITERATOR_FORMAT, **self._config,
                    **{k: v for k, v in current.items() if k != "pass"},
                    "batch": position.batch, "offset": position.offset}
        plan = self._rank_plan(self.epoch)
        consumed = plan.consumed_after(plan.samples_to_batches(int_option("samples_seen", samples_seen, 0)))
        return rank_state(self._config, epoch=self.epoch, consumed=consumed, rank=plan.rank,
                          world_size=plan.world_size, batch_size=self.batch_size or 0)

    def load_state_dict(self, state: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
        """Resume from :meth:`state_dict` (one rank's state, or a list of every rank's, which must
        agree). A rank state applies to every pass over its epoch until another epoch is set."""
        state = merge_rank_states(state) if not isinstance(state, Mapping) else state
        if not isinstance(state, Mapping) or state.get("format") not in (RANK_FORMAT, ITERATOR_FORMAT):
            found = state.get("format") if isinstance(state, Mapping) else None
            if isinstance(found, str) and found.startswith("imagenet-stream/"):
                raise ConfigError(f"a {found} state is from an older imagenet-stream, which planned epochs "
                                  "differently: it cannot be resumed; restart the epoch")
            raise ConfigError(f"not an ImageNetStream state: {state!r:.200}")
        check_config(state, self._config)
        epoch = int_option("epoch", state.get("epoch"), 0)
        if state["format"] == ITERATOR_FORMAT:
            if state.get("worker") is None:
                self.set_epoch(epoch)
                return
            self._pending_iter = dict(state)
            return
        consumed = int_option("consumed", state.get("consumed"), 0)
        if consumed > self.total:
            raise PlanError(f"cannot resume: the state has consumed={consumed}, past the epoch's {self.total} samples")
        self._shared.set_resume(epoch, consumed)


__all__ = ["DECODE_ERRORS", "DEFAULT_INDEX_DIR", "ITERATOR_FORMAT", "RANK_FORMAT", "ImageNetStream"]

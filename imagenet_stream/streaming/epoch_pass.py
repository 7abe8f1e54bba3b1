"""One pass of one iterator over its batches of an epoch: located, read, decoded, substituted.

:class:`EpochView` is an epoch as one process sees it: the drawn multiset
(:class:`~imagenet_stream.streaming.plan.SampleSet`), its global order and the drawn members of
the shards read so far (a small LRU). :class:`WorkerPass` runs one iterator's rank batches
through the :class:`~imagenet_stream.streaming.reader.ShardReader` and the transform.

**Substitution** (why every rank yields exactly ``len(ds)`` samples whatever the data): a sample
that cannot be used (its image does not decode, its bytes are missing because the shard is
truncated, gone or fails its checks, or its class is not one of the targets) is replaced by the
next usable sample of the same batch, cyclically (slot ``j`` takes the first usable slot after
``j``, wrapping round), decoded with slot ``j``'s own random generator, so the replacement is a
different crop. When no sample of the batch is usable, the first usable sample at the order
positions after the batch (wrapping at the epoch's end) replaces them. Every replacement is
counted (``substituted_samples``, plus the reason's counter) and logged once per sample, and it
depends only on the data and the plan, so it is the same on every run.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from PIL import Image

from imagenet_stream.errors import ShardIntegrityError
from imagenet_stream.streaming.batch_output import BatchOutput
from imagenet_stream.streaming.mixture import Mixture
from imagenet_stream.streaming.plan import EpochOrder, OrderSpec, RankPlan
from imagenet_stream.streaming.reader import MissingSample, RawSample, ShardReader
from imagenet_stream.streaming.shared_state import Counter
from imagenet_stream.streaming.stage_times import decode_clock

log = logging.getLogger(__name__)

#: Errors of an undecodable image (PIL raises UnidentifiedImageError/OSError, SyntaxError for some PNGs).
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)
_MEMBER_CACHE = 256       # shards whose drawn members an EpochView keeps
_WINDOW_CACHE = 64        # located batches a BatchWindows keeps (the reader runs ahead of decoding)
_SPARE_BLOCK = 16         # positions tried at once when a whole batch is unusable
_SPARE_LIMIT = 4096       # ... and at most this many before giving up
_LOGGED_LIMIT = 10_000    # sample keys remembered per process to log each replacement once


class EpochView:
    """One epoch of a :class:`~imagenet_stream.streaming.mixture.Mixture` in one process."""

    def __init__(self, mixture: Mixture, spec: OrderSpec, labels_of: Callable[[int], np.ndarray]) -> None:
        self.spec = spec
        self.samples = mixture.sample_set(spec.seed, spec.epoch, labels_of)
        self.order = EpochOrder(self.samples.counts, spec)
        # no draw and no selection: the i-th planned sample of a shard is its sample i
        self._identity = not self.samples.drawn and self.samples.selection.indices is None
        self._members: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # the reader's thread and the decoding thread both locate

    @property
    def total(self) -> int:
        return self.order.total

    def _shard_members(self, shard: int) -> np.ndarray:
        found = self._members.get(shard)
        if found is None:
            found = self._members[shard] = self.samples.members(shard)
            while len(self._members) > _MEMBER_CACHE:
                self._members.popitem(last=False)
        else:
            self._members.move_to_end(shard)
        return found

    def locate(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Order positions -> ``(shard, in-shard index)`` of each."""
        with self._lock:
            shards, nth = self.order.locate(positions)
            if self._identity:
                return shards, nth
            in_shard = np.empty_like(nth)
            for shard in np.unique(shards).tolist():
                mask = shards == shard
                in_shard[mask] = self._shard_members(shard)[nth[mask]]
            return shards, in_shard


class BatchWindows(Sequence):
    """A worker's rank batches as the reader's windows, located on demand (never all at once)."""

    def __init__(self, view: EpochView, plan: RankPlan, batches: range) -> None:
        self.view, self.plan, self.batches = view, plan, batches
        self._located: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.batches)

    def positions(self, k: int) -> np.ndarray:
        return self.plan.batch(self.batches[k])

    def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        if not 0 <= k < len(self.batches):
            raise IndexError(k)
        with self._lock:
            found = self._located.get(k)
        if found is None:
            found = self.view.locate(self.positions(k))
            with self._lock:
                self._located[k] = found
                while len(self._located) > _WINDOW_CACHE:
                    self._located.popitem(last=False)
        return found

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return (self[k] for k in range(len(self)))


@dataclass
class PassPosition:
    """Where a pass stands: the next sample is slot ``offset`` of rank batch ``batch``."""

    batch: int
    offset: int = 0


class WorkerPass:
    """The samples of rank batches ``batches`` of ``plan``, in order, every one usable.

    ``skip``: samples of the first batch already yielded by an earlier iterator (a restored
    iterator state). ``target_of(shard, label)`` maps a source label to the target class (-1: not
    a target). Yields ``(image, target, key)``.
    """

    def __init__(self, *, view: EpochView, plan: RankPlan, batches: range, skip: int, reader: ShardReader,
                 transform: Callable[[Any, np.random.Generator], Any], target_of: Callable[[int, int], int],
                 num_classes: int, counter: Counter, logged: set[str], shard_name: Callable[[int], str],
                 decoders: Executor | None = None, output: BatchOutput | None = None) -> None:
        self.view, self.plan, self.reader = view, plan, reader
        self.windows = BatchWindows(view, plan, batches)
        self.transform, self.target_of, self.num_classes = transform, target_of, num_classes
        self.counter, self.logged, self.shard_name = counter, logged, shard_name
        self.position = PassPosition(batches[0] if len(batches) else plan.num_batches, skip)
        self._skip = skip
        self._step = batches.step
        self.entered = time.perf_counter_ns()  # when the iterator started (the caller may set it earlier)
        self._clock = {"decode_ns": 0, "transform_ns": 0, "iterate_ns": 0, "outside_ns": 0}
        self._clock_lock = threading.Lock()  # decoding threads add to the clock too
        self.decoders = decoders
        self.output = output or BatchOutput(None)

    # -- one sample --------------------------------------------------------------------------
    def _rng(self, position: int) -> np.random.Generator:
        spec = self.view.spec
        return np.random.default_rng([spec.seed, spec.epoch, 7, int(position)])

    def _use(self, item: RawSample | MissingSample, rng: np.random.Generator, own: bool = True,
             out: torch.Tensor | None = None) -> tuple[Any, int, str] | None:
        """``(image, target, key)`` of a sample, or None when it cannot be used. ``own``: the sample
        of this slot (counted and logged), not a candidate substitute; ``out``: the batch slot the
        transform writes the image into."""
        if isinstance(item, MissingSample):
            return None  # the reader counted it (truncated_samples / unreadable_samples)
        target = self.target_of(item.shard, item.label)
        if not 0 <= target < self.num_classes:
            if own:
                self.counter.add("label_mismatches")
                self._log_once(item, f"its class {item.label} is not a target class (labels.bin and the side "
                               "index disagree)")
            return None
        started, decoded = time.perf_counter_ns(), decode_clock()
        try:
            image = self.transform(item.data, rng) if out is None else self.transform(item.data, rng, out=out)
        except DECODE_ERRORS as exc:
            if own:
                self.counter.add("corrupt_images")
                self._log_once(item, f"its image does not decode ({type(exc).__name__}: {exc})")
            return None
        finally:
            decode = decode_clock() - decoded
            transform = time.perf_counter_ns() - started - decode
            with self._clock_lock:
                self._clock["decode_ns"] += decode
                self._clock["transform_ns"] += transform
        return image, target, item.key

    def _flush_clock(self) -> None:
        with self._clock_lock:
            clock, self._clock = self._clock, dict.fromkeys(self._clock, 0)
        for name, ns in clock.items():
            if ns:
                self.counter.add(name, ns)

    def _log_once(self, item: RawSample, why: str) -> None:
        if item.key in self.logged or len(self.logged) >= _LOGGED_LIMIT:
            return
        self.logged.add(item.key)
        log.warning("replacing sample %s of shard %s: %s", item.key, self.shard_name(item.shard), why)

    # -- one batch ---------------------------------------------------------------------------
    def _decode(self, k: int, items: list[RawSample | MissingSample], slots: torch.Tensor | None) -> list[Future]:
        """Start decoding batch ``k``'s own samples on the decoding threads."""
        assert self.decoders is not None
        return [self.decoders.submit(self._use, item, self._rng(q), True, None if slots is None else slots[j])
                for j, (item, q) in enumerate(zip(items, self.windows.positions(k).tolist()))]

    def _batch(self, k: int, items: list[RawSample | MissingSample], decoded: list[Future] | None = None,
               slots: torch.Tensor | None = None) -> list[tuple[Any, int, str]]:
        """Batch ``k``'s samples, every one usable (``decoded``: its own samples' decoding, started
        on the threads; substitutes are decoded here, in slot order, as without threads; ``slots``:
        the batch tensor each sample's image is written into)."""
        positions = self.windows.positions(k)
        out: list[tuple[Any, int, str] | None] = (
            [f.result() for f in decoded] if decoded is not None
            else [self._use(item, self._rng(q), True, None if slots is None else slots[j])
                  for j, (item, q) in enumerate(zip(items, positions.tolist()))])
        failed = [j for j, o in enumerate(out) if o is None]
        if not failed:
            return out  # type: ignore[return-value]
        usable = [j for j, o in enumerate(out) if o is not None]
        size = len(out)
        spare: RawSample | None = None
        for j in failed:
            rng, slot = self._rng(int(positions[j])), None if slots is None else slots[j]
            replacement = None
            for u in sorted(usable, key=lambda u: (u - j) % size):  # the next usable slot, cyclically
                replacement = self._use(items[u], rng, False, slot)
                if replacement is not None:
                    break
            while replacement is None:  # nothing usable in the batch: the first usable sample after it
                spare = spare or self._spare(int(positions[-1]) + 1)
                replacement = self._use(spare, rng, False, slot)
                if replacement is None:  # decodes with one crop, not another: keep looking past it
                    spare = self._spare(int(spare.position) + 1)
            self.counter.add("substituted_samples")
            out[j] = replacement
        return out  # type: ignore[return-value]

    def _spare(self, first: int) -> RawSample:
        """The first usable sample at order positions ``first, first + 1, ...`` (wrapping); its
        ``position`` is its order position."""
        total = self.view.total
        limit = min(_SPARE_LIMIT, total)
        for block in range(0, limit, _SPARE_BLOCK):
            positions = (first + block + np.arange(min(_SPARE_BLOCK, limit - block))) % total
            for item in self.reader.read([self.view.locate(positions)], quiet=True):
                if isinstance(item, RawSample) and self._use(item, self._rng(0), own=False) is not None:
                    return replace(item, position=int(positions[item.position]))
        raise ShardIntegrityError(f"no usable sample in the {limit} order positions after position {first - 1} of "
                                  f"epoch {self.view.spec.epoch}: the dataset's storage looks broken (see the "
                                  "errors logged above)")

    # -- the pass ---------------------------------------------------------------------------
    def _decoded(self, raw: Iterator[RawSample | MissingSample], batched: bool
                 ) -> Iterator[tuple[int, list[tuple[Any, int, str]], torch.Tensor | None]]:
        """``(k, batch k's samples, its slots)`` in order; with decoding threads, batch ``k + 1`` is
        started before batch ``k`` is waited for. Slots only when ``batched`` and the transform writes them."""
        def take(k: int) -> tuple[list[RawSample | MissingSample], torch.Tensor | None]:
            size = len(self.windows.positions(k))
            return [next(raw) for _ in range(size)], self.output.slots(size) if batched else None

        ahead: tuple[list, torch.Tensor | None, list[Future]] | None = None
        for k in range(len(self.windows)):
            if self.decoders is None:
                items, slots = take(k)
                yield k, self._batch(k, items, None, slots), slots
                continue
            if ahead is None:
                items, slots = take(k)
                ahead = (items, slots, self._decode(k, items, slots))
            items, slots, decoded = ahead
            ahead = None
            if k + 1 < len(self.windows):  # start the next batch before waiting on this one
                following, following_slots = take(k + 1)
                ahead = (following, following_slots, self._decode(k + 1, following, following_slots))
            yield k, self._batch(k, items, decoded, slots), slots

    def __iter__(self) -> Iterator[tuple[Any, int, str]]:
        """The samples, one at a time."""
        return self._run(batched=False)

    def batches(self) -> Iterator[tuple[Any, torch.Tensor, list[str]]]:
        """The batches, each ``(images, int64 targets, keys)`` (see :mod:`.batch_output`)."""
        return self._run(batched=True)

    def _run(self, batched: bool) -> Iterator[Any]:
        raw = iter(self.reader.read(self.windows))
        clock = time.perf_counter_ns
        entered: int | None = self.entered  # None while a sample is out (suspended at the yield)

        def hand_out(position: PassPosition, samples: int) -> None:
            nonlocal entered
            self.position = position
            self.counter.add("samples_yielded", samples)
            self._clock["iterate_ns"] += clock() - entered
            entered = None

        try:
            for k, samples, slots in self._decoded(raw, batched):
                t, size = self.windows.batches[k], len(samples)
                skip, self._skip = self._skip, 0
                if batched:
                    hand_out(PassPosition(t + self._step, 0), size - skip)
                    left = clock()
                    yield self.output.assemble(samples[skip:], None if slots is None else slots[skip:])
                    entered = clock()
                    self._clock["outside_ns"] += entered - left
                else:
                    for j in range(skip, size):
                        hand_out(PassPosition(t, j + 1) if j + 1 < size else PassPosition(t + self._step, 0), 1)
                        left = clock()
                        yield samples[j]
                        entered = clock()
                        self._clock["outside_ns"] += entered - left
                self._flush_clock()
            self.position = PassPosition(self.plan.num_batches, 0)
        finally:
            if entered is not None:
                self._clock["iterate_ns"] += clock() - entered
            self._flush_clock()
            close = getattr(raw, "close", None)
            if close is not None:
                close()


__all__ = ["DECODE_ERRORS", "BatchWindows", "EpochView", "PassPosition", "WorkerPass"]

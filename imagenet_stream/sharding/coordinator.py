"""The sharder: sources -> listing -> shard plan -> shard tasks on a backend -> finalize. Resumable.

One run, from any state of ``--out``:

1. **Listing** (:mod:`.listing`, :mod:`.sources`): every source image as a locator, persisted in the
   work area (:mod:`.run_state`) so a resumed run, on this machine or another, does not list again.
2. **Plan** (:mod:`.plan`): from ``(listing, seed, options)`` alone, every record's shard and
   position; its hash names the run's done-markers.
3. **Tasks** (:mod:`.task`) for the shards without a done-marker of this plan, on the ``local``
   process pool or a ``ray`` cluster (:mod:`.backends`); committed shards are never redone or
   rewritten.
4. **Finalize** (:mod:`.finalize`): duplicates as an exclusion overlay, ``labels.bin``,
   ``report.json`` and ``index.json`` last.

The same sources and options give byte-identical output (tar mtimes are pinned:
``SOURCE_DATE_EPOCH`` or 0), whatever the number of workers, the backend or the crashes on the way.
A different command on an output holding an unfinished run is refused unless ``overwrite``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Protocol

import numpy as np

from imagenet_stream import __version__
from imagenet_stream.errors import ConfigError, SourceError
from imagenet_stream.format import (
    EXCLUSIONS_NAME,
    LABELS_NAME,
    MANIFEST_NAME,
    REPORT_NAME,
    Manifest,
    shard_name,
)
from imagenet_stream.format.download_status import STATUS_FOLDER
from imagenet_stream.hierarchy import ClassSpace, choose_space, load_space
from imagenet_stream.sharding.backends import make_backend
from imagenet_stream.sharding.finalize import ManifestFields, PlanFacts, finalize
from imagenet_stream.sharding.listing import Listing, ListingWriter
from imagenet_stream.sharding.options import ShardOptions
from imagenet_stream.sharding.plan import PLAN_ALGORITHM, ShardPlan, make_plan
from imagenet_stream.sharding.report import MAX_EXAMPLES
from imagenet_stream.sharding.run_state import LISTING_PREFIX, STAGING, RunState, WorkArea
from imagenet_stream.sharding.sources import ListingContext, Source, open_sources
from imagenet_stream.sharding.task import RunConfig, ShardOutcome, ShardTask
from imagenet_stream.storage import Store

log = logging.getLogger(__name__)


class Progress(Protocol):
    """What the sharder needs of a progress bar (tqdm fits)."""

    def update(self, n: int = 1) -> Any: ...

    def set_postfix_str(self, s: str) -> Any: ...

    def close(self) -> Any: ...


#: ``progress(what, total, initial)`` returns a bar; ``total`` is None when unknown.
ProgressFactory = Callable[[str, int | None, int], Progress]


@dataclasses.dataclass(frozen=True)
class ShardResult:
    manifest: Manifest
    report: dict[str, Any]
    seconds: float = 0.0
    resumed_shards: int = 0          # shards found done (not redone) when the run started
    already_complete: bool = False


def shard(specs: Sequence[str], options: ShardOptions, labels: str | None = None,
          progress: ProgressFactory | None = None) -> ShardResult:
    """Shard the source specs (folders, tars, lists, local or URLs) into ``options.out``."""
    if not specs:
        raise SourceError("no sources given")
    return Run(list(specs), options, labels, progress).execute()


def _utc_iso(timestamp: float) -> str:
    text = datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")
    return text.replace("+00:00", "Z")


_TEMP_RE = re.compile(r"\.tmp-[0-9a-f]{12}$")
#: A shard tar is padded to whole 10 KiB records: no smaller limit can hold anything.


class Run:
    """One invocation of the sharder (see the module docstring)."""

    def __init__(self, specs: list[str], options: ShardOptions, labels: str | None,
                 progress: ProgressFactory | None) -> None:
        self.specs = specs
        self.options = options
        self.labels_file = labels
        self.progress = progress
        self.store = Store(options.out, options.storage_options)  # ConfigError for an unknown protocol
        self.work = WorkArea(self.store)
        self.source_options = (options.source_storage_options if options.source_storage_options is not None
                               else options.storage_options)
        labels_digest = None
        if labels is not None and os.path.isfile(labels):
            with open(labels, "rb") as f:
                labels_digest = hashlib.sha256(f.read()).hexdigest()
        self.run_key = hashlib.sha256(json.dumps(
            {"sources": specs, "labels": labels_digest, **options.output_key()}, sort_keys=True).encode()).hexdigest()

    # -- the run -----------------------------------------------------------------------------------
    def execute(self) -> ShardResult:
        started = time.time()
        store, options = self.store, self.options
        store.makedirs()
        state = self._check_output()
        if isinstance(state, ShardResult):
            return state
        with tempfile.TemporaryDirectory(prefix="imagenet-stream-", dir=options.tmp_dir) as scratch:
            sources = open_sources(self.specs, self.labels_file, self.source_options)
            if state is None:
                state = RunState(run_key=self.run_key, created=started)
                self.work.save_state(state)
            listing, state = self._listing(sources, state, scratch)
            try:
                space = load_space(options.classes) if options.classes else choose_space(set(listing.wnids))
                plan = self._plan(listing, space)
                plan_hash = hashlib.sha256(f"{state.listing_digest} {self.run_key} {space.id} "
                                           f"{'|'.join(space.wnids)} {PLAN_ALGORITHM}".encode()).hexdigest()
                state = dataclasses.replace(state, plan_hash=plan_hash, num_shards=plan.num_shards,
                                            num_records=plan.num_records)
                self.work.save_state(state)
                done = self.work.done_shards(plan_hash)
                self._clear_temporaries()
                config = self._config(listing, space, plan_hash)
                resumed = self._dispatch(listing, plan, config, done)
                self._clear_temporaries()  # what killed workers left half written
                facts = self._facts(listing, plan)
            finally:
                listing.close()
            fields = ManifestFields(
                name=options.name, version=options.version,
                created=_utc_iso(options.tar_mtime if "SOURCE_DATE_EPOCH" in os.environ else state.created),
                tool=f"imagenet-stream {__version__}", space_id=space.id, wnids=space.wnids,
                extra={"seed": options.seed, "sources": [s.description for s in sources], "prefix": options.prefix,
                       "plan": plan_hash,
                       **({"terms": options.terms} if options.terms else {}),
                       **({"licence": options.licence} if options.licence else {})})
            base = {"out": store.display_url, "sources": [s.description for s in sources], "seed": options.seed,
                    "plan": plan_hash}
            if options.votes is not None:
                base["votes"] = {"min_votes": options.min_votes, "source": options.votes.source}
            manifest, report = finalize(store, done_folder=self.work.done_folder(plan_hash), prefix=options.prefix,
                                        num_shards=plan.num_shards, plan_hash=plan_hash, fields=fields, facts=facts,
                                        report_base=base, tmp_dir=scratch)
        self.work.save_state(dataclasses.replace(state, finalized=True))
        self.work.remove_listing()
        if not options.keep_staging and options.staging is None:
            store.remove_tree(STAGING)
        log.info("wrote %d samples in %d shards to %s", manifest.num_available, len(manifest.shards),
                 store.display_url)
        return ShardResult(manifest, report, seconds=time.time() - started, resumed_shards=resumed)

    def _check_output(self) -> RunState | ShardResult | None:
        """The run state to continue (None: a fresh run), or the finished result of this very run."""
        store, options = self.store, self.options
        state = self.work.load_state()
        complete = store.exists(MANIFEST_NAME)
        if options.overwrite:
            if complete:
                store.remove(MANIFEST_NAME)  # first: from here on the old dataset no longer looks complete
            self.work.remove_all()
            self._remove_outputs()
            return None
        if complete:
            if state is not None and state.run_key == self.run_key and state.finalized:
                manifest = Manifest.load(store)
                try:
                    report = json.loads(store.read(REPORT_NAME))
                except FileNotFoundError:
                    report = {}
                log.info("%s is already complete (the same command finished earlier): nothing to do",
                         store.display_url)
                return ShardResult(manifest, report, already_complete=True, resumed_shards=len(manifest.shards))
            raise ConfigError(f"{store.display_url} already holds a dataset ({MANIFEST_NAME}); "
                              f"pass --overwrite to replace it")
        if state is not None and state.run_key != self.run_key:
            raise ConfigError(f"{store.display_url} holds an unfinished sharding run of other sources or options "
                              f"(plan {state.plan_hash[:12] or '?'}): re-run that command to finish it, or pass "
                              "--overwrite to start over")
        if state is None and any(self._ours(n) for n in store.list()):
            raise ConfigError(f"{store.display_url} holds shards but no run state: pass --overwrite to replace them")
        return state

    def _ours(self, name: str) -> bool:
        return bool(re.match(rf"^{re.escape(self.options.prefix)}-\d{{6}}\.(tar|idx)$", name)) or name in (
            LABELS_NAME, REPORT_NAME, EXCLUSIONS_NAME)

    def _remove_outputs(self) -> None:
        stale = [n for n in self.store.list() if self._ours(n) or _TEMP_RE.search(n)]
        for name in stale:
            self.store.remove_if_exists(name)
        if stale:
            log.info("removed %d objects of an earlier run from %s", len(stale), self.store.display_url)

    def _clear_temporaries(self) -> None:
        """Remove what killed writers left half written: at the root and in the status folder."""
        for name in self.store.list():
            if _TEMP_RE.search(name):
                self.store.remove_if_exists(name)
        for name, _, is_folder in self.store.entries(STATUS_FOLDER):
            if not is_folder and _TEMP_RE.search(name):
                self.store.remove_if_exists(f"{STATUS_FOLDER}/{name}")

    # -- listing and plan --------------------------------------------------------------------------
    def _listing(self, sources: list[Source], state: RunState, scratch: str) -> tuple[Listing, RunState]:
        if state.listing_digest:
            try:
                listing = Listing.load(self.store, LISTING_PREFIX, scratch)
                log.info("resuming: %d records listed by an earlier run", len(listing))
                return listing, state
            except (FileNotFoundError, SourceError) as exc:
                log.warning("the saved listing cannot be used (%s); listing the sources again", exc)
        staging = Store(self.options.staging or f"{self.store.url}/{STAGING}", self.options.storage_options)
        bar = self.progress("index", None, 0) if self.progress else None
        ctx = ListingContext(storage_options=self.source_options, staging=staging,
                             index_threads=self.options.index_threads,
                             on_records=(lambda n: bar.update(n)) if bar is not None else None)
        writer = ListingWriter(scratch)
        try:
            for source in sources:
                log.info("listing %s", source.description)
                source.list_into(writer, ctx)
        finally:
            if bar is not None:
                bar.close()
        listing = writer.finish()
        digest = listing.digest()
        listing.save(self.store, LISTING_PREFIX)
        state = dataclasses.replace(state, listing_digest=digest)
        self.work.save_state(state)
        log.info("%d records listed from %d source(s)", len(listing), len(sources))
        return listing, state

    def _plan(self, listing: Listing, space: ClassSpace) -> ShardPlan:
        in_space = np.array([w in space for w in listing.wnids], dtype=bool)
        cols = listing.columns
        return make_plan(cols["wnid"], in_space, cols["size"], listing.key_hashes(), lambda i: listing.text(i)[1],
                         seed=self.options.seed, shard_size=self.options.shard_size,
                         max_shard_bytes=self.options.max_shard_bytes)

    def _config(self, listing: Listing, space: ClassSpace, plan_hash: str) -> RunConfig:
        options = self.options
        return RunConfig(out=self.store.url, storage_options=options.storage_options,
                         source_storage_options=self.source_options, containers=listing.containers,
                         class_index={w: i for i, w in enumerate(space.wnids)},
                         verify=options.verify_config(None), prefix=options.prefix, mtime=options.tar_mtime,
                         plan_hash=plan_hash, done_folder=self.work.done_folder(plan_hash),
                         io_threads=options.io_threads, download=options.download, licence=options.licence,
                         status_format=options.status_format)

    def _tasks(self, listing: Listing, plan: ShardPlan, todo: list[int]) -> Iterator[ShardTask]:
        for number in todo:
            first, indices = plan.shard(number)
            records = listing.records(indices)
            keys = tuple(plan.renamed.get(first + j, r.key) for j, r in enumerate(records))
            votes = self.options.votes
            yield ShardTask(number=number, first_position=first, records=tuple(records), keys=keys,
                            votes=votes.lookup(r.key for r in records) if votes is not None else None,
                            min_votes=self.options.min_votes)

    def _dispatch(self, listing: Listing, plan: ShardPlan, config: RunConfig, done: set[str]) -> int:
        """Run the tasks of the shards not done yet; the number found done."""
        options = self.options
        todo = [s for s in range(plan.num_shards) if shard_name(options.prefix, s) not in done]
        resumed = plan.num_shards - len(todo)
        if resumed:
            log.info("resuming: %d of %d shards are done already", resumed, plan.num_shards)
        planned_done = plan.num_records - sum(int(plan.shard_starts[s + 1] - plan.shard_starts[s]) for s in todo)
        bar = self.progress("shard", plan.num_records, planned_done) if self.progress else None
        shards_done = resumed

        def on_done(outcome: ShardOutcome) -> None:
            nonlocal shards_done
            shards_done += 1
            if bar is not None:
                bar.update(outcome.seen)
                bar.set_postfix_str(f"shards {shards_done}/{plan.num_shards}")

        backend = make_backend(options.backend, workers=options.workers, ray_address=options.ray_address,
                               retries=options.task_retries)
        try:
            if todo:
                backend.run(config, self._tasks(listing, plan, todo), on_done)
        finally:
            if bar is not None:
                bar.close()
        return resumed

    def _facts(self, listing: Listing, plan: ShardPlan) -> PlanFacts:
        facts = PlanFacts(listed=len(listing), unknown_class=len(plan.left_out), collisions=len(plan.renamed))
        for i in plan.left_out[:MAX_EXAMPLES].tolist():
            record = listing.records(np.array([i]))[0]
            container = listing.containers[record.container]
            facts.unknown_examples.append({"key": record.key, "source": _source(container.label, record.name),
                                           "detail": f"{record.wnid} is not in the class space"})
        for position in sorted(plan.renamed)[:MAX_EXAMPLES]:
            record = listing.records(plan.records[position:position + 1])[0]
            container = listing.containers[record.container]
            facts.collision_examples.append({"key": record.key, "renamed_to": plan.renamed[position],
                                             "source": _source(container.label, record.name)})
        return facts


def _source(label: str, name: str) -> str:
    return f"{label}/{name}" if label else name


def status(out: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """How far the run in ``out`` got: ``{"state": "complete" | "running" | "empty", ...}``."""
    store = Store(out, storage_options)
    work = WorkArea(store)
    state = work.load_state()
    if store.exists(MANIFEST_NAME):
        manifest = Manifest.load(store)
        return {"state": "complete", "out": store.display_url, "shards": len(manifest.shards),
                "samples": manifest.num_available, "excluded": manifest.num_samples - manifest.num_available}
    if state is None:
        return {"state": "empty", "out": store.display_url}
    done = len(work.done_shards(state.plan_hash)) if state.plan_hash else 0
    return {"state": "running", "out": store.display_url, "listed": bool(state.listing_digest),
            "plan": state.plan_hash[:12], "shards_done": done, "shards": state.num_shards,
            "records": state.num_records, "started": _utc_iso(state.created)}


__all__ = ["ProgressFactory", "Run", "ShardOptions", "ShardResult", "shard", "status"]

"""The streamer's planning at ImageNet-21k scale on a simulated cluster: no shard is read.

    python benchmarks/stream_scale.py                       # 14.2M samples, 14.2k shards, 21,841 classes (~4 min)
    python benchmarks/stream_scale.py --samples 1420000     # quick

A real ``index.json`` (and a long-tailed ``labels.bin``) of ``--samples`` samples in shards of about
1,000 over the 21,841 classes of ImageNet-21k is written to a temporary folder, and
``ImageNetStream`` opens it as a job would. Then, for R in ``--ranks`` (8, 64, 1,024) ranks with
W = 8 DataLoader workers and batch B = 256 per rank, as every worker would:

* **open**: the dataset object's construction in the launching process, and the bytes pickled into
  each worker (the same for every R);
* **plan**: a worker's epoch plan (the drawn multiset, the global order, its rank's batches), its
  time and the Python heap it allocates (tracemalloc), and the **time to its first window** (the plan
  plus locating its first batch: which shard, which samples);
* **bytes per worker per epoch**: every batch of worker 0 of rank 0 located and cut into ranged
  requests (the reader's ``merge_gap`` rule), with the side indexes it fetches through its LRU;
* **tiling**: every (rank, worker) of the epoch located at once: each sample exactly once, equal
  counts per rank, fewer than R positions left out; and the same after an **elastic resume** from
  R = 64 (B = 256) half-way through the epoch into R = 48 (B = 192);
* **checkpoints**: ``state_dict(samples_seen=n)`` and ``load_state_dict`` at R = 1 (target < 50 ms),
  and loading the merged states of 64 ranks.

Class-balanced sampling (``sampling="balanced"``) is measured too: its open (one pass over
``labels.bin``) and a worker's plan. Writes its tables between the stream-scale markers of
benchmarks/RESULTS.md (``--results``).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import pickle
import sys
import tempfile
import time
import tracemalloc
from collections import OrderedDict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import report  # noqa: E402

from imagenet_stream.format import (  # noqa: E402
    LABELS_NAME,
    MANIFEST_NAME,
    ClassesInfo,
    LabelsEntry,
    Manifest,
    ShardEntry,
    SideIndex,
    index_name,
    shard_name,
)
from imagenet_stream.hierarchy.spaces import standard_space  # noqa: E402
from imagenet_stream.streaming import ImageNetStream  # noqa: E402
from imagenet_stream.streaming.epoch_pass import EpochView  # noqa: E402
from imagenet_stream.streaming.plan import OrderSpec, RankPlan, worker_batches  # noqa: E402
from imagenet_stream.streaming.reader import DEFAULT_INDEX_CACHE, DEFAULT_MERGE_GAP  # noqa: E402

BEGIN, END = "<!-- stream-scale:begin -->", "<!-- stream-scale:end -->"
MEAN_IMAGE_BYTES = 1_300_000_000_000 // 14_197_122   # fall11_whole.tar over its images: ~91.6 KB
WORKERS, BATCH = 8, 256
TAR_OVERHEAD = 3 * 512 + 1024  # per sample: three member headers (.jpg .cls .json), padding, meta


def side_index_bytes(n: int) -> int:
    """The encoded size of a real side index of ``n`` samples with ImageNet-style keys."""
    keys = tuple(f"n01440764_{10000 + i}" for i in range(n))
    offsets = np.arange(n + 1, dtype=np.uint64) * 100_000
    index = SideIndex("train-000000.tar", keys, np.zeros(n, np.uint32), offsets, offsets[:-1] + 512,
                      np.full(n, 90_000, np.uint32))
    return len(index.to_bytes())


def write_dataset(folder: Path, samples: int, per_shard: int, seed: int = 0) -> tuple[Manifest, np.ndarray]:
    """index.json + labels.bin of a long-tailed 21,841-class dataset (Zipf-like class sizes, classes
    mixed across shards); the shards themselves are never written."""
    rng = np.random.default_rng(seed)
    wnids = standard_space("in21k").wnids
    k = len(wnids)
    sizes = 1.0 / np.arange(1, k + 1) ** 0.6
    counts = np.floor(sizes / sizes.sum() * samples).astype(np.int64)
    counts[rng.permutation(k)[: samples - counts.sum()]] += 1
    labels = np.repeat(np.arange(k, dtype=np.uint16), counts)
    rng.shuffle(labels)
    n_shards = -(-samples // per_shard)
    shard_sizes = np.full(n_shards, per_shard)
    shard_sizes[-1] = samples - per_shard * (n_shards - 1)
    idx_bytes = side_index_bytes(per_shard)
    fake = hashlib.sha256(b"not read").hexdigest()
    shards = tuple(ShardEntry(name=shard_name("train", s), num_samples=int(n),
                              bytes=int(n) * (MEAN_IMAGE_BYTES + TAR_OVERHEAD) + 1024, sha256=fake,
                              index=index_name(shard_name("train", s)), index_bytes=idx_bytes, index_sha256=fake)
                   for s, n in enumerate(shard_sizes))
    raw = labels.tobytes()
    (folder / LABELS_NAME).write_bytes(raw)
    manifest = Manifest(name="in21k-sim", version="1", created="2026-12-01T00:00:00Z", tool="stream_scale",
                        classes=ClassesInfo("in21k", wnids), num_samples=samples,
                        class_counts=tuple(int(c) for c in counts), shards=shards,
                        labels=LabelsEntry(LABELS_NAME, "<u2", len(raw), hashlib.sha256(raw).hexdigest()))
    (folder / MANIFEST_NAME).write_text(manifest.to_json())
    return manifest, labels


def timed(fn, repeat: int = 1):
    """``(result, median seconds)``."""
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return result, float(np.median(times))


def heap(fn):
    """``(result, peak bytes the call allocated)`` (tracemalloc sees numpy's buffers too)."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    result = fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return result, peak


def view_of(ds: ImageNetStream, labels_per_shard, epoch: int = 1) -> EpochView:
    o = ds.options
    spec = OrderSpec(o.seed, epoch, o.shuffle, o.shuffle_window, o.chunk)
    return EpochView(ds._mixture, spec, lambda s: labels_per_shard[s])  # a worker reads these side indexes


def first_window(ds, labels_per_shard, ranks: int) -> tuple[float, int]:
    """A worker's time from nothing to its first batch located; the heap its plan allocates."""
    def go():
        view = view_of(ds, labels_per_shard)
        plan = RankPlan(view.total, 0, ranks - 1, ranks, BATCH)
        first = worker_batches(plan.num_batches, min(WORKERS, plan.num_batches) - 1, WORKERS)[0]
        return view.locate(plan.batch(first))
    _, seconds = timed(go, repeat=3)
    _, peak = heap(go)
    return seconds, peak


def worker_traffic(ds, view: EpochView, ranks: int, shard_bytes: np.ndarray, index_bytes: int) -> dict:
    """Requests and bytes of worker 0 of rank 0 over one epoch (the reader's range merging and its
    side-index LRU), from the plan alone."""
    plan = RankPlan(view.total, 0, 0, ranks, BATCH)
    per_sample = shard_bytes  # bytes per sample of each shard
    lru: OrderedDict[int, None] = OrderedDict()
    capacity = max(1, DEFAULT_INDEX_CACHE // index_bytes)
    requests = image_bytes = index_fetches = samples = 0
    for t in worker_batches(plan.num_batches, 0, WORKERS):
        shards, members = view.locate(plan.batch(t))
        samples += len(shards)
        for shard in np.unique(shards).tolist():
            idx = np.sort(members[shards == shard])
            size = int(per_sample[shard])
            gap_samples = max(1, DEFAULT_MERGE_GAP // size + 1)
            breaks = np.flatnonzero(np.diff(idx) > gap_samples)
            starts = np.concatenate([[0], breaks + 1])
            stops = np.concatenate([breaks, [len(idx) - 1]])
            requests += len(starts)
            image_bytes += int((idx[stops] - idx[starts] + 1).sum()) * size
            if shard in lru:
                lru.move_to_end(shard)
            else:
                index_fetches += 1
                lru[shard] = None
                if len(lru) > capacity:
                    lru.popitem(last=False)
    needed = samples * float(np.mean(per_sample))
    return {"samples": samples, "requests": requests, "image_bytes": image_bytes, "index_fetches": index_fetches,
            "index_bytes": index_fetches * index_bytes, "amplification": (image_bytes + index_fetches * index_bytes) / needed}


def positions_of_world(total: int, start: int, ranks: int, batch: int, workers: int) -> tuple[np.ndarray, list[int]]:
    """Every order position every (rank, worker) yields; per-rank counts."""
    out, per_rank = [], []
    for r in range(ranks):
        plan = RankPlan(total, start, r, ranks, batch)
        n = 0
        for w in range(workers):
            for t in worker_batches(plan.num_batches, w, workers):
                p = plan.batch(t)
                out.append(p)
                n += len(p)
        per_rank.append(n)
    return np.concatenate(out) if out else np.zeros(0, np.int64), per_rank


def check_tiling(view: EpochView, positions: np.ndarray, starts: np.ndarray, ranks: int) -> dict:
    """Each sample of the epoch at most once, every one but fewer than ``ranks`` exactly once."""
    shards, members = view.order.locate(positions)
    ids = starts[shards] + members
    seen = np.bincount(ids, minlength=int(starts[-1]))
    left_out = int((seen == 0).sum())
    ok = bool(seen.max() <= 1 and left_out < ranks)
    return {"ok": ok, "left_out": left_out, "max_seen": int(seen.max())}


SPLIT_BEGIN, SPLIT_END = "<!-- split-scale:begin -->", "<!-- split-scale:end -->"


def split_figures(folder: Path, manifest: Manifest, labels: np.ndarray) -> list[str]:
    """The ImageNet-21K-P recipe (N = 500, K = 50, first by key) on the simulated dataset: the plan's
    time and heap, what each version stores (its overlay), and opening the val version as a job
    would (time, heap, bytes pickled into each worker). Keys are the synthetic ``<wnid>_<id>``."""
    from imagenet_stream.curation.split import plan_split, target_space
    from imagenet_stream.format import EXCLUSIONS_NAME, ClassesInfo
    from imagenet_stream.format.manifest import ExclusionsEntry
    from imagenet_stream.format.overlay import encode_exclusions

    wnids = manifest.classes.wnids
    starts = np.concatenate([[0], np.cumsum(manifest.sample_counts)]).astype(np.int64)
    lab = labels.astype(np.int64)

    def keys_of(s: int) -> list[str]:
        return [f"{wnids[c]}_{starts[s] + i}" for i, c in enumerate(lab[starts[s]:starts[s + 1]].tolist())]

    available = np.ones(lab.size, dtype=bool)
    plan, plan_s = timed(lambda: plan_split(lab, available, keys_of, starts, holdout_per_class=50,
                                             min_class_images=500, select="first", seed=0, num_classes=len(wnids)))
    _, plan_heap = heap(lambda: plan_split(lab, available, keys_of, starts, holdout_per_class=50,
                                           min_class_images=500, select="first", seed=0, num_classes=len(wnids)))
    rows = []
    val_dir = folder / "val"
    val_dir.mkdir()
    for name, part in (("train", plan.train_ids), ("val", plan.val_ids)):
        held = np.zeros(lab.size, dtype=bool)
        held[part] = True
        excluded = np.flatnonzero(~held)
        (data, dtype), enc_s = timed(lambda: encode_exclusions(excluded, lab.size))
        ids_bytes = excluded.size * 4
        rows.append(f"| {name} | {part.size:,} | {excluded.size:,} | {dtype}: {len(data) / 1e6:.2f} MB "
                    f"(ids would be {ids_bytes / 1e6:.1f} MB) | {enc_s:.2f} s |")
        if name == "val":
            kept = tuple(wnids[c] for c in plan.kept_classes.tolist())
            counts = np.bincount(lab[part], minlength=len(wnids))
            version = dataclasses.replace(
                manifest, format_version=2, shards_at=str(folder), indexes_at=str(folder),
                class_counts=tuple(int(c) for c in counts),
                targets=target_space(kept) if kept else ClassesInfo("custom:split", ("n00000000",)),
                exclusions=ExclusionsEntry(EXCLUSIONS_NAME, dtype, int(excluded.size), len(data),
                                           hashlib.sha256(data).hexdigest(), {"split": int(excluded.size)}))
            (val_dir / EXCLUSIONS_NAME).write_bytes(data)
            (val_dir / LABELS_NAME).write_bytes((folder / LABELS_NAME).read_bytes())
            (val_dir / MANIFEST_NAME).write_text(version.to_json())

    def open_val():
        return ImageNetStream(str(val_dir), batch_size=BATCH, transform=None, seed=1)

    ds, open_s = timed(open_val)
    _, open_heap = heap(open_val)
    per_class = np.bincount(lab[plan.val_ids], minlength=len(wnids))[plan.kept_classes]
    exact = bool(len(ds) == 50 * len(plan.kept_classes) and np.all(per_class == 50)
                 and ds.classes == sorted(wnids[c] for c in plan.kept_classes.tolist()))
    return ["", f"`--recipe in21k-p` on it (N = 500, K = 50, first by key): {len(plan.kept_classes):,} classes "
            f"kept, {plan.dropped_classes:,} dropped; plan {plan_s:.1f} s (reading 14.2k side indexes' keys, "
            f"here generated), its heap {plan_heap / 1e6:.0f} MB (measured in a second, traced run).", "",
            "| version | samples | excluded | its overlay | encode |", "|---|---|---|---|---|", *rows, "",
            f"Opening the val version ({len(ds):,} samples, {ds.num_classes:,} classes in its own space; "
            + ("exactly 50 per kept class" if exact else "**NOT** 50 per kept class") + "): "
            f"{open_s:.2f} s, heap {open_heap / 1e6:.0f} MB in the launching process, "
            f"{len(pickle.dumps(ds)) / 1e6:.2f} MB pickled into each worker."]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=14_200_000)
    p.add_argument("--per-shard", type=int, default=1000)
    p.add_argument("--ranks", default="8,64,1024")
    p.add_argument("--results", default=str(HERE / "RESULTS.md"), help="'' to only print")
    p.add_argument("--split-only", action="store_true", help="only the split (21K-P recipe) figures")
    args = p.parse_args()
    if args.split_only:
        with tempfile.TemporaryDirectory() as tmp:
            manifest, labels = write_dataset(Path(tmp), args.samples, args.per_shard)
            body = "\n".join(split_figures(Path(tmp), manifest, labels)).strip()
        body += f"\n\nCommand: `python benchmarks/stream_scale.py --samples {args.samples} --split-only`."
        print(body)
        if args.results:
            report.replace_section(args.results, SPLIT_BEGIN, SPLIT_END, body,
                                   "\n## Splits as versions at scale (`benchmarks/stream_scale.py --split-only`)\n\n")
        return
    ranks_list = [int(r) for r in args.ranks.split(",")]
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (manifest, labels), gen_s = timed(lambda: write_dataset(folder, args.samples, args.per_shard))
        per_shard_labels = np.split(labels.astype(np.int64), np.cumsum(manifest.sample_counts)[:-1])
        index_bytes = side_index_bytes(args.per_shard)
        print(f"generated {args.samples:,} samples in {len(manifest.shards):,} shards, "
              f"{len(manifest.classes.wnids):,} classes ({gen_s:.1f} s); index.json "
              f"{(folder / MANIFEST_NAME).stat().st_size / 1e6:.1f} MB", flush=True)

        def open_ds(**kw):
            return ImageNetStream(str(folder), batch_size=BATCH, transform=None, seed=1, **kw)

        ds, open_s = timed(open_ds)
        _, open_heap = heap(open_ds)
        pickled = len(pickle.dumps(ds))
        bal, bal_open_s = timed(lambda: open_ds(sampling="balanced"))
        _, bal_open_heap = heap(lambda: open_ds(sampling="balanced"))
        bal_pickled = len(pickle.dumps(bal))
        shard_bytes = np.array([(s.bytes - 1024) / max(1, s.num_samples) for s in manifest.shards])
        starts = np.concatenate([[0], np.cumsum(manifest.sample_counts)]).astype(np.int64)

        lines += [f"{args.samples:,} samples in {len(manifest.shards):,} shards of ~{args.per_shard}, "
                  f"{len(manifest.classes.wnids):,} classes (long-tailed: {max(manifest.class_counts):,} to "
                  f"{min(manifest.class_counts):,} per class); `index.json` "
                  f"{(folder / MANIFEST_NAME).stat().st_size / 1e6:.1f} MB; W = {WORKERS} workers per rank, "
                  f"B = {BATCH}, mean image {MEAN_IMAGE_BYTES / 1e3:.1f} KB, side index {index_bytes / 1e3:.1f} KB. "
                  "No shard is read: the figures are the planner's own.", "",
                  "| dataset object | open (launching process) | its heap | pickled into each worker |",
                  "|---|---|---|---|",
                  f"| every sample once | {open_s * 1e3:.0f} ms | {open_heap / 1e6:.1f} MB | {pickled / 1e6:.2f} MB |",
                  f"| `sampling=\"balanced\"` | {bal_open_s * 1e3:.0f} ms | {bal_open_heap / 1e6:.1f} MB | "
                  f"{bal_pickled / 1e6:.2f} MB |", "",
                  "| R × W | worker plan + first window | plan heap | balanced: first window | heap | "
                  "requests / worker / epoch | image bytes | side-index fetches | fetched / needed | tiling |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        view = view_of(ds, per_shard_labels)
        bal_view = view_of(bal, per_shard_labels)
        for ranks in ranks_list:
            first_s, plan_heap = first_window(ds, per_shard_labels, ranks)
            bal_first_s, bal_heap = first_window(bal, per_shard_labels, ranks)
            traffic = worker_traffic(ds, view, ranks, shard_bytes, index_bytes)
            positions, per_rank = positions_of_world(view.total, 0, ranks, BATCH, WORKERS)
            tiling = check_tiling(view, positions, starts, ranks)
            tiling["equal"] = len(set(per_rank)) == 1
            del positions
            print(f"R={ranks}: first window {first_s * 1e3:.0f} ms ({plan_heap / 1e6:.1f} MB), balanced "
                  f"{bal_first_s * 1e3:.0f} ms; worker 0: {traffic}; tiling {tiling}", flush=True)
            lines.append(
                f"| {ranks} × {WORKERS} | {first_s * 1e3:.0f} ms | {plan_heap / 1e6:.1f} MB | "
                f"{bal_first_s * 1e3:.0f} ms | {bal_heap / 1e6:.1f} MB | {traffic['requests']:,} | "
                f"{traffic['image_bytes'] / 1e9:.2f} GB ({traffic['samples']:,} samples) | "
                f"{traffic['index_fetches']:,} ({traffic['index_bytes'] / 1e6:.0f} MB) | "
                f"{traffic['amplification']:.3f} | "
                + ("exact" if tiling["ok"] and tiling["equal"] else f"**FAILED** {tiling}")
                + f", {tiling['left_out']} left out |")

        # elastic resume: R=64, B=256 half-way, then R=48, B=192
        old = RankPlan(view.total, 0, 0, 64, BATCH)
        k = old.num_batches // 2
        consumed = old.consumed_after(k)
        head = np.arange(consumed, dtype=np.int64)  # the prefix the old world consumed
        tail, per_rank = positions_of_world(view.total, consumed, 48, 192, WORKERS)
        elastic = check_tiling(view, np.concatenate([head, tail]), starts, 48)
        elastic["equal"] = len(set(per_rank)) == 1
        # balanced: the same tiling of positions; each maps to one of the shard's drawn samples, once
        bal_positions, bal_per_rank = positions_of_world(bal_view.total, 0, 64, BATCH, WORKERS)
        shards_b, nth_b = bal_view.order.locate(bal_positions)
        counts_b = bal_view.samples.counts
        offsets_b = np.concatenate([[0], np.cumsum(counts_b)]).astype(np.int64)
        seen_b = np.bincount(offsets_b[shards_b] + nth_b, minlength=int(offsets_b[-1]))
        members_ok = all(len(bal_view.samples.members(s)) == counts_b[s] for s in range(len(counts_b)))
        bal_ok = bool(np.all(nth_b < counts_b[shards_b]) and seen_b.max() <= 1 and (seen_b == 0).sum() < 64
                      and len(set(bal_per_rank)) == 1 and members_ok)
        del head, tail, bal_positions, shards_b, nth_b, seen_b

        # checkpoints at R = 1
        n_seen = (len(ds) // BATCH // 2) * BATCH
        state, save_s = timed(lambda: ds.state_dict(samples_seen=n_seen), repeat=20)
        fresh = open_ds()
        _, load_s = timed(lambda: fresh.load_state_dict(json.loads(json.dumps(state))), repeat=20)
        os.environ["WORLD_SIZE"] = "64"
        states = []
        for r in range(64):
            os.environ["RANK"] = str(r)
            states.append(ds.state_dict(samples_seen=(len(ds) // BATCH // 2) * BATCH))
        _, merged_s = timed(lambda: fresh.load_state_dict(states), repeat=5)
        del os.environ["WORLD_SIZE"], os.environ["RANK"]
        lines += ["", f"Elastic resume, R = 64 (B = {BATCH}) after {k:,} of {old.num_batches:,} batches "
                  f"(consumed {consumed:,}) into R = 48 (B = 192): "
                  + ("exact, equal counts" if elastic["ok"] and elastic["equal"] else f"**FAILED** {elastic}")
                  + f", {elastic['left_out']} left out. Balanced epoch over 64 × {WORKERS}: "
                  + ("its drawn multiset tiled exactly." if bal_ok else "**FAILED**"),
                  "", f"Checkpoints at R = 1: `state_dict(samples_seen=n)` {save_s * 1e3:.3f} ms, "
                  f"`load_state_dict` {load_s * 1e3:.3f} ms ({len(json.dumps(state))} bytes of JSON; target < 50 ms); "
                  f"loading the list of 64 ranks' states (checked to agree) {merged_s * 1e3:.2f} ms.",
                  "", f"Command: `python benchmarks/stream_scale.py --samples {args.samples} --ranks {args.ranks}`."]
    print("\n".join(lines))
    if args.results:
        report.replace_section(args.results, BEGIN, END, "\n".join(lines),
                               "## Streaming at scale (`benchmarks/stream_scale.py`)\n\n")

if __name__ == "__main__":
    main()

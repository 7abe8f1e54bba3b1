"""``imagenet-stream demo``: build a small synthetic ImageNet-style tree, shard it, print the report,
then stream one epoch of the shards through a DataLoader (2 workers) and show a few samples' classes
with their WordNet ancestors.

The steps are separate functions (:func:`make_tree`, :func:`shard_tree`, :func:`print_report`,
:func:`stream_shards`) that :func:`run` calls in order.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from imagenet_stream.commands.cli_support import fail
from imagenet_stream.commands.epoch_run import stream_epoch
from imagenet_stream.commands.shard import progress_factory
from imagenet_stream.errors import ImageNetStreamError, NothingKeptError
from imagenet_stream.sharding.coordinator import ShardOptions, ShardResult, shard
from imagenet_stream.sharding.demo_tree import DEMO_CLASSES, DemoTree, make_demo_tree
from imagenet_stream.sharding.report import format_report

HELP = "generate a small synthetic ImageNet-style tree (with real quirks), shard it, print the report"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help=HELP, description=HELP)
    p.add_argument("--out", default="demo-data", metavar="DIR",
                   help="working folder: DIR/tree (source images), DIR/shards (dataset) (default demo-data)")
    p.add_argument("--images-per-class", type=int, default=8, metavar="N",
                   help=f"images per class, {len(DEMO_CLASSES)} classes (default 8)")
    p.add_argument("--shard-size", type=int, default=32, help="samples per shard (default 32)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="verify processes")
    p.add_argument("--seed", type=int, default=0, help="seed of the tree and of the class mixing")
    p.add_argument("--loader-workers", type=int, default=2, help="DataLoader workers of the streaming step")
    p.add_argument("--batch-size", type=int, default=16, help="batch size of the streaming step")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def make_tree(args: argparse.Namespace) -> DemoTree:
    """Step 1: the synthetic source tree in ``OUT/tree``."""
    started = time.perf_counter()
    tree = make_demo_tree(Path(args.out) / "tree", images_per_class=args.images_per_class, seed=args.seed)
    print(f"[1] wrote {tree.images} images of {len(tree.wnids)} classes to {tree.root} "
          f"in {time.perf_counter() - started:.1f} s")
    for quirk, path in tree.quirks.items():
        print(f"      quirk {quirk:<15} {path}")
    return tree


def shard_tree(args: argparse.Namespace, tree: DemoTree) -> ShardResult:
    """Step 2: shard the tree into ``OUT/shards`` (replacing an earlier demo dataset)."""
    out = str(Path(args.out) / "shards")
    print(f"[2] sharding {tree.root} -> {out} with {args.workers} worker(s)")
    options = ShardOptions(out=out, seed=args.seed, shard_size=args.shard_size, workers=args.workers,
                           name="imagenet-demo", overwrite=True)
    return shard([str(tree.root)], options, progress=progress_factory(args.no_progress))


def print_report(result: ShardResult) -> None:
    """Step 3: the sharding report."""
    print(format_report(result.report, result.seconds))
    m = result.manifest
    print(f"    manifest: {m.num_samples} samples, {len(m.shards)} shards, class space {m.classes.space}")


def stream_shards(args: argparse.Namespace, result: ShardResult, samples: int = 4) -> None:
    """Step 4: one epoch through ``DataLoader(num_workers=2)``; throughput and a few samples' lineage."""
    from torch.utils.data import DataLoader

    from imagenet_stream.hierarchy import Hierarchy
    from imagenet_stream.streaming.dataset import ImageNetStream

    url = str(Path(args.out) / "shards")
    ds = ImageNetStream(url, shuffle=True, seed=args.seed, transform="train", batch_size=args.batch_size,
                        return_keys=True)
    loader = DataLoader(ds, batch_size=args.batch_size, num_workers=args.loader_workers)
    print(f"[3] streaming one epoch of {url}: {len(ds)} samples, DataLoader batch {args.batch_size}, "
          f"{args.loader_workers} workers")
    run_ = stream_epoch(loader, desc="stream", no_progress=args.no_progress)
    print(f"    {run_.images} images in {run_.batches} batches, {run_.seconds:.2f} s: "
          f"{run_.images_per_second:.0f} img/s (first batch after {run_.first_batch_seconds or 0:.2f} s)")
    images, targets, keys = run_.first_batch
    print(f"    first batch: images {tuple(images.shape)} {images.dtype}, targets {tuple(targets.shape)} "
          f"{targets.dtype}")
    h = Hierarchy.for_space(result.manifest.classes.space)
    for key, target in list(zip(keys, targets.tolist()))[:samples]:
        wnid = ds.classes[target] if ds.classes else "?"
        lineage = " < ".join(h.name(w).split(",")[0] for w in h.tree_path(wnid)[:6])
        print(f"    {key:<22} class {target:>5} {wnid}: {lineage} < ...")


def run(args: argparse.Namespace) -> int:
    if args.images_per_class < 1:
        return fail(f"--images-per-class must be >= 1, got {args.images_per_class}")
    tree = make_tree(args)
    try:
        result = shard_tree(args, tree)
    except NothingKeptError as exc:
        print(format_report(exc.report))
        return fail(str(exc), 1)
    except (ImageNetStreamError, OSError) as exc:
        return fail(str(exc))
    print_report(result)
    stream_shards(args, result)
    shards = Path(args.out) / "shards"
    print(f"[4] see it: imagenet-stream inspect {shards} --html report.html   (then open report.html)")
    return 0

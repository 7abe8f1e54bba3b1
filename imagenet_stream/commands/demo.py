"""``imagenet-stream demo``: build a small synthetic ImageNet-style tree, shard it, print the report.

The steps are separate functions (:func:`make_tree`, :func:`shard_tree`, :func:`print_report`) that
:func:`run` calls in order, so later steps (streaming the shards) append to the same flow.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from ..errors import ImageNetStreamError
from ..sharding.demo_tree import DEMO_CLASSES, DemoTree, make_demo_tree
from ..sharding.pipeline import NothingKeptError, ShardOptions, ShardResult, shard
from ..sharding.report import format_report
from ._common import fail
from .shard import progress_factory

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
    print(format_report(result.report))
    m = result.manifest
    print(f"    manifest: {m.num_samples} samples, {len(m.shards)} shards, class space {m.classes.space}")


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
    return 0

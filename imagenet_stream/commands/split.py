"""``imagenet-stream split DATASET --out-train URL --out-val URL --holdout-per-class K``: a train and a
val version over the same shards (nothing copied), each with its own class space; ``--recipe in21k-p``."""
from __future__ import annotations

import argparse

from imagenet_stream.commands.cli_support import STORAGE_OPTIONS_HELP, fail, parse_storage_options
from imagenet_stream.errors import ImageNetStreamError

HELP = "split a dataset into train and val versions over the same shards (e.g. the ImageNet-21K-P recipe)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("split", help=HELP, description=HELP + ". Classes with fewer than --min-class-images "
                       "(and than K + 1) samples are dropped from both; val holds exactly K samples of every kept "
                       "class, train the rest. Both index.json files point at the parent's shards.")
    p.add_argument("dataset", metavar="DATASET", help="the dataset root to split (e.g. fall11 sharded)")
    p.add_argument("--out-train", metavar="URL", help="where the train version's index.json goes")
    p.add_argument("--out-val", metavar="URL", help="where the val version's index.json goes")
    p.add_argument("--holdout-per-class", type=int, metavar="K", help="val samples per kept class")
    p.add_argument("--min-class-images", type=int, metavar="N", help="drop classes with fewer samples (default 0)")
    p.add_argument("--select", choices=("first", "random"), help="which K go to val: the first K by key "
                   "(default, as the 21K-P recipe) or a seeded random draw")
    p.add_argument("--seed", type=int, default=0, help="seed of --select random (default 0)")
    p.add_argument("--recipe", choices=("in21k-p",),
                   help="in21k-p = --min-class-images 500 --holdout-per-class 50 --select first (Ridnik et al. "
                        "2021: from fall11 11,221 classes, 11,797,632 train / 561,052 val images)")
    p.add_argument("--dry-run", action="store_true", help="print the counts, write nothing")
    p.add_argument("--storage-options", metavar="JSON|@FILE", help=STORAGE_OPTIONS_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from imagenet_stream.curation.split import RECIPES, split

    min_images, holdout, select = RECIPES.get(args.recipe, (0, None, "first"))
    if args.min_class_images is not None:
        min_images = args.min_class_images
    if args.holdout_per_class is not None:
        holdout = args.holdout_per_class
    if args.select is not None:
        select = args.select
    if holdout is None:
        return fail("give --holdout-per-class K (or --recipe)")
    try:
        result = split(args.dataset, args.out_train, args.out_val, holdout_per_class=holdout,
                       min_class_images=min_images, select=select, seed=args.seed, dry_run=args.dry_run,
                       storage_options=parse_storage_options(args.storage_options), recipe=args.recipe,
                       progress=not args.no_progress)
    except (ImageNetStreamError, OSError) as exc:
        return fail(str(exc))
    plan = result.plan
    print(f"{'would split' if args.dry_run else 'split'} {args.dataset}: {len(plan.kept_classes)} classes kept "
          f"(>= {max(min_images, holdout + 1)} samples each), {plan.dropped_classes} dropped "
          f"({plan.dropped_samples} samples); train {plan.train_ids.size}, val {plan.val_ids.size} "
          f"({holdout} per class, {select})")
    if result.train is not None and result.val is not None:
        space = result.train.targets.space if result.train.targets is not None else "?"
        print(f"train version {result.train.version} at {args.out_train}; val version {result.val.version} at "
              f"{args.out_val}; class space {space} ({len(plan.kept_classes)} classes); no shard copied")
    return 0

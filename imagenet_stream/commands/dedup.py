"""``imagenet-stream dedup DATASET [--against OTHER ...] --out DIR``: near-duplicates within a dataset
and across datasets (train <-> val/test leakage), from the perceptual hashes in the side indexes."""
from __future__ import annotations

import argparse

from imagenet_stream.commands.cli_support import STORAGE_OPTIONS_HELP, fail, parse_storage_options
from imagenet_stream.errors import ImageNetStreamError

HELP = "find near-duplicate images within a dataset and leaking into other datasets (val, test)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    from imagenet_stream.curation.duplicates import DEFAULT_MAX_DISTANCE

    p = sub.add_parser("dedup", help=HELP, description=HELP + ". Reads the 64-bit perceptual hashes the sharder "
                       "stored in the side indexes (no image is decoded) and writes pairs.csv and summary.json; "
                       "`imagenet-stream exclude DATASET --from-dedup DIR` then publishes a version without them.")
    p.add_argument("dataset", metavar="DATASET", help="the dataset root to search (e.g. the training set)")
    p.add_argument("--against", nargs="+", default=[], metavar="OTHER",
                   help="datasets whose samples must not appear in DATASET (e.g. ImageNet-1k val)")
    p.add_argument("--max-distance", type=int, default=DEFAULT_MAX_DISTANCE, metavar="D",
                   help=f"Hamming distance (of 64 bits) under which two images are near-duplicates "
                        f"(default {DEFAULT_MAX_DISTANCE}; see docs/CURATION.md for its precision and recall)")
    p.add_argument("--out", required=True, metavar="DIR", help="local folder for pairs.csv and summary.json")
    p.add_argument("--storage-options", metavar="JSON|@FILE", help=STORAGE_OPTIONS_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from imagenet_stream.curation.duplicates import dedup

    if not 0 <= args.max_distance <= 64:
        return fail(f"--max-distance must be in 0..64, got {args.max_distance}")
    try:
        summary = dedup(args.dataset, args.out, against=args.against, max_distance=args.max_distance,
                        storage_options=parse_storage_options(args.storage_options), progress=not args.no_progress)
    except (ImageNetStreamError, OSError) as exc:
        return fail(str(exc))
    searched = summary["dataset"]["samples"]  # type: ignore[index]
    groups = summary["groups"]  # type: ignore[assignment]
    print(f"searched {searched} samples of {args.dataset} at distance <= {args.max_distance} "
          f"in {summary['seconds']} s")
    print(f"  within      {summary['pairs']['within']} pair(s) in {groups['count']} group(s) "  # type: ignore[index]
          f"of {groups['samples']} samples")
    for other, n in summary["leaking_samples"].items():  # type: ignore[union-attr]
        print(f"  leakage     {n} sample(s) of {args.dataset} near a sample of {other}")
    print(f"report: {args.out}/pairs.csv, {args.out}/summary.json; publish with "
          f"`imagenet-stream exclude {args.dataset} --from-dedup {args.out} --out NEW_ROOT`")
    return 0

"""``imagenet-stream exclude DATASET --out NEW_ROOT``: a new dataset version with samples excluded,
over the same shards (nothing is copied or rewritten; the parent stays as it is)."""
from __future__ import annotations

import argparse

from imagenet_stream.commands.cli_support import STORAGE_OPTIONS_HELP, fail, parse_storage_options
from imagenet_stream.curation import KEY_REASON, SYNSET_REASON, exclude, read_key_list
from imagenet_stream.errors import ImageNetStreamError

HELP = "publish a new version of a dataset that excludes synsets or listed samples, without touching a shard"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("exclude", help=HELP, description=HELP + ". The new index.json points at the "
                       "parent's shards by URL and records the lineage; streamers never yield excluded samples.")
    p.add_argument("dataset", metavar="DATASET", help="the parent dataset root (holding index.json)")
    p.add_argument("--out", required=True, metavar="NEW_ROOT", help="where the new version's index.json goes")
    p.add_argument("--synsets", metavar="WNID[,WNID]",
                   help="exclude every class at or below these WordNet synsets (e.g. n00007846, person)")
    p.add_argument("--keys", metavar="FILE",
                   help="exclude these sample keys: one per line, optionally KEY<TAB>REASON (opt-out, takedown)")
    p.add_argument("--reason", help=f"the reason recorded for --keys lines without one (default {KEY_REASON}) "
                                    f"and for --synsets (default {SYNSET_REASON})")
    p.add_argument("--version", help="the new version's name (default: the parent's with .1 appended)")
    p.add_argument("--note", help="a free-text note kept in the lineage (e.g. a ticket)")
    p.add_argument("--storage-options", metavar="JSON|@FILE", help=STORAGE_OPTIONS_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        synsets = [w.strip() for w in (args.synsets or "").split(",") if w.strip()]
        keys = None
        if args.keys:
            try:
                with open(args.keys, encoding="utf-8") as f:
                    keys = read_key_list(f.read(), args.reason or KEY_REASON)
            except OSError as exc:
                return fail(f"cannot read the key list {args.keys}: {exc.strerror or exc}")
        result = exclude(args.dataset, args.out, synsets=synsets, keys=keys,
                         synset_reason=args.reason or SYNSET_REASON, version=args.version, note=args.note,
                         storage_options=parse_storage_options(args.storage_options), progress=not args.no_progress)
    except (ImageNetStreamError, OSError) as exc:
        return fail(str(exc))
    m = result.manifest
    added = ", ".join(f"{n} {reason}" for reason, n in result.added.items()) or "nothing new"
    print(f"version {m.version} at {args.out}: excluded {added}; {m.num_available} of {m.num_samples} samples "
          f"available over the parent's {len(m.shards)} shards (none copied)")
    if result.unmatched_keys:
        print(f"note: {result.unmatched_keys} listed key(s) are not samples of {args.dataset}")
    return 0

"""``imagenet-stream exclude DATASET --out NEW_ROOT``: a new dataset version with samples excluded,
over the same shards (nothing is copied or rewritten; the parent stays as it is)."""
from __future__ import annotations

import argparse

from imagenet_stream.commands.cli_support import STORAGE_OPTIONS_HELP, fail, parse_storage_options
from imagenet_stream.curation import (
    KEY_REASON,
    SYNSET_REASON,
    exclude,
    read_digest_list,
    read_key_list,
    read_url_list,
)
from imagenet_stream.errors import ConfigError, ImageNetStreamError

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
    p.add_argument("--sha256", metavar="FILE",
                   help="exclude the images with these sha256 digests (the stored image's or the source file's): "
                        "sha256:<hex> or <hex> per line, optionally <TAB>REASON")
    p.add_argument("--urls", metavar="FILE",
                   help="exclude the images downloaded from these URLs (a dataset sharded from a URL list; matched in "
                        "its download status files): one URL per line, optionally <TAB>REASON")
    p.add_argument("--from-dedup", metavar="DIR",
                   help="exclude what a dedup report of this dataset found: every member but the smallest key of "
                        "each near-duplicate group, and every sample leaking into an --against dataset")
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
        keys = digests = urls = None
        if args.keys:
            keys = read_key_list(_read(args.keys, "key list"), args.reason or KEY_REASON)
        if args.sha256:
            digests = read_digest_list(_read(args.sha256, "sha256 list"), args.reason or KEY_REASON)
        if args.urls:
            urls = read_url_list(_read(args.urls, "URL list"), args.reason or KEY_REASON)
        result = exclude(args.dataset, args.out, synsets=synsets, keys=keys, sha256=digests, urls=urls,
                         from_dedup=args.from_dedup,
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


def _read(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None

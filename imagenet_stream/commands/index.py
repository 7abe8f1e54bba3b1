"""``imagenet-stream index PATTERN --out DIR``: index foreign webdataset shards once, for every later run."""
from __future__ import annotations

import argparse

from imagenet_stream.commands.cli_support import STORAGE_OPTIONS_HELP, fail, parse_storage_options
from imagenet_stream.errors import ImageNetStreamError
from imagenet_stream.storage import Store
from imagenet_stream.streaming.classes import resolve_space
from imagenet_stream.streaming.foreign import build_index
from imagenet_stream.urls import protocol_of

HELP = ("index foreign webdataset shards (brace URL or one .tar) in one pass: DIR then streams them "
        "without re-reading a shard to start")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help=HELP, description=HELP + ". Stream with ImageNetStream(DIR).")
    p.add_argument("pattern", metavar="PATTERN",
                   help="shard URLs, e.g. 'https://host/imagenet1k-train-{0000..1023}.tar' (quote the braces)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="where the index goes (index.json, side indexes, labels.bin); any fsspec URL")
    p.add_argument("--classes-in", metavar="SPACE|FILE",
                   help="the class space the .cls values index: in1k, in21k, in22k or a file of wnids "
                        "(values outside it are left out and counted); default: raw indices, unnamed")
    p.add_argument("--name", default="foreign", help="the dataset name in index.json (default: foreign)")
    p.add_argument("--storage-options", metavar="JSON|@FILE", help=STORAGE_OPTIONS_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        options = parse_storage_options(args.storage_options)
        wnids = resolve_space(args.classes_in) if args.classes_in else None
        out = Store(args.out, options if protocol_of(args.out) == protocol_of(args.pattern) else None)
        manifest = build_index(args.pattern, out, options, wnids, name=args.name, progress=not args.no_progress)
    except (ImageNetStreamError, OSError) as exc:
        return fail(str(exc))
    skipped = (manifest.extra.get("foreign") or {}).get("skipped") or {}
    left_out = ", ".join(f"{n} {reason}" for reason, n in skipped.items())
    print(f"indexed {manifest.num_samples} samples in {len(manifest.shards)} shards into {out.display_url}"
          + (f" ({left_out} left out)" if left_out else ""))
    print(f"stream them with ImageNetStream({args.out!r})")
    return 0

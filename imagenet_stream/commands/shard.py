"""``imagenet-stream shard SOURCE... --out URL``: verify, deduplicate, pack images into class-mixed shards."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..errors import ImageNetStreamError
from ..sharding.pipeline import NothingKeptError, ShardOptions, ShardResult, shard
from ..sharding.report import format_report
from ..sharding.verify import DEFAULT_MAX_IMAGE_BYTES
from ._common import STORAGE_OPTIONS_HELP, fail, parse_storage_options

HELP = "shard ImageNet (folders, tars of tars, val folder + labels, CSV/JSONL lists) into class-mixed tars"


def _size(text: str) -> int:
    """``1073741824``, ``512M``, ``1G``, ``64KiB`` → bytes."""
    units = {"": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
             "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}
    number = text.strip().lower()
    suffix = number.lstrip("0123456789.")
    digits = number[: len(number) - len(suffix)]
    if not digits or suffix not in units:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1073741824, 512M, 1G)")
    return int(float(digits) * units[suffix])


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The sharding options (shared with ``demo``, which fixes the sources and the output)."""
    p.add_argument("--storage-options", metavar="JSON|@FILE", help=STORAGE_OPTIONS_HELP)
    p.add_argument("--classes", metavar="in1k|in21k|in22k|FILE",
                   help="class space of the .cls indices (default: the smallest standard space holding "
                        "every source wnid)")
    p.add_argument("--seed", type=int, default=0, help="seed of the class-mixing order (default 0)")
    p.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default 1000)")
    p.add_argument("--max-shard-bytes", type=_size, default=1 << 30, metavar="SIZE",
                   help="bytes per shard, e.g. 512M (default 1G)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="verify processes (default: CPU count; 0 or 1 verifies in this process)")
    p.add_argument("--min-size", type=int, default=8, help="reject images narrower or shorter (default 8 px)")
    p.add_argument("--max-image-bytes", type=_size, default=DEFAULT_MAX_IMAGE_BYTES, metavar="SIZE",
                   help="reject source files larger than this, unread (default 64M): a tar member claiming "
                        "gigabytes costs no memory")
    p.add_argument("--resize-short-side", type=int, metavar="N",
                   help="pre-resize so the shorter side is at most N px (FFCV-style)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality of re-encoded images (default 90)")
    p.add_argument("--full-decode", action="store_true",
                   help="verify unchanged JPEGs by a full-size decode (default: a 1/8-scale decode, which "
                        "still entropy-decodes every coefficient, so corrupt or truncated data is caught)")
    p.add_argument("--name", default="imagenet", help="dataset name in the manifest (default imagenet)")
    p.add_argument("--version", dest="dataset_version", metavar="VERSION", default="1",
                   help="dataset version (default 1)")
    p.add_argument("--prefix", default="train", help="shard name prefix: PREFIX-NNNNNN.tar (default train)")
    p.add_argument("--tmp-dir", help="local scratch space for shards in progress and the stream spool "
                                     "(default: the system temp dir)")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already at --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("shard", help=HELP, description=HELP)
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="a folder tree (ROOT/<wnid>/*.JPEG), a tar of per-synset tars (.tar, .tar.gz), "
                        "a flat val folder (with --labels) or a CSV/JSONL list of path,wnid")
    p.add_argument("--out", required=True, metavar="URL",
                   help="dataset root: a path, file://, s3://, memory://")
    p.add_argument("--labels", metavar="FILE", help="labels of a flat val folder (one wnid per line in sorted "
                                                    "file-name order, or filename,wnid rows)")
    add_arguments(p)
    p.set_defaults(func=run)


def options_from_args(args: argparse.Namespace, out: str) -> ShardOptions:
    return ShardOptions(
        out=out, storage_options=parse_storage_options(args.storage_options), classes=args.classes,
        seed=args.seed, shard_size=args.shard_size, max_shard_bytes=args.max_shard_bytes,
        workers=args.workers, min_size=args.min_size, max_image_bytes=args.max_image_bytes,
        resize_short_side=args.resize_short_side,
        quality=args.quality, full_decode=args.full_decode, name=args.name,
        version=args.dataset_version, prefix=args.prefix, tmp_dir=args.tmp_dir, overwrite=args.overwrite,
    )


def progress_factory(disabled: bool) -> Any:
    """A ``ProgressFactory`` over tqdm (or None when disabled)."""
    if disabled:
        return None
    from tqdm import tqdm

    return lambda total: tqdm(total=total, desc="verify", unit="img", dynamic_ncols=True, file=sys.stderr)


def shard_and_report(specs: list[str], args: argparse.Namespace, out: str) -> ShardResult | int:
    """Run the pipeline, print the report; the result, or an exit code on failure."""
    try:
        result = shard(specs, options_from_args(args, out), labels=getattr(args, "labels", None),
                       progress=progress_factory(args.no_progress))
    except NothingKeptError as exc:
        print(format_report(exc.report))
        return fail(str(exc), 1)
    except (ImageNetStreamError, OSError) as exc:
        return fail(str(exc))
    print(format_report(result.report))
    return result


def run(args: argparse.Namespace) -> int:
    result = shard_and_report(list(args.sources), args, args.out)
    return result if isinstance(result, int) else 0

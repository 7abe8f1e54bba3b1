"""``imagenet-stream shard SOURCE... --out URL``: verify, deduplicate, pack images into class-mixed shards."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from imagenet_stream.commands.cli_support import STORAGE_OPTIONS_HELP, fail, parse_storage_options
from imagenet_stream.curation.download import DownloadPolicy
from imagenet_stream.curation.registry import read_registry
from imagenet_stream.curation.votes import DEFAULT_MIN_VOTES, read_votes
from imagenet_stream.errors import ConfigError, ImageNetStreamError, NothingKeptError
from imagenet_stream.sharding.backends import BACKENDS
from imagenet_stream.sharding.coordinator import ShardOptions, ShardResult, shard, status
from imagenet_stream.sharding.report import format_report
from imagenet_stream.sharding.verify_image import DEFAULT_MAX_IMAGE_BYTES

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
                   help="shard worker processes (default: CPU count; 0 or 1 shards in this process); with "
                        "--backend ray, the CPUs of a local Ray instance it starts")
    p.add_argument("--backend", choices=BACKENDS, default="local",
                   help="where shard tasks run: local (a process pool, default) or ray (a Ray cluster: pip "
                        "install 'imagenet-stream[ray]')")
    p.add_argument("--ray-address", metavar="ADDRESS",
                   help="Ray cluster to join (default: $RAY_ADDRESS, else start a local instance)")
    p.add_argument("--source-storage-options", metavar="JSON|@FILE",
                   help="fsspec storage options for s3:// or https:// sources (default: --storage-options)")
    p.add_argument("--staging", metavar="URL",
                   help="where compressed tars (.tar.gz) are staged uncompressed, one inner tar per object "
                        "(default: OUT/.imagenet-stream/staging); about the dataset's size until the run ends")
    p.add_argument("--keep-staging", action="store_true", help="keep the staged inner tars after the run")
    p.add_argument("--io-threads", type=int, default=8, metavar="N",
                   help="concurrent source reads per shard task (default 8; raise it for object storage)")
    p.add_argument("--index-threads", type=int, default=8, metavar="N",
                   help="inner tars indexed at once when listing a remote tar (default 8)")
    p.add_argument("--min-size", type=int, default=8, help="reject images narrower or shorter (default 8 px)")
    p.add_argument("--max-image-bytes", type=_size, default=DEFAULT_MAX_IMAGE_BYTES, metavar="SIZE",
                   help="reject source files larger than this, unread (default 64M): a tar member claiming "
                        "gigabytes costs no memory")
    p.add_argument("--resize-short-side", type=int, metavar="N",
                   help="pre-resize so the shorter side is at most N px (FFCV-style)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality of re-encoded images (default 90)")
    p.add_argument("--full-decode", action="store_true",
                   help="verify unchanged JPEGs by a full-size decode (default: a 1/4-scale decode, which "
                        "still entropy-decodes every coefficient, so corrupt or truncated data is caught)")
    p.add_argument("--name", default="imagenet", help="dataset name in the manifest (default imagenet)")
    p.add_argument("--version", dest="dataset_version", metavar="VERSION", default="1",
                   help="dataset version (default 1)")
    p.add_argument("--keep-metadata", action="store_true",
                   help="store JPEGs with their EXIF (GPS, camera serial, owner), XMP, IPTC, comments and trailers; "
                        "by default these are removed losslessly (the pixels are untouched; ICC profiles kept)")
    p.add_argument("--opt-out", metavar="FILE",
                   help="an opt-out / takedown registry: sample keys or sha256:HEX digests of source files, one "
                        "per line, optionally TAB REASON; matching images are rejected with that reason")
    p.add_argument("--votes", metavar="FILE",
                   help="human-verification votes (CSV/TSV/JSONL: key,yes,no or key,annotator,answer): keep an image "
                        "only with a strict majority of yes votes and at least --min-votes votes; the others are "
                        "never read (or downloaded); the votes go into each sample's metadata")
    p.add_argument("--min-votes", type=int, default=DEFAULT_MIN_VOTES, metavar="N",
                   help=f"votes an image needs besides a yes majority (default {DEFAULT_MIN_VOTES}: the smallest count "
                        "where one careless answer cannot decide)")
    p.add_argument("--download-timeout", type=float, default=DownloadPolicy.timeout, metavar="S",
                   help=f"URL lists: seconds a request may wait for a connection or data (default {DownloadPolicy.timeout:g})")
    p.add_argument("--download-attempts", type=int, default=DownloadPolicy.attempts, metavar="N",
                   help=f"URL lists: tries per URL on 429, 5xx, timeouts and resets, with exponential backoff and "
                        f"full jitter, honouring Retry-After (default {DownloadPolicy.attempts})")
    p.add_argument("--download-backoff", type=float, default=DownloadPolicy.backoff, metavar="S",
                   help=f"URL lists: base of the exponential backoff between tries (default {DownloadPolicy.backoff:g} s; "
                        f"waits are drawn from [0, min({DownloadPolicy.max_backoff:g}, S * 2^try)])")
    p.add_argument("--per-host", type=int, default=DownloadPolicy.per_host, metavar="N",
                   help=f"URL lists: requests in flight to one host per process (default {DownloadPolicy.per_host})")
    p.add_argument("--host-rate", type=float, default=None, metavar="R",
                   help="URL lists: at most R requests per second to one host per process (default: no limit)")
    p.add_argument("--status-format", choices=("auto", "parquet", "jsonl"), default="auto",
                   help="URL lists: the per-shard download status files beside the shards (default auto: Parquet "
                        "where pyarrow is installed, else JSON lines)")
    p.add_argument("--ignore-robots-tag", action="store_true",
                   help="URL lists: keep images whose server says X-Robots-Tag: noai / noimageai (by default "
                        "they are skipped and counted as skipped_by_robots)")
    p.add_argument("--terms", metavar="FILE|TEXT",
                   help="the dataset's terms of use, kept in index.json (e.g. ImageNet's non-commercial research "
                        "terms); a path to a text file, or the text itself")
    p.add_argument("--licence", metavar="TEXT", help="the licence of the images, kept in index.json")
    p.add_argument("--prefix", default="train", help="shard name prefix: PREFIX-NNNNNN.tar (default train)")
    p.add_argument("--tmp-dir", help="local scratch space: the listing's names and the duplicate buckets, about "
                                     "70 bytes per image (default: the system temp dir)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a dataset or an unfinished run of other sources/options at --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("shard", help=HELP, description=HELP)
    p.add_argument("sources", nargs="*", metavar="SOURCE",
                   help="a folder tree (ROOT/<wnid>/*.JPEG), a tar of per-synset tars (.tar, .tar.gz), "
                        "a flat val folder (with --labels) or a CSV/JSONL list of path,wnid; a path or a "
                        "URL (s3://, https://...)")
    p.add_argument("--out", required=True, metavar="URL",
                   help="dataset root: a path, file://, s3://, memory://. Re-running the same command on "
                        "the same --out after a crash resumes it")
    p.add_argument("--status", action="store_true", help="say how far the run at --out got, and exit")
    p.add_argument("--labels", metavar="FILE", help="labels of a flat val folder (one wnid per line in sorted "
                                                    "file-name order, or filename,wnid rows)")
    add_arguments(p)
    p.set_defaults(func=run)


def options_from_args(args: argparse.Namespace, out: str) -> ShardOptions:
    source_options = getattr(args, "source_storage_options", None)
    return ShardOptions(
        out=out, storage_options=parse_storage_options(args.storage_options),
        source_storage_options=parse_storage_options(source_options, env={}) if source_options else None,
        classes=args.classes, seed=args.seed, shard_size=args.shard_size, max_shard_bytes=args.max_shard_bytes,
        workers=args.workers, backend=args.backend, ray_address=args.ray_address, min_size=args.min_size,
        max_image_bytes=args.max_image_bytes, resize_short_side=args.resize_short_side, quality=args.quality,
        full_decode=args.full_decode, name=args.name, version=args.dataset_version, prefix=args.prefix,
        tmp_dir=args.tmp_dir, staging=args.staging, keep_staging=args.keep_staging, overwrite=args.overwrite,
        io_threads=args.io_threads, index_threads=args.index_threads,
        keep_metadata=getattr(args, "keep_metadata", False),
        opt_out=read_registry(args.opt_out) if getattr(args, "opt_out", None) else None,
        terms=read_terms(getattr(args, "terms", None)), licence=getattr(args, "licence", None),
        votes=read_votes(args.votes) if getattr(args, "votes", None) else None,
        min_votes=getattr(args, "min_votes", DEFAULT_MIN_VOTES),
        download=DownloadPolicy(timeout=args.download_timeout, attempts=args.download_attempts,
                                backoff=args.download_backoff,
                                per_host=args.per_host, host_rate=args.host_rate,
                                honor_robots=not args.ignore_robots_tag),
        status_format=args.status_format,
    )


def read_terms(spec: str | None) -> str | None:
    """``--terms``: the text of a file when ``spec`` names one, else ``spec`` itself."""
    if spec is None:
        return None
    if os.path.isfile(spec):
        try:
            with open(spec, encoding="utf-8") as f:
                return f.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the terms file {spec}: {exc}") from None
    return spec.strip()


def progress_factory(disabled: bool) -> Any:
    """A ``ProgressFactory`` over tqdm (or None when disabled): ``index`` counts listed images (total
    unknown), ``shard`` verified images over the planned total, with shards done in its postfix."""
    if disabled:
        return None
    from tqdm import tqdm

    def make(what: str, total: int | None, initial: int) -> Any:
        desc, unit = ("index", "img") if what == "index" else ("shard", "img")
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, file=sys.stderr,
                    smoothing=0.05)
    return make


def shard_and_report(specs: list[str], args: argparse.Namespace, out: str) -> ShardResult | int:
    """Run the sharder, print the report; the result, or an exit code on failure."""
    try:
        result = shard(specs, options_from_args(args, out), labels=getattr(args, "labels", None),
                       progress=progress_factory(args.no_progress))
    except NothingKeptError as exc:
        print(format_report(exc.report))
        return fail(str(exc), 1)
    except KeyboardInterrupt:
        return fail("interrupted; the shards committed so far are kept: re-run the same command to resume", 130)
    except (ImageNetStreamError, OSError) as exc:
        return fail(str(exc))
    if result.already_complete:
        print(f"{out} is already complete (the same command finished earlier): nothing to do")
    elif result.resumed_shards:
        print(f"resumed: {result.resumed_shards} shard(s) were done already and kept as they are")
    print(format_report(result.report, None if result.already_complete else result.seconds))
    return result


def print_status(args: argparse.Namespace) -> int:
    try:
        info = status(args.out, parse_storage_options(args.storage_options))
    except (ImageNetStreamError, OSError) as exc:
        return fail(str(exc))
    if info["state"] == "complete":
        print(f"{info['out']}: complete, {info['samples']} samples in {info['shards']} shards "
              f"({info['excluded']} excluded)")
    elif info["state"] == "empty":
        print(f"{info['out']}: no sharding run here")
    else:
        listed = "listed" if info["listed"] else "listing not finished"
        print(f"{info['out']}: running since {info['started']}: {listed}, plan {info['plan'] or '-'}, "
              f"{info['shards_done']}/{info['shards']} shards done ({info['records']} images planned)")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.status:
        return print_status(args)
    if not args.sources:
        return fail("give at least one SOURCE (or --status)")
    result = shard_and_report(list(args.sources), args, args.out)
    return result if isinstance(result, int) else 0

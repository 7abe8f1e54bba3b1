"""``imagenet-stream bench URL [--workers N]``: stream a dataset through a DataLoader and print img/s."""
from __future__ import annotations

import argparse

from imagenet_stream.commands.cli_support import STORAGE_OPTIONS_HELP, fail, parse_storage_options
from imagenet_stream.commands.epoch_run import stream_epoch
from imagenet_stream.errors import ImageNetStreamError
from imagenet_stream.streaming.decoding.presets import PRESETS
from imagenet_stream.streaming.stage_times import STAGE_COUNTERS, format_breakdown

HELP = "stream a dataset through a torch DataLoader (decode + crop included) and print images per second"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help=HELP, description=HELP)
    p.add_argument("url", metavar="URL", help="dataset root (holding index.json) or a brace URL of shards")
    p.add_argument("--workers", type=int, default=4, metavar="N", help="DataLoader workers (default 4)")
    p.add_argument("--batch-size", type=int, default=256, metavar="B", help="batch size (default 256)")
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="decode_threads: decode each batch on N threads of every iterating process (default 0)")
    p.add_argument("--batched", action="store_true",
                   help="the stream yields whole batches, decoded into one tensor (DataLoader batch_size=None)")
    p.add_argument("--batches", type=int, default=None, metavar="K",
                   help="stop after K batches (default: one full epoch of this rank)")
    presets = "; ".join(f"{name}: {preset.help}" for name, preset in PRESETS.items())
    p.add_argument("--transform", choices=(*PRESETS, "none"), default="train",
                   help=f"decode preset: {presets}; none: the whole decoded image (default train)")
    p.add_argument("--size", type=int, default=224, help="output side (default 224)")
    p.add_argument("--epoch", type=int, default=0, help="epoch to stream (default 0)")
    p.add_argument("--cache-dir", default=None, help="local shard cache for remote datasets")
    p.add_argument("--storage-options", metavar="JSON|@FILE", help=STORAGE_OPTIONS_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from torch.utils.data import DataLoader

    from imagenet_stream.streaming.dataset import ImageNetStream

    if (args.workers < 0 or args.threads < 0 or args.batch_size < 1
            or (args.batches is not None and args.batches < 1)):
        return fail("--workers and --threads must be >= 0, --batch-size and --batches >= 1")
    if args.batched and args.transform == "none":
        return fail("--batched needs images of one size: use a --transform preset")
    try:
        ds = ImageNetStream(args.url, transform=None if args.transform == "none" else args.transform,
                            size=args.size, batch_size=args.batch_size, cache_dir=args.cache_dir,
                            storage_options=parse_storage_options(args.storage_options),
                            decode_threads=args.threads, batched=args.batched)
        ds.set_epoch(args.epoch)
    except (ImageNetStreamError, OSError, ValueError) as exc:
        return fail(str(exc))
    if args.transform == "none":  # full images differ in size: keep them as lists
        loader = DataLoader(ds, batch_size=args.batch_size, num_workers=args.workers, collate_fn=list)
    else:
        loader = DataLoader(ds, batch_size=None if args.batched else args.batch_size, num_workers=args.workers)
    count = len if args.transform == "none" else (lambda b: len(b[0]))
    result = stream_epoch(loader, max_batches=args.batches, desc="bench", no_progress=args.no_progress,
                          count=count, stats=ds.stats)
    print(f"{result.images} images in {result.seconds:.2f} s: {result.images_per_second:.1f} img/s "
          f"({args.workers} workers, {args.threads} decode threads, batch {args.batch_size}"
          f"{' (batched)' if args.batched else ''}, transform {args.transform}, size {args.size})")
    if result.first_batch_seconds is not None:
        print(f"time to first batch: {result.first_batch_seconds:.2f} s")
    stats = ds.stats()
    print("stats: " + ", ".join(f"{k}={v}" for k, v in stats.items() if v and k not in STAGE_COUNTERS))
    print(f"stages ({'summed over the ' + str(args.workers) + ' workers' if args.workers else 'this process'}): "
          + format_breakdown(stats))
    print("  wait for bytes: storage is behind; decode/transform: the CPU is; collate and consumer: "
          + ("the main process (or your model) takes the batches slower than the workers make them"
             if args.workers else "collating and the loop body"))
    return 0

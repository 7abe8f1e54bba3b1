"""The ``imagenet-stream`` command line: one sub-command per module in ``imagenet_stream.commands``.

Each command module exposes ``add_parser(subparsers)`` (registering its arguments and setting
``func``) and does its work in a ``run(args) -> int`` function.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from imagenet_stream import __version__

#: Command modules under imagenet_stream/commands/, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = ("shard", "index", "exclude", "split", "dedup", "inspect", "demo", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imagenet-stream", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"imagenet-stream {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__package__}.commands.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():  # log lines go above a progress bar, never into its line
        return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

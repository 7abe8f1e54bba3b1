"""``imagenet-stream inspect URL [--verify]``: summarize a manifest; optionally re-check every byte."""
from __future__ import annotations

import argparse
import sys

from imagenet_stream.commands.cli_support import STORAGE_OPTIONS_HELP, fail, parse_storage_options
from imagenet_stream.errors import ImageNetStreamError
from imagenet_stream.format import Manifest
from imagenet_stream.format.integrity import check_dataset
from imagenet_stream.format.names import REPORT_NAME
from imagenet_stream.sharding.report import format_curation
from imagenet_stream.storage import Store
from imagenet_stream.units import format_size

HELP = "print a dataset's manifest summary; --verify re-hashes every shard and checks every offset"
TOP_CLASSES = 10


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help=HELP, description=HELP)
    p.add_argument("url", metavar="URL", help="dataset root (holding index.json)")
    p.add_argument("--verify", action="store_true",
                   help="re-read every shard, side index and labels.bin; exit 1 on any mismatch")
    p.add_argument("--storage-options", metavar="JSON|@FILE", help=STORAGE_OPTIONS_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report (class treemap, "
                   "rejected images, near-duplicates, link rot, lineage, shard sizes, random samples)")
    p.add_argument("--dedup", metavar="DIR", help="with --html: a dedup report folder (imagenet-stream dedup --out DIR) "
                   "whose near-duplicate pairs the report shows side by side")
    p.add_argument("--grid", type=int, default=24, metavar="N", help="with --html: random samples shown (default 24)")
    p.add_argument("--seed", type=int, default=0, help="with --html: seed of the random samples (default 0)")
    p.set_defaults(func=run)


def _wordnet_names() -> dict[str, str] | None:
    """wnid → first WordNet lemma, when the hierarchy data can be loaded."""
    try:
        from imagenet_stream.hierarchy.graph import short_names

        return short_names()
    except Exception:  # noqa: BLE001 - names are a nicety; the summary works without them
        return None


def summarize(manifest: Manifest, url: str) -> str:
    """The manifest summary printed by ``inspect``."""
    m = manifest
    present = sum(1 for c in m.class_counts if c)
    lines = [
        f"dataset   {m.name} version {m.version} at {url}",
        f"created   {m.created} by {m.tool} (format {m.format_version})",
        f"samples   {m.num_available}" + (f" ({m.num_samples} in the shards, {m.num_samples - m.num_available} "
                                          f"excluded: " + ", ".join(f"{r} {n}" for r, n in m.exclusions.reasons.items())
                                          + ")" if m.exclusions is not None else ""),
        f"classes   {present} of {m.classes.num_classes} in space {m.classes.space} "
        f"(sha256 {m.classes.sha256[:12]}…)",
        f"shards    {len(m.shards)}, {format_size(m.total_bytes)} ({m.total_bytes} bytes)",
    ]
    if m.targets is not None:
        lines.insert(-1, f"targets   {m.targets.num_classes} classes in space {m.targets.space} (this version's own; "
                         "streamed targets index it)")
    if m.shards:
        sizes = m.sample_counts
        lines.append(f"          {m.shards[0].name} … {m.shards[-1].name}, "
                     f"{min(sizes)}–{max(sizes)} samples each")
    for n, step in enumerate(m.extra.get("lineage") or [], 1):
        if not isinstance(step, dict):
            continue
        excluded = ", ".join(f"{reason} {count}" for reason, count in (step.get("excluded") or {}).items()) or "nothing"
        lines.append(f"lineage   {n}. from {step.get('parent_name')} version {step.get('parent_version')} at "
                     f"{step.get('parent')} (index.json sha256 {str(step.get('parent_sha256'))[:12]}…): "
                     f"excluded {excluded}" + (f"; synsets {', '.join(step['synsets'])}" if step.get("synsets") else "")
                     + (f"; note: {step['note']}" if step.get("note") else ""))
    if m.shards_at:
        lines.append(f"shards at {m.shards_at}")
    if m.extra.get("licence"):
        lines.append(f"licence   {m.extra['licence']}")
    terms = m.extra.get("terms")
    if terms:
        lines.append("terms     " + "\n          ".join(str(terms).splitlines()))
    names = _wordnet_names() or {}
    top = sorted(range(len(m.class_counts)), key=lambda i: (-m.class_counts[i], i))[:TOP_CLASSES]
    top = [i for i in top if m.class_counts[i]]
    if top:
        lines.append("top classes:")
        for i in top:
            wnid = m.classes.wnids[i]
            lines.append(f"  {i:>6}  {wnid}  {m.class_counts[i]:>8}  {names.get(wnid, '')}".rstrip())
    return "\n".join(lines)


def _sharding_report(store: Store, manifest: Manifest) -> dict:
    """The ``report.json`` of the run that made the shards (beside them; a version has none of its
    own), or ``{}``."""
    import json

    where = store.elsewhere(manifest.shards_at)
    try:
        return json.loads(where.read(REPORT_NAME)) if where.exists(REPORT_NAME) else {}
    except (ImageNetStreamError, OSError, ValueError):
        return {}


def run(args: argparse.Namespace) -> int:
    try:
        store = Store(args.url, parse_storage_options(args.storage_options))
        manifest = Manifest.load(store)
    except (ImageNetStreamError, OSError, ValueError) as exc:  # ValueError: an unknown URL protocol
        return fail(str(exc))
    print(summarize(manifest, args.url))
    for line in format_curation(_sharding_report(store, manifest)):
        print(line)
    if args.html:
        from imagenet_stream.visual.page import write_report

        if args.grid < 0:
            return fail("--grid must be >= 0")
        try:
            size = write_report(args.url, args.html, parse_storage_options(args.storage_options), dedup=args.dedup,
                                grid=args.grid, seed=args.seed)
        except (ImageNetStreamError, OSError, ValueError) as exc:
            return fail(f"report: {exc}")
        print(f"report: {args.html} ({size / 1e6:.1f} MB)")
    if not args.verify:
        return 0
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(manifest.shards), desc="verify", unit="shard", file=sys.stderr,
                   dynamic_ncols=True)
    try:
        problems = check_dataset(store, manifest, on_shard=(lambda _entry: bar.update(1)) if bar else None)
    except (ImageNetStreamError, OSError) as exc:
        return fail(f"verification stopped: {exc}", 1)
    finally:
        if bar is not None:
            bar.close()
    if problems:
        print(f"verify: FAILED, {len(problems)} problem(s):")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(f"verify: OK ({len(manifest.shards)} shards, {manifest.num_samples} samples, every checksum, "
          f"offset and label matches)")
    return 0

"""Train <-> val leakage search at ImageNet-21k scale: 14.2M stored hashes against 50k queries.

    python benchmarks/leakage_scale.py                        # 14.2M x 50k (a few minutes, < 2 GB)
    python benchmarks/leakage_scale.py --stored 1420000       # quick

The hashes are simulated (the search never looks at images): ``--stored`` uniform 64-bit hashes
stand for the training set, and ``--queries`` hashes for the val set, of which ``--planted`` are
near copies of stored hashes (0 to ``--max-distance`` bits flipped, uniformly) and the rest new
ones. Measured: building the index (:class:`~imagenet_stream.curation.hash_index.HashIndex`), the
search (every pair within the distance), the peak RSS of the process, and that every planted pair
is found and nothing else is. Uniform hashes are the index's best case (equal buckets); real
perceptual hashes cluster somewhat, so buckets vary (see docs/CURATION.md). The table goes between
the leakage-scale markers of benchmarks/RESULTS.md (``--results``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import report  # noqa: E402

from imagenet_stream.curation.hash_index import HashIndex, all_pairs  # noqa: E402

BEGIN, END = "<!-- leakage-scale:begin -->", "<!-- leakage-scale:end -->"


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def flip_bits(values: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``values`` with ``counts[i]`` distinct random bits flipped in value ``i``."""
    out = values.copy()
    for i, k in enumerate(counts.tolist()):
        bits = rng.choice(64, size=k, replace=False)
        out[i] ^= np.uint64(sum(1 << int(b) for b in bits))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stored", type=int, default=14_197_122)
    parser.add_argument("--queries", type=int, default=50_000)
    parser.add_argument("--planted", type=int, default=5_000)
    parser.add_argument("--max-distance", type=int, default=10)
    parser.add_argument("--bands", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    stored = rng.integers(0, np.iinfo(np.int64).max, size=args.stored, dtype=np.int64).astype(np.uint64)
    stored ^= rng.integers(0, 2, size=args.stored, dtype=np.uint64) << np.uint64(63)
    sources = rng.choice(args.stored, size=args.planted, replace=False)
    flipped = rng.integers(0, args.max_distance + 1, size=args.planted)
    queries = np.concatenate([flip_bits(stored[sources], flipped, rng),
                              rng.integers(0, np.iinfo(np.int64).max, size=args.queries - args.planted,
                                           dtype=np.int64).astype(np.uint64)])
    base_rss = peak_rss_mb()

    started = time.perf_counter()
    index = HashIndex(stored, bands=args.bands)
    build = time.perf_counter() - started
    started = time.perf_counter()
    q, s, d = all_pairs(index, queries, args.max_distance)
    search = time.perf_counter() - started
    peak = peak_rss_mb()

    found = set(zip(q.tolist(), s.tolist()))
    planted = set(zip(range(args.planted), sources.tolist()))
    recall = len(found & planted) / max(1, len(planted))
    extra = len(found - planted)
    probes = index.probes_per_query(args.max_distance)
    rows = [
        f"`python benchmarks/leakage_scale.py --stored {args.stored} --queries {args.queries}` "
        f"(max distance {args.max_distance}, {index.bands} bands of {'/'.join(map(str, index.widths))} bits, "
        f"{probes:,} probes per query; {time.strftime('%Y-%m-%d')})",
        "",
        "| stored | queries | build index | search | per query | pairs found | planted found | other pairs | "
        "peak RSS (hashes alone) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {args.stored:,} | {args.queries:,} | {build:.1f} s | {search:.1f} s | {1e3 * search / args.queries:.2f} ms "
        f"| {len(found):,} | {recall:.1%} of {args.planted:,} | {extra:,} | {peak:.0f} MB ({base_rss:.0f} MB) |",
    ]
    body = "\n".join(rows)
    print(body)
    report.replace_section(args.results, BEGIN, END, body,
                           "\n## Leakage search at scale (`benchmarks/leakage_scale.py`)\n\n")


if __name__ == "__main__":
    main()

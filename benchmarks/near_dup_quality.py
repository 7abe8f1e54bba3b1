"""Precision and recall of the perceptual hash on planted near-duplicates, per edit and distance.

    python benchmarks/near_dup_quality.py                  # 1,000 originals, 5 edits each (~2 min)

``--originals`` photo-like images (``synthetic.natural_array``: a 1/f spectrum and hard-edged
objects, 200-640 px a side) play the training set. Each gets one copy per edit of
``synthetic.EDITS`` (resized 40-80 %, recompressed at quality 20-45, cropped up to 2.5 % a side,
flipped, colour-jittered), which play leaked val images; ``--distractors`` other images play the
rest of val. For each distance D: **recall** = planted pairs found / planted pairs, **precision** =
planted pairs found / all pairs found between val and train. Hashes are computed the way the
sharder does (the 1/8-scale verification decode of a JPEG). Prints a table; docs/CURATION.md
quotes it.
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from imagenet_stream.curation.hash_index import HashIndex, all_pairs  # noqa: E402
from imagenet_stream.curation.phash import SIDE, perceptual_hash  # noqa: E402
from imagenet_stream.synthetic import EDITS, encode, natural_array, near_copy  # noqa: E402


def sharder_hash(data: bytes) -> int:
    """The hash as verify computes it: a draft decode at 1/8 scale (at least 32 px), then the hash."""
    im = Image.open(io.BytesIO(data))
    w, h = im.size
    im.draft(im.mode, (max(min(w, SIDE), w // 4), max(min(h, SIDE), h // 4)))
    return perceptual_hash(im)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--originals", type=int, default=1000)
    parser.add_argument("--distractors", type=int, default=1000)
    parser.add_argument("--distances", default="6,8,10,12")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    train, copies, edits, sources = [], [], [], []
    for i in range(args.originals):
        w, h = int(rng.integers(200, 641)), int(rng.integers(200, 481))
        data = encode(Image.fromarray(natural_array(w, h, i)), "JPEG", quality=90)
        train.append(sharder_hash(data))
        for edit in EDITS:
            copies.append(sharder_hash(near_copy(data, edit, seed=i)))
            edits.append(edit)
            sources.append(i)
    others = []
    for j in range(args.distractors):
        w, h = int(rng.integers(200, 641)), int(rng.integers(200, 481))
        others.append(sharder_hash(encode(Image.fromarray(natural_array(w, h, 1_000_000 + j)), "JPEG", quality=90)))
    queries = np.asarray(copies + others, dtype=np.uint64)
    index = HashIndex(np.asarray(train, dtype=np.uint64))
    edits_arr, sources_arr = np.asarray(edits), np.asarray(sources)
    print(f"{args.originals} originals x {len(EDITS)} edits + {args.distractors} distractors, "
          f"hashed in {time.perf_counter() - started:.0f} s\n")
    header = "| D | " + " | ".join(f"recall {e}" for e in EDITS) + " | recall | precision | false pairs |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for d in (int(x) for x in args.distances.split(",")):
        q, s, _ = all_pairs(index, queries, d)
        planted = (q < len(copies)) & (s == sources_arr[np.minimum(q, len(copies) - 1)])
        hit = np.zeros(len(copies), dtype=bool)
        hit[q[planted]] = True
        per_edit = [hit[edits_arr == e].mean() for e in EDITS]
        precision = planted.sum() / max(1, len(q))
        print(f"| {d} | " + " | ".join(f"{r:.1%}" for r in per_edit)
              + f" | {hit.mean():.1%} | {precision:.2%} | {int((~planted).sum())} |")


if __name__ == "__main__":
    main()

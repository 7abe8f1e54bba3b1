"""Would a ``decode="fast"`` mode pay? libjpeg's fast integer IDCT and plain (box) chroma upsampling
against the exact settings the loader uses (ISLOW IDCT, fancy upsampling), on the realistic photos:

    python benchmarks/fast_decode.py            # 1,000 realistic photos (generated once, cached)
    python benchmarks/fast_decode.py --quick    # 100 photos, smoke run

Both through Pillow (the same libjpeg-turbo the region decoder binds): a draft decode at the DCT
scales the train crops use (1, 1/2, 1/4), ``decoderconfig = (scale, 0)`` (exact) against
``(scale, 1)`` (Pillow's fast draft settings). CPU time per image, best of the interleaved rounds,
and the pixel error of the fast decode (mean and 99th percentile absolute difference, in levels).
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workload  # noqa: E402

SCALES = (1, 2, 4)


def decode(data: bytes, scale: int, fast: bool) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    if scale > 1:
        im.draft(im.mode, (im.size[0] // scale, im.size[1] // scale))
    im.decoderconfig = (im.decoderconfig[0] if im.decoderconfig else 1, int(fast))
    im.load()
    return im


def cpu_per_image(blobs: list[bytes], scale: int, fast: bool) -> float:
    start = time.process_time()
    for data in blobs:
        decode(data, scale, fast)
    return (time.process_time() - start) / len(blobs)


def pixel_error(blobs: list[bytes], scale: int) -> tuple[float, float]:
    diffs = [np.abs(np.asarray(decode(d, scale, False).convert("RGB"), np.int16)
                    - np.asarray(decode(d, scale, True).convert("RGB"), np.int16)).ravel() for d in blobs]
    every = np.concatenate(diffs)
    return float(every.mean()), float(np.percentile(every, 99))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "imagenet-stream-bench"))
    p.add_argument("--quick", action="store_true", help="100 photos, one round")
    args = p.parse_args()
    if args.quick:
        args.count, args.rounds = 100, 1
    root = Path(args.work, workload.cache_name(args.count, 100, realistic=True))
    images = workload.generate(str(root), args.count, 100, workers=2, realistic=True)
    blobs = [Path(path).read_bytes() for path in images.paths]
    jpegs = [b for b, path in zip(blobs, images.paths) if Image.open(path).mode != "CMYK"]
    print(workload.describe(images))
    print(f"{'scale':>6} {'exact us':>9} {'fast us':>8} {'fast/exact':>10} {'mean err':>9} {'p99 err':>8}")
    for scale in SCALES:
        best = {False: float("inf"), True: float("inf")}
        for _ in range(args.rounds):
            for fast in (False, True):
                best[fast] = min(best[fast], cpu_per_image(jpegs, scale, fast))
        mean, p99 = pixel_error(jpegs[:200], scale)
        print(f"{'1/' + str(scale):>6} {best[False] * 1e6:9.0f} {best[True] * 1e6:8.0f} "
              f"{best[False] / best[True]:9.2f}x {mean:9.2f} {p99:8.0f}")


if __name__ == "__main__":
    main()

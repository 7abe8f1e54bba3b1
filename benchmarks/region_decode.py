"""Region decode vs the Pillow path: TrainTransform / EvalTransform img/s on one core, same images.

Both paths give identical tensors (tests/streaming/test_jpeg_region.py); this measures what decoding
only the crop buys. The images are the harness's generated set (benchmarks/workload.py: ImageNet's
size spread, 2.3% grayscale, quality 94), or ``--images DIR`` for a real ``DIR/<wnid>/*.JPEG`` tree.
Rates are images per CPU-second of this process with one torch thread (``bare_limit``), best of
``--rounds`` interleaved rounds, so other load on the machine skews them little; the load average is
printed before and after. Run: ``python benchmarks/region_decode.py``.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch
import workload  # benchmarks/ is sys.path[0] when this file runs as a script
from decode_limit import bare_limit

from imagenet_stream.streaming.decoding import jpeg_region
from imagenet_stream.streaming.decoding.transforms import EvalTransform, TrainTransform


def measure(jpegs: list[bytes], seconds: float, rounds: int) -> dict[tuple[str, str], float]:
    """Best img/s per (preset, path), the four measurements interleaved in every round."""
    presets = {"train": TrainTransform(), "eval": EvalTransform()}
    best: dict[tuple[str, str], float] = {}
    for _ in range(rounds):
        for name, transform in presets.items():
            for path in ("native", "pillow"):
                if path == "pillow":
                    with jpeg_region.pillow_only():
                        rate = bare_limit(jpegs, seconds / rounds, transform)
                else:
                    rate = bare_limit(jpegs, seconds / rounds, transform)
                best[name, path] = max(best.get((name, path), 0.0), rate)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="generated images (default 300)")
    parser.add_argument("--images", help="a real DIR/<wnid>/*.JPEG tree instead of generated images")
    parser.add_argument("--seconds", type=float, default=20.0, help="CPU seconds per measurement, all rounds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "imagenet-stream-bench"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not jpeg_region.available():
        raise SystemExit(f"the native region decoder is not in use: {jpeg_region.status()}")
    if args.images:
        images = workload.from_folder(args.images, args.count)
    else:
        root = Path(args.work) / workload.cache_name(args.count, min(100, args.count))
        images = workload.generate(str(root), args.count, min(100, args.count))
    jpegs = [Path(p).read_bytes() for p in images.paths]
    taken = sum(jpeg_region.header(j) is not None for j in jpegs)
    print(f"{workload.describe(images)}; {taken} of {len(jpegs)} taken by the region decoder")
    print(f"decoder: {jpeg_region.status()}")
    load_before = os.getloadavg()
    rate = measure(jpegs, args.seconds, args.rounds)
    load_after = os.getloadavg()
    print(f"load average (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f} "
          f"on {os.cpu_count()} cores")
    for name in ("train", "eval"):
        native, pillow = rate[name, "native"], rate[name, "pillow"]
        print(f"{name:5s}: native {native:7.1f} img/s, Pillow path {pillow:7.1f} img/s, "
              f"ratio {native / pillow:.2f}x")


if __name__ == "__main__":
    main()

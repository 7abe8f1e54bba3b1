"""Where ImageNetStream's time goes, in one process: ``python benchmarks/profile_loader.py DATASET``.

CPU time (this process, all its threads), so other load on the machine barely matters:

* **bare**: ``TrainTransform`` over the dataset's own JPEG bytes in a loop (the decode limit);
* **loader**: ``DataLoader(ImageNetStream(...), num_workers=0)`` over the same dataset;
* **overhead**: the loader with a transform that returns a fixed tensor: everything but decoding.

Rounds are interleaved and the best of each kept. ``--profile`` adds a cProfile listing of the
loader (the decode thread only: the prefetch thread's reads are in the overhead figure).
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))

from imagenet_stream.format import MANIFEST_NAME, Manifest, SideIndex  # noqa: E402
from imagenet_stream.streaming import ImageNetStream  # noqa: E402
from imagenet_stream.streaming.decoding.transforms import BytesTransform, TrainTransform  # noqa: E402


class FixedTensor(BytesTransform):
    """Ignores the bytes: a loader with it costs everything except the decode."""

    def __init__(self, size: int = 224) -> None:
        self.size = size
        self._out = torch.zeros(3, size, size, dtype=torch.uint8)

    def __call__(self, data: Any, rng: np.random.Generator | None = None) -> torch.Tensor:
        return self._out


def dataset_jpegs(root: str) -> list[bytes]:
    """Every image's bytes of a local dataset, sliced with the side indexes."""
    manifest = Manifest.from_json(Path(root, MANIFEST_NAME).read_text())
    out = []
    for shard in manifest.shards:
        index = SideIndex.from_bytes(Path(root, shard.index).read_bytes())
        data = Path(root, shard.name).read_bytes()
        for i in range(index.num_samples):
            start = int(index.image_offsets[i])
            out.append(data[start:start + int(index.image_sizes[i])])
    return out


def bare_cpu(jpegs: list[bytes]) -> float:
    fn, rng = TrainTransform(), np.random.default_rng(0)
    start = time.process_time()
    for data in jpegs:
        fn(data, rng)
    return len(jpegs) / (time.process_time() - start)


def loader_cpu(root: str, transform: Any, batch_size: int, options: dict[str, Any]) -> float:
    ds = ImageNetStream(root, shuffle=True, seed=0, transform=transform, batch_size=batch_size, **options)
    start, n = time.process_time(), 0
    for batch in DataLoader(ds, batch_size=batch_size, num_workers=0):
        n += len(batch[1])
    return n / (time.process_time() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset", help="a local dataset root (index.json), e.g. the one run.py shards")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--profile", action="store_true", help="print a cProfile listing of the loader")
    args = p.parse_args()
    torch.set_num_threads(1)
    jpegs = dataset_jpegs(args.dataset)
    best = {"bare": 0.0, "loader": 0.0, "overhead": 0.0}
    for _ in range(args.rounds):
        best["bare"] = max(best["bare"], bare_cpu(jpegs))
        best["loader"] = max(best["loader"], loader_cpu(args.dataset, "train", args.batch_size, {}))
        best["overhead"] = max(best["overhead"], loader_cpu(args.dataset, FixedTensor(), args.batch_size, {}))
    print(f"{len(jpegs)} images; best of {args.rounds} rounds, images per CPU-second of this process")
    print(f"bare TrainTransform:        {best['bare']:8.0f}")
    print(f"ImageNetStream workers=0:   {best['loader']:8.0f}  ({best['loader'] / best['bare']:.3f}x bare)")
    print(f"loader without decoding:    {best['overhead']:8.0f}  ({1e6 / best['overhead']:.0f} us CPU per sample; "
          f"decode {1e6 / best['bare']:.0f} us)")
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(loader_cpu, args.dataset, "train", args.batch_size, {})
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())


if __name__ == "__main__":
    main()

"""Where ImageNetStream's time goes, in one process: ``python benchmarks/profile_loader.py DATASET``.

CPU time (this process, all its threads), so other load on the machine barely matters:

* **bare**: ``TrainTransform`` in a loop over the very samples and crops the loader makes (its
  bytes and each sample's generator state, recorded in a first pass; the generators are built
  before the clock starts): the decode limit, on the same work;
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

from imagenet_stream.streaming import ImageNetStream  # noqa: E402
from imagenet_stream.streaming.decoding.transforms import BytesTransform, TrainTransform  # noqa: E402


class FixedTensor(BytesTransform):
    """Ignores the bytes: a loader with it costs everything except the decode."""

    def __init__(self, size: int = 224) -> None:
        self.size = size
        self._out = torch.zeros(3, size, size, dtype=torch.uint8)

    def __call__(self, data: Any, rng: np.random.Generator | None = None) -> torch.Tensor:
        return self._out


class Recorder(FixedTensor):
    """Keeps each sample's bytes and generator state, in the loader's order."""

    def __init__(self) -> None:
        super().__init__()
        self.samples: list[tuple[bytes, dict[str, Any]]] = []

    def __call__(self, data: Any, rng: np.random.Generator | None = None) -> torch.Tensor:
        assert rng is not None
        self.samples.append((bytes(data), rng.bit_generator.state))
        return self._out


def loader_samples(root: str, batch_size: int) -> list[tuple[bytes, dict[str, Any]]]:
    """The loader's samples with the generator state each is decoded with (epoch 0, seed 0)."""
    recorder = Recorder()
    loader_cpu(root, recorder, batch_size, {})
    return recorder.samples


def bare_cpu(samples: list[tuple[bytes, dict[str, Any]]]) -> float:
    fn = TrainTransform()
    jobs = []
    for data, state in samples:
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = state
        jobs.append((data, rng))
    start = time.process_time()
    for data, rng in jobs:
        fn(data, rng)
    return len(jobs) / (time.process_time() - start)


def loader_cpu(root: str, transform: Any, batch_size: int, options: dict[str, Any]) -> float:
    ds = ImageNetStream(root, shuffle=True, seed=0, transform=transform, batch_size=batch_size, **options)
    start, n = time.process_time(), 0
    for batch in DataLoader(ds, batch_size=None if options.get("batched") else batch_size, num_workers=0):
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
    samples = loader_samples(args.dataset, args.batch_size)
    best = {"bare": 0.0, "loader": 0.0, "batched": 0.0, "overhead": 0.0}
    for _ in range(args.rounds):
        best["bare"] = max(best["bare"], bare_cpu(samples))
        best["loader"] = max(best["loader"], loader_cpu(args.dataset, "train", args.batch_size, {}))
        best["batched"] = max(best["batched"], loader_cpu(args.dataset, "train", args.batch_size, {"batched": True}))
        best["overhead"] = max(best["overhead"], loader_cpu(args.dataset, FixedTensor(), args.batch_size, {}))
    print(f"{len(samples)} images; best of {args.rounds} rounds, images per CPU-second of this process")
    print(f"bare TrainTransform:        {best['bare']:8.0f}")
    for name, label in (("loader", "ImageNetStream workers=0:"), ("batched", "... batched=True:")):
        print(f"{label:27s} {best[name]:8.0f}  ({best[name] / best['bare']:.3f}x bare, "
              f"{1e6 / best[name]:.0f} us CPU per image)")
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

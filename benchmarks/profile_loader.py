"""Where ImageNetStream's time goes, in one process: ``python benchmarks/profile_loader.py DATASET``.

CPU time (this process, all its threads), so other load on the machine barely matters:

* **bare**: ``TrainTransform`` in a loop over the very samples and crops the loader makes (its
  bytes and each sample's generator state, recorded in a first pass; the generators are built
  before the clock starts): the decode limit, on the same work; **bare + read**: the same loop
  reading each sample's bytes from its shard file first (``os.pread``): the limit of any loader
  that reads files;
* **loader**: ``DataLoader(ImageNetStream(...), num_workers=0)`` over the same dataset, yielding
  samples (collated by the DataLoader) or, with ``batched=True``, whole batches;
* **overhead**: the loader with a transform that returns a fixed tensor: everything but decoding.

Rounds are interleaved and the best of each kept. ``--profile`` adds a cProfile listing of the
loader (the decode thread only: the prefetch thread's reads are in the overhead figure).
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

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


class Recorder(FixedTensor):
    """Keeps each sample's bytes and generator state, in the loader's order."""

    def __init__(self) -> None:
        super().__init__()
        self.samples: list[tuple[bytes, dict[str, Any]]] = []

    def __call__(self, data: Any, rng: np.random.Generator | None = None) -> torch.Tensor:
        assert rng is not None
        self.samples.append((bytes(data), rng.bit_generator.state))
        return self._out


class Sample(NamedTuple):
    data: bytes
    state: dict[str, Any]   # the generator state the loader decodes it with
    path: str               # where its bytes lie in its shard
    offset: int


def loader_samples(root: str, batch_size: int) -> list[Sample]:
    """The loader's samples in its order (epoch 0, seed 0), each with its generator state and place."""
    recorder = Recorder()
    ds = ImageNetStream(root, shuffle=True, seed=0, transform=recorder, batch_size=batch_size, return_keys=True)
    keys = [k for batch in DataLoader(ds, batch_size=batch_size) for k in batch[2]]
    manifest = Manifest.from_json(Path(root, MANIFEST_NAME).read_text())
    where = {}
    for shard in manifest.shards:
        index = SideIndex.from_bytes(Path(root, shard.index).read_bytes())
        for i, key in enumerate(index.keys):
            where[key] = (str(Path(root, shard.name)), int(index.image_offsets[i]))
    return [Sample(data, state, *where[key]) for (data, state), key in zip(recorder.samples, keys)]


def bare_cpu(samples: list[Sample], read: bool = False) -> float:
    """``TrainTransform`` over the samples, with their own generators; ``read``: each sample's bytes
    are read from its shard file (``os.pread``) just before it is decoded, as any loader must."""
    fn = TrainTransform()
    files = {path: os.open(path, os.O_RDONLY) for path in {s.path for s in samples}} if read else {}
    jobs = []
    for sample in samples:
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = sample.state
        jobs.append((sample, rng))
    try:
        start = time.process_time()
        for sample, rng in jobs:
            data = os.pread(files[sample.path], len(sample.data), sample.offset) if read else sample.data
            fn(data, rng)
        return len(jobs) / (time.process_time() - start)
    finally:
        for fd in files.values():
            os.close(fd)


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
    best = {"bare": 0.0, "bare_read": 0.0, "loader": 0.0, "batched": 0.0, "overhead": 0.0}
    for _ in range(args.rounds):
        best["bare"] = max(best["bare"], bare_cpu(samples))
        best["bare_read"] = max(best["bare_read"], bare_cpu(samples, read=True))
        best["loader"] = max(best["loader"], loader_cpu(args.dataset, "train", args.batch_size, {}))
        best["batched"] = max(best["batched"], loader_cpu(args.dataset, "train", args.batch_size, {"batched": True}))
        best["overhead"] = max(best["overhead"], loader_cpu(args.dataset, FixedTensor(), args.batch_size, {}))
    print(f"{len(samples)} images; best of {args.rounds} rounds, images per CPU-second of this process")
    print(f"bare TrainTransform:        {best['bare']:8.0f}  ({1e6 / best['bare']:.0f} us CPU per image)")
    for name, label in (("bare_read", "... reading each file range:"), ("loader", "ImageNetStream workers=0:"),
                        ("batched", "... batched=True:")):
        print(f"{label:29s} {best[name]:6.0f}  ({best[name] / best['bare']:.3f}x bare, "
              f"{best[name] / best['bare_read']:.3f}x bare+read, {1e6 / best[name]:.0f} us CPU per image)")
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

"""The bare decode limit: one process decoding + cropping JPEG bytes in a tight loop (no I/O, no tar).

``bare_limit`` is what the streaming pipeline is compared against: the closer a loader gets to it,
the less it adds on top of the decode itself. Run ``python benchmarks/decode_limit.py`` to print
img/s for our ``TrainTransform`` (draft decode) and for a naive full-decode reference.
"""
from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from imagenet_stream.streaming.decoding.transforms import (
    EvalTransform,
    TrainTransform,
    random_resized_crop_params,
)
from imagenet_stream.synthetic import make_jpeg


def decode_only(data: bytes, rng: np.random.Generator) -> Image.Image:
    """Full decode and nothing else: the floor a no-draft pipeline cannot beat."""
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def naive_train(data: bytes, rng: np.random.Generator, size: int = 224) -> torch.Tensor:
    """The stock PIL path (torchvision-style): full decode -> RGB -> crop -> resize -> flip -> CHW tensor."""
    im = Image.open(io.BytesIO(data)).convert("RGB")
    left, top, w, h = random_resized_crop_params(im.size[0], im.size[1], rng)
    im = im.crop((left, top, left + w, top + h)).resize((size, size), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return torch.from_numpy(np.array(im)).permute(2, 0, 1).contiguous()


_PRESETS: dict[str, Callable[[], Callable[[bytes, np.random.Generator], Any]]] = {
    "train": TrainTransform,
    "eval": EvalTransform,
    "naive": lambda: naive_train,
    "decode": lambda: decode_only,
}


def bare_limit(
    jpegs: list[bytes],
    seconds: float = 3.0,
    transform: str | Callable[[bytes, np.random.Generator], Any] = "train",
) -> float:
    """Images per CPU-second of one process applying ``transform`` to ``jpegs`` in a loop.

    Runs whole passes over ``jpegs`` until ``seconds`` of this process's CPU time are used. CPU
    time, not wall time, so other processes on a shared machine do not skew the figure; with
    ``torch.set_num_threads(1)`` it is the throughput of one dedicated core.

    ``transform`` is ``"train"`` (``TrainTransform()``: RandomResizedCrop(224) + flip -> uint8 CHW),
    ``"eval"``, ``"naive"`` (:func:`naive_train`), ``"decode"`` (:func:`decode_only`) or any ``(bytes, rng) -> output`` callable.
    """
    if not jpegs:
        raise ValueError("bare_limit needs at least one image")
    fn = _PRESETS[transform]() if isinstance(transform, str) else transform
    rng = np.random.default_rng(0)
    for data in jpegs[: min(len(jpegs), 8)]:  # warm up (imports, allocator)
        fn(data, rng)
    done, start = 0, time.process_time()
    while True:
        for data in jpegs:
            fn(data, rng)
        done += len(jpegs)
        used = time.process_time() - start
        if used >= seconds:
            return done / used


def imagenet_like_jpegs(count: int = 200, seed: int = 0) -> list[bytes]:
    """Synthetic photo-like JPEGs with ImageNet's size spread (median ~500x375, 68 px to 2400 px sides)."""
    rng = np.random.default_rng([seed, count])
    aspects = np.array([4 / 3, 3 / 4, 1.0, 3 / 2, 2 / 3, 16 / 9])
    weights = np.array([0.5, 0.2, 0.1, 0.1, 0.05, 0.05])
    out = []
    for i in range(count):
        long_side = float(np.clip(500 * np.exp(rng.normal(0.0, 0.35)), 68, 2400))
        aspect = float(rng.choice(aspects, p=weights))
        w, h = (long_side, long_side / aspect) if aspect >= 1 else (long_side * aspect, long_side)
        mode = "L" if rng.random() < 0.023 else "RGB"
        out.append(make_jpeg(max(56, int(w)), max(56, int(h)), seed=i, quality=90, mode=mode))
    return out


def compare(jpegs: list[bytes], seconds: float, names: list[str], rounds: int = 5) -> dict[str, float]:
    """Best-of-``rounds`` img/s per preset, rounds interleaved so load from other processes hits all alike."""
    best = dict.fromkeys(names, 0.0)
    for _ in range(rounds):
        for name in names:
            best[name] = max(best[name], bare_limit(jpegs, seconds / rounds, name))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="number of synthetic JPEGs")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per measurement")
    args = parser.parse_args()
    torch.set_num_threads(1)
    jpegs = imagenet_like_jpegs(args.count)
    sizes = np.array([Image.open(io.BytesIO(j)).size for j in jpegs])
    print(f"{len(jpegs)} JPEGs, median {int(np.median(sizes[:, 0]))}x{int(np.median(sizes[:, 1]))}, "
          f"{sizes.min()}..{sizes.max()} px, mean {np.mean([len(j) for j in jpegs]) / 1e3:.0f} KB")
    rate = compare(jpegs, args.seconds, ["train", "naive", "eval", "decode"])
    print(f"TrainTransform (draft decode): {rate['train']:8.1f} img/s")
    print(f"naive full decode reference:   {rate['naive']:8.1f} img/s")
    print(f"speed-up:                      {rate['train'] / rate['naive']:8.2f}x")
    print(f"EvalTransform (draft decode):  {rate['eval']:8.1f} img/s")
    print(f"full decode only, no crop:     {rate['decode']:8.1f} img/s")


if __name__ == "__main__":
    main()

"""The benchmark's data: a list of (image path, wnid), the same images as shards, and the sharder's speed.

By default the images are generated once (procedural photo-like content, ImageNet's spread of sizes:
long side log-normal around 500 px, mostly 4:3, 2.3% grayscale, about 100 KB per JPEG) into a
cached class-folder tree; ``--realistic`` generates photographic texture instead (a 1/f spectrum),
with ImageNet's long tail of sizes (2% with a long side of 1,000-4,000 px), 3% progressive, 2.3%
grayscale and 0.5% CMYK JPEGs at quality 75-95; ``--images DIR`` takes a real ``DIR/<wnid>/*.JPEG`` tree instead, of which
``count`` images are picked (evenly over the sorted list, so every class is represented).
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from imagenet_stream.hierarchy import load_space
from imagenet_stream.sharding.coordinator import ShardOptions, ShardResult, shard
from imagenet_stream.sharding.records import SourceRecord, Verified
from imagenet_stream.sharding.verify_image import VerifyConfig, verify_record
from imagenet_stream.synthetic import make_jpeg, natural_array

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
_ASPECTS = np.array([4 / 3, 3 / 4, 1.0, 3 / 2, 2 / 3, 16 / 9])
_ASPECT_P = np.array([0.5, 0.2, 0.1, 0.1, 0.05, 0.05])
_GRAY_SHARE = 0.023  # 23 of 1,000 sampled ILSVRC train images
_QUALITY = 94        # brings the synthetic mean near ImageNet's ~110 KB per image
_LARGE_SHARE = 0.02  # realistic set: images with a long side of 1,000-4,000 px
_PROGRESSIVE_SHARE = 0.03
_CMYK_SHARE = 0.005


@dataclass(frozen=True)
class ImageSet:
    """The images every contender reads: absolute paths and their wnids, in a fixed order."""

    root: str
    paths: tuple[str, ...]
    wnids: tuple[str, ...]
    generated: bool

    def __len__(self) -> int:
        return len(self.paths)

    def classes(self) -> list[str]:
        return sorted(set(self.wnids))

    def sizes(self) -> list[int]:
        return [os.path.getsize(p) for p in self.paths]

    def write_list(self, path: str) -> str:
        """A ``path,wnid`` CSV the sharder reads (so a subset of a real tree shards without copying)."""
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "wnid"])
            writer.writerows(zip(self.paths, self.wnids))
        return path


def _image_size(rng: np.random.Generator) -> tuple[int, int]:
    long_side = float(np.clip(500 * np.exp(rng.normal(0.0, 0.3)), 68, 2400))
    aspect = float(rng.choice(_ASPECTS, p=_ASPECT_P))
    w, h = (long_side, long_side / aspect) if aspect >= 1 else (long_side * aspect, long_side)
    return max(56, int(round(w))), max(56, int(round(h)))


def _realistic_size(rng: np.random.Generator) -> tuple[int, int]:
    """ImageNet's spread with its long tail: most images near 500x375, a few percent up to 4,000 px."""
    if rng.random() < _LARGE_SHARE:
        long_side = float(rng.uniform(1000, 4000))
        aspect = float(rng.choice(_ASPECTS, p=_ASPECT_P))
        w, h = (long_side, long_side / aspect) if aspect >= 1 else (long_side * aspect, long_side)
        return int(round(w)), int(round(h))
    return _image_size(rng)


def _realistic_jpeg(rng: np.random.Generator, seed: int) -> bytes:
    """Photographic texture (a 1/f spectrum, correlated colours, hard-edged objects), saved as
    ImageNet's JPEGs are: mostly baseline RGB at quality 75-95, some progressive, grayscale or CMYK."""
    width, height = _realistic_size(rng)
    image = Image.fromarray(natural_array(width, height, seed))
    kind = rng.random()
    if kind < _GRAY_SHARE:
        image = image.convert("L")
    elif kind < _GRAY_SHARE + _CMYK_SHARE:
        image = image.convert("CMYK")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=int(rng.integers(75, 96)), progressive=bool(rng.random() < _PROGRESSIVE_SHARE))
    return out.getvalue()


def _make_one(job: tuple[str, int, int, bool]) -> None:
    path, seed, index, realistic = job
    rng = np.random.default_rng([seed, index])
    if realistic:
        data = _realistic_jpeg(rng, seed * 1_000_003 + index)
    else:
        width, height = _image_size(rng)
        mode = "L" if rng.random() < _GRAY_SHARE else "RGB"
        data = make_jpeg(width, height, seed=seed * 1_000_003 + index, quality=_QUALITY, mode=mode)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def cache_name(count: int, classes: int, seed: int = 0, realistic: bool = False) -> str:
    """Folder name of a generated set: it changes whenever what would be generated changes."""
    return f"photos-{count}-{classes}-s{seed}-r1" if realistic else f"images-{count}-{classes}-s{seed}-q{_QUALITY}"


def generate(root: str, count: int, classes: int, seed: int = 0, workers: int = 1,
             realistic: bool = False) -> ImageSet:
    """``count`` synthetic images in ``classes`` in1k class folders under ``root`` (reused when complete);
    ``realistic``: photographic texture and ImageNet's long tail of sizes and JPEG kinds."""
    wnids = load_space("in1k").wnids[:classes]
    jobs = []
    for i in range(count):
        wnid = wnids[i % classes]
        jobs.append((os.path.join(root, wnid, f"{wnid}_{i}.JPEG"), seed, i, realistic))
    marker = Path(root, ".complete")
    if not marker.exists():
        for wnid in wnids:
            os.makedirs(os.path.join(root, wnid), exist_ok=True)
        todo = [j for j in jobs if not os.path.exists(j[0])]
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                list(pool.map(_make_one, todo, chunksize=8))
        else:
            for job in todo:
                _make_one(job)
        marker.write_text(f"{count} images, {classes} classes, seed {seed}\n")
    return ImageSet(root, tuple(j[0] for j in jobs), tuple(wnids[i % classes] for i in range(count)), True)


def from_folder(root: str, count: int | None) -> ImageSet:
    """Up to ``count`` images of a ``root/<wnid>/*`` tree, evenly spread over its sorted listing."""
    pairs = []
    for wnid in sorted(os.listdir(root)):
        folder = os.path.join(root, wnid)
        if wnid.startswith(".") or not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if name.lower().endswith(IMAGE_SUFFIXES):
                pairs.append((os.path.abspath(os.path.join(folder, name)), wnid))
    if not pairs:
        raise SystemExit(f"--images {root}: no <wnid>/*.JPEG images found")
    if count is not None and count < len(pairs):
        picks = np.linspace(0, len(pairs) - 1, count).round().astype(int)
        pairs = [pairs[i] for i in picks]
    return ImageSet(os.path.abspath(root), tuple(p for p, _ in pairs), tuple(w for _, w in pairs), False)


def describe(images: ImageSet, sample: int = 200) -> str:
    """``N images, K classes, median WxH, mean KB`` (sizes read from up to ``sample`` headers)."""
    step = max(1, len(images) // sample)
    dims = [Image.open(p).size for p in images.paths[::step]]
    areas = sorted(dims, key=lambda d: d[0] * d[1])
    median = areas[len(areas) // 2]
    kb = np.mean(images.sizes()) / 1e3
    kind = "generated" if images.generated else "real"
    return (f"{len(images):,} {kind} images, {len(images.classes())} classes, "
            f"median {median[0]}x{median[1]}, mean {kb:.0f} KB")


def shard_images(images: ImageSet, out: str, shard_size: int, workers: int,
                 list_path: str) -> tuple[ShardResult, float]:
    """Shard ``images`` with our sharder into ``out``; returns the result and the seconds it took."""
    source = images.write_list(list_path)
    options = ShardOptions(out=out, shard_size=shard_size, workers=workers, overwrite=True, mtime=0)
    start = time.perf_counter()
    result = shard([source], options)
    return result, time.perf_counter() - start


def cached_shards(work: Path, count: int, classes: int = 100, shard_size: int = 250) -> Path:
    """Shards of ``count`` generated images under ``work`` (both made once and reused): the data of
    the latency and threads benchmarks."""
    work.mkdir(parents=True, exist_ok=True)
    images = generate(str(work / cache_name(count, classes)), count, classes, workers=2)
    shards = work / f"latency-shards-{count}"
    if not (shards / "index.json").exists():
        shard_images(images, str(shards), shard_size, 2, str(work / f"latency-list-{count}.csv"))
    return shards


def bare_verify(paths: Sequence[str], seconds: float) -> dict[str, float]:
    """One process, images/s of: sha256 + full decode; and our ``verify_record`` (sha256 + 1/8 draft check).

    The bytes are read once up front, so neither figure includes file I/O.
    """
    blobs = [Path(p).read_bytes() for p in paths]

    def full(data: bytes) -> None:
        hashlib.sha256(data).digest()
        Image.open(io.BytesIO(data)).load()

    config = VerifyConfig()

    def ours(data: bytes) -> None:
        result = verify_record(SourceRecord(source="mem", wnid="n01440764", key="k", data=data), config)
        if not isinstance(result, Verified):
            raise RuntimeError(f"bare verify rejected a benchmark image: {result}")

    return {"full_decode_sha256": _rate(full, blobs, seconds), "verify_record": _rate(ours, blobs, seconds)}


def _rate(fn, blobs: Sequence[bytes], seconds: float) -> float:  # type: ignore[no-untyped-def]
    done, start = 0, time.perf_counter()
    while True:
        for data in blobs:
            fn(data)
        done += len(blobs)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed

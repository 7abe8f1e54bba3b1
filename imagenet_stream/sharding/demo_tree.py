"""A small synthetic ImageNet-style folder tree (``ROOT/<wnid>/<wnid>_<n>.JPEG``) with real quirks.

21 real fall11 synsets, nested ones included (dog n02084071 next to four of its breeds, domestic cat
n02121808 next to two of its breeds, bird and car next to ILSVRC leaves), photo-like JPEGs of
ImageNet-like sizes (median about 500×375, some grayscale), and the quirks a real sharder meets: a
CMYK JPEG, a PNG named ``.JPEG``, a truncated JPEG, a zero-byte file and an exact duplicate.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imagenet_stream.synthetic import make_jpeg, make_png, truncated

#: (wnid, name): every one a fall11 synset. Non-leaf classes (dog, domestic cat, bird, car) sit next
#: to their own descendants, as in ImageNet-21k.
DEMO_CLASSES: tuple[tuple[str, str], ...] = (
    ("n02084071", "dog"),
    ("n02085620", "Chihuahua"),
    ("n02099601", "golden retriever"),
    ("n02106662", "German shepherd"),
    ("n02110958", "pug"),
    ("n02121808", "domestic cat"),
    ("n02123045", "tabby"),
    ("n02124075", "Egyptian cat"),
    ("n01503061", "bird"),
    ("n01530575", "brambling"),
    ("n01440764", "tench"),
    ("n01443537", "goldfish"),
    ("n02958343", "car"),
    ("n04037443", "racer"),
    ("n03417042", "garbage truck"),
    ("n02690373", "airliner"),
    ("n07753592", "banana"),
    ("n07747607", "orange"),
    ("n09472597", "volcano"),
    ("n11939491", "daisy"),
    ("n12267677", "acorn"),
)

#: ILSVRC-like sizes (width, height); 500×375 is the median, the extremes are rarer.
_SIZES = ((500, 375), (500, 375), (500, 333), (375, 500), (500, 400), (640, 480), (400, 300), (333, 500),
          (800, 600), (300, 225), (500, 281), (1024, 768))


@dataclass(frozen=True)
class DemoTree:
    """What :func:`make_demo_tree` wrote."""

    root: Path
    wnids: tuple[str, ...]
    images: int                 # files written, quirks included
    quirks: dict[str, str]      # quirk -> relative path


def make_demo_tree(root: str | os.PathLike[str], images_per_class: int = 8, seed: int = 0) -> DemoTree:
    """Write the demo tree under ``root`` (created if needed); deterministic for a given seed."""
    if images_per_class < 1:
        raise ValueError(f"images_per_class must be >= 1, got {images_per_class}")
    root = Path(root)
    rng = np.random.default_rng([seed, 1])
    written = 0
    for c, (wnid, _name) in enumerate(DEMO_CLASSES):
        folder = root / wnid
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(images_per_class):
            width, height = _SIZES[int(rng.integers(len(_SIZES)))]
            mode = "L" if rng.random() < 0.05 else "RGB"
            data = make_jpeg(width, height, seed=seed * 1_000_003 + c * 1000 + n,
                             quality=int(rng.integers(75, 96)), mode=mode)
            (folder / f"{wnid}_{n + 1}.JPEG").write_bytes(data)
            written += 1

    quirks = {
        "cmyk": f"n01440764/n01440764_{10_001}.JPEG",
        "png_named_jpeg": f"n02085620/n02085620_{10_002}.JPEG",
        "truncated": f"n02099601/n02099601_{10_003}.JPEG",
        "empty": f"n02123045/n02123045_{10_004}.JPEG",
        "duplicate": f"n07753592/n07753592_{10_005}.JPEG",
    }
    (root / quirks["cmyk"]).write_bytes(make_jpeg(500, 375, seed=seed + 91, mode="CMYK"))
    (root / quirks["png_named_jpeg"]).write_bytes(make_png(500, 375, seed=seed + 92))
    (root / quirks["truncated"]).write_bytes(truncated(make_jpeg(500, 375, seed=seed + 93), keep=0.4))
    (root / quirks["empty"]).write_bytes(b"")
    original = root / DEMO_CLASSES[-1][0] / f"{DEMO_CLASSES[-1][0]}_1.JPEG"
    (root / quirks["duplicate"]).write_bytes(original.read_bytes())
    written += len(quirks)
    return DemoTree(root=root, wnids=tuple(w for w, _ in DEMO_CLASSES), images=written, quirks=quirks)

"""Crop geometry for the train/eval presets: which box of the original image to keep, the DCT reduction
it allows, and the box mapped into the reduced image. Pure integer/float math, shared by both decoders.
"""
from __future__ import annotations

import math

import numpy as np

from imagenet_stream.errors import ConfigError

DRAFT_SCALES = (8, 4, 2)  # libjpeg's DCT reductions, largest first


def check_range(name: str, bounds: tuple[float, float]) -> tuple[float, float]:
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a (low, high) pair of numbers, got {bounds!r}") from None
    if not (0.0 < lo <= hi) or not math.isfinite(hi):
        raise ConfigError(f"{name} must be (low, high) with 0 < low <= high, got {bounds!r}")
    return lo, hi


def random_resized_crop_params(
    width: int,
    height: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """torchvision's ``RandomResizedCrop.get_params``, drawing from ``rng``: ``(left, top, crop_w, crop_h)``.

    Up to 10 attempts draw an area share uniformly from ``scale`` and an aspect ratio log-uniformly
    from ``ratio``; the first crop that fits is placed uniformly. Otherwise the fallback is a
    centred crop of the whole image, clamped to the ratio bounds (at least 1 pixel per side).
    """
    if width < 1 or height < 1:
        raise ConfigError(f"image size must be positive, got {width}x{height}")
    scale_lo, scale_hi = check_range("scale", scale)
    ratio_lo, ratio_hi = check_range("ratio", ratio)
    area = width * height
    log_lo, log_hi = math.log(ratio_lo), math.log(ratio_hi)
    for _ in range(10):
        target_area = area * rng.uniform(scale_lo, scale_hi)
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, w, h
    in_ratio = width / height
    if in_ratio < ratio_lo:
        w, h = width, max(1, int(round(width / ratio_lo)))
    elif in_ratio > ratio_hi:
        w, h = max(1, int(round(height * ratio_hi))), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def eval_box(width: int, height: int, size: int, resize: int) -> tuple[float, float, float, float]:
    """The region of the original image that ``Resize(resize)`` + ``CenterCrop(size)`` keeps.

    torchvision resizes the short side to ``resize`` and the long side to
    ``int(resize * long / short)``, then crops at ``round((new - size) / 2)``. Resizing this box
    straight to ``size x size`` uses the same per-axis scale and the same source pixels, so it
    equals resize-then-crop up to rounding (8-bit intermediates, the box snapped to whole pixels).
    """
    if width <= height:
        new_w, new_h = resize, int(resize * height / width)
    else:
        new_w, new_h = int(resize * width / height), resize
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    sx, sy = width / new_w, height / new_h
    return left * sx, top * sy, (left + size) * sx, (top + size) * sy


def draft_scale(box_w: float, box_h: float, out_w: int, out_h: int) -> int:
    """The largest DCT reduction ``s`` keeping ``box_w / s >= out_w`` and ``box_h / s >= out_h`` (1 if none)."""
    for s in DRAFT_SCALES:
        if box_w >= out_w * s and box_h >= out_h * s:
            return s
    return 1


def snap_box(box: tuple[float, float, float, float], scale: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Map an original-coordinate box into the decoded image (``/ scale``) and round it to whole pixels.

    Whole pixels let the crop be a plain slice; rounding moves each edge by at most half a decoded
    pixel (``scale / 2`` original pixels), far below what training or evaluation can notice. At
    ``scale == 1`` train boxes are already integers and are unchanged.
    """
    width, height = size
    x0 = min(max(int(round(box[0] / scale)), 0), width - 1)
    y0 = min(max(int(round(box[1] / scale)), 0), height - 1)
    x1 = min(max(int(round(box[2] / scale)), x0 + 1), width)
    y1 = min(max(int(round(box[3] / scale)), y0 + 1), height)
    return x0, y0, x1, y1

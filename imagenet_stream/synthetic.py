"""Procedural, photo-like test images (smooth shapes + texture + noise), so decode cost is realistic.

Used by the demo, the benchmarks and the tests; not part of any training path.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


def photo_array(width: int, height: int, seed: int) -> np.ndarray:
    """An RGB uint8 [height, width, 3] image with gradients, blobs and fine texture (JPEG-realistic)."""
    rng = np.random.default_rng([seed, width, height])
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    img = np.empty((height, width, 3), dtype=np.float32)
    for c in range(3):
        a, b, f1, f2, p = rng.uniform(0.0, 1.0, 5)
        img[..., c] = 90 + 60 * a * x + 60 * b * y + 40 * np.sin(2 * np.pi * (f1 * 3 * x + f2 * 3 * y + p))
    for _ in range(int(rng.integers(3, 8))):  # soft blobs
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
        color = rng.uniform(-80, 80, 3).astype(np.float32)
        mask = np.exp(-(((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r)))
        img += mask[..., None] * color
    img += rng.normal(0.0, 12.0, img.shape).astype(np.float32)  # sensor-like noise
    return np.clip(img, 0, 255).astype(np.uint8)


def encode(image: Image.Image, fmt: str = "JPEG", **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def make_jpeg(width: int = 500, height: int = 375, seed: int = 0, quality: int = 90, mode: str = "RGB") -> bytes:
    """A JPEG of the given size; ``mode`` may be ``"RGB"``, ``"L"`` (grayscale) or ``"CMYK"``."""
    image = Image.fromarray(photo_array(width, height, seed), "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    return encode(image, "JPEG", quality=quality)


def make_png(width: int = 500, height: int = 375, seed: int = 0) -> bytes:
    """PNG bytes (ILSVRC has one PNG named ``.JPEG``)."""
    return encode(Image.fromarray(photo_array(width, height, seed), "RGB"), "PNG")


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    """The first ``keep`` share of ``data`` (a truncated download)."""
    return data[: max(1, int(len(data) * keep))]


def tiny_jpeg(rng: np.random.Generator, side: int = 16) -> bytes:
    """A small JPEG of random pixels: unique per draw, about 600 bytes (for scale tests)."""
    return encode(Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8), "RGB"), "JPEG", quality=75)


def write_tar_of_tars(path: str, wnids: list[str] | tuple[str, ...], per_synset: int, seed: int = 0,
                      duplicates: int = 0) -> int:
    """Write ``path``: a tar of per-synset tars (``WNID.tar`` holding ``WNID_<n>.JPEG``), as
    ILSVRC2012_img_train.tar / fall11_whole.tar are laid out, with ``per_synset`` unique tiny
    JPEGs each; the last ``duplicates`` synsets repeat the first image of the first synset once.
    Streams to disk: memory stays one inner tar. Returns the number of images written."""
    import tarfile

    rng = np.random.default_rng([seed, 7])
    first_image = None
    written = 0
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as outer:
        for s, wnid in enumerate(wnids):
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for n in range(per_synset):
                    data = tiny_jpeg(rng)
                    if first_image is None:
                        first_image = data
                    if n == 0 and duplicates and s >= len(wnids) - duplicates:
                        data = first_image
                    info = tarfile.TarInfo(f"{wnid}_{n + 1}.JPEG")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                    written += 1
            info = tarfile.TarInfo(f"{wnid}.tar")
            info.size = inner.tell()
            inner.seek(0)
            outer.addfile(info, inner)
    return written


def natural_array(width: int, height: int, seed: int) -> np.ndarray:
    """An RGB uint8 image with natural-image statistics: a 1/f amplitude spectrum (as photographs
    have), channels correlated like colours of real scenes, and a few flat-coloured objects with
    hard edges. Different seeds give images as far apart, to a perceptual hash, as different photos."""
    rng = np.random.default_rng([seed, width, height, 77])
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    falloff = np.sqrt(fx ** 2 + fy ** 2)
    falloff[0, 0] = 1.0
    shape = (height, width // 2 + 1)
    shared = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    out = np.empty((height, width, 3), dtype=np.float32)
    for c in range(3):
        spectrum = 0.8 * shared + 0.6 * (rng.normal(size=shape) + 1j * rng.normal(size=shape))
        field = np.fft.irfft2(spectrum / falloff ** 1.1, s=(height, width))
        out[..., c] = 128 + 45 * (field - field.mean()) / (field.std() + 1e-6)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(width // 8, width // 2)), int(rng.integers(height // 8, height // 2))
        out[y0:y0 + h, x0:x0 + w] += rng.uniform(-60, 60, 3).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


#: The edits a planted near-duplicate gets (:func:`near_copy`): what re-uploads and augmentations do.
EDITS = ("resized", "recompressed", "cropped", "flipped", "colour_jittered")


def near_copy(data: bytes, edit: str, seed: int) -> bytes:
    """A near-duplicate of the JPEG ``data``: ``resized`` (40-80 % of each side), ``recompressed``
    (JPEG quality 20-45), ``cropped`` (up to 2.5 % off each side), ``flipped`` (left-right) or
    ``colour_jittered`` (brightness and contrast x0.75-1.25, saturation x0.6-1.4); a JPEG again."""
    from PIL import ImageEnhance

    rng = np.random.default_rng([seed, EDITS.index(edit)])
    im = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = im.size
    quality = 90
    if edit == "resized":
        scale = rng.uniform(0.4, 0.8)
        im = im.resize((max(8, int(w * scale)), max(8, int(h * scale))), Image.Resampling.LANCZOS)
    elif edit == "recompressed":
        quality = int(rng.integers(20, 46))
    elif edit == "cropped":
        left, top, right, bottom = (int(side * rng.uniform(0, 0.025)) for side in (w, h, w, h))
        im = im.crop((left, top, w - right, h - bottom))
    elif edit == "flipped":
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    elif edit == "colour_jittered":
        im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.75, 1.25))
        im = ImageEnhance.Contrast(im).enhance(rng.uniform(0.75, 1.25))
        im = ImageEnhance.Color(im).enhance(rng.uniform(0.6, 1.4))
    else:
        raise ValueError(f"unknown edit {edit!r}; expected one of {EDITS}")
    return encode(im, "JPEG", quality=quality)

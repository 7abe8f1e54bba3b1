"""Decode-check every image and normalize it to a JPEG the streamer can read.

One decode per image. RGB and grayscale JPEGs keep their pixel data byte for byte (by default their
identifying metadata segments are dropped losslessly: :mod:`.privacy`); CMYK/YCCK JPEGs, other
formats (ILSVRC's PNG named ``.JPEG``) and other modes are converted to an RGB JPEG; with
``resize_short_side`` larger images are shrunk (JPEG draft decode + Lanczos) and re-encoded.

By default a JPEG that is stored unchanged is checked with a draft decode at 1/4 scale: libjpeg still
entropy-decodes every coefficient of every scan, so truncated or corrupt data fails exactly as in a
full decode, while the inverse DCT and colour conversion, most of the cost, shrink 16-fold. The
image's perceptual hash (:mod:`imagenet_stream.curation.phash`) is computed on that decode (1/4
rather than 1/8 scale: at 1/8 each pixel is one 8 x 8 block, and where the block grid falls on the
content moved flipped copies' hashes by up to 14 bits; 1/4 costs about 5 % more decode time).
``VerifyConfig(full_decode=True)`` decodes at full size instead.

Not applied: EXIF orientation (ignored, as the usual decoders and the streamer do; removed with the
rest of EXIF unless ``strip_metadata=False``) and ICC colour management (profiles are kept). Pillow's global ``MAX_IMAGE_PIXELS`` still applies inside ``Image.open``
(twice that limit always raises), so ``max_pixels`` above ``2 * Image.MAX_IMAGE_PIXELS`` has no effect.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile

from imagenet_stream.curation.phash import SIDE, perceptual_hash
from imagenet_stream.curation.registry import Registry
from imagenet_stream.errors import ConfigError
from imagenet_stream.sharding.privacy import NotAJpeg, strip_metadata
from imagenet_stream.sharding.records import Rejected, SourceRecord, TooLarge, Verified

#: Largest source image accepted (bytes): ImageNet's largest files are a few MB; a bigger member is
#: refused before it is read, so a bomb in a tar (a header claiming gigabytes) costs no memory.
DEFAULT_MAX_IMAGE_BYTES = 64 << 20

_KEEP_MODES = ("RGB", "L")
_RESAMPLE = Image.Resampling.LANCZOS


@dataclass(frozen=True)
class VerifyConfig:
    """How records are checked and normalized (picklable: sent to pool workers)."""

    min_size: int = 8                      # reject if width or height < min_size ("too_small")
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES  # reject larger source files unread ("too_large")
    max_pixels: int = 89_478_485           # Pillow's default limit: above it -> "decompression_bomb"
    resize_short_side: int | None = None   # optional FFCV-style pre-resize (only shrinks)
    quality: int = 90                      # JPEG quality for anything re-encoded
    allowed_wnids: frozenset[str] | None = None   # class space; None = not checked here
    full_decode: bool = False              # check unchanged JPEGs at full size instead of a 1/4 draft decode
    strip_metadata: bool = True            # drop EXIF/GPS/XMP/IPTC/comments/trailers losslessly (privacy.py)
    opt_out: Registry | None = None        # keys / source sha256 never to store, with their reasons

    def __post_init__(self) -> None:
        if self.min_size < 1:
            raise ConfigError(f"min_size must be >= 1, got {self.min_size}")
        if self.max_image_bytes < 1:
            raise ConfigError(f"max_image_bytes must be >= 1, got {self.max_image_bytes}")
        if self.max_pixels < 1:
            raise ConfigError(f"max_pixels must be >= 1, got {self.max_pixels}")
        if self.resize_short_side is not None and self.resize_short_side < self.min_size:
            raise ConfigError(f"resize_short_side must be >= min_size ({self.min_size}), "
                              f"got {self.resize_short_side}")
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"quality must be in 1..100, got {self.quality}")
        if self.allowed_wnids is not None and not isinstance(self.allowed_wnids, frozenset):
            object.__setattr__(self, "allowed_wnids", frozenset(self.allowed_wnids))


class _Reject(Exception):
    """Internal: carries a reject reason out of the helpers."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def verify_record(record: SourceRecord, config: VerifyConfig) -> Verified | Rejected:
    """Check one record and normalize its image; never raises for bad image data (returns Rejected)."""
    try:
        return _verify(record, config)
    except _Reject as r:
        return Rejected(key=record.key, wnid=record.wnid, source=record.source, reason=r.reason,
                        detail=r.detail)


def _verify(record: SourceRecord, config: VerifyConfig) -> Verified:
    if config.allowed_wnids is not None and record.wnid not in config.allowed_wnids:
        raise _Reject("unknown_class", f"{record.wnid} is not in the class space")
    if config.opt_out is not None and record.key in config.opt_out.keys:
        raise _Reject(config.opt_out.keys[record.key], "listed in the opt-out registry (by key)")
    try:
        data = record.load(config.max_image_bytes)
    except TooLarge as e:
        raise _Reject("too_large", str(e)) from None
    except (OSError, ValueError) as e:
        raise _Reject("unreadable_file", str(e)) from None
    if not data:
        raise _Reject("empty_file", "0 bytes")
    source_sha = hashlib.sha256(data).hexdigest()
    if config.opt_out is not None and source_sha in config.opt_out.sha256:
        raise _Reject(config.opt_out.sha256[source_sha], "listed in the opt-out registry (by sha256)")
    im = _open(data, config)
    width, height = im.size
    target = _resized_size(width, height, config.resize_short_side)
    if im.format == "JPEG" and im.mode in _KEEP_MODES and target is None:
        if not config.full_decode:
            # at least the perceptual hash's 32 px where the image has them (small images: a larger scale)
            im.draft(im.mode, (max(min(width, SIDE), width // 4), max(min(height, SIDE), height // 4)))
        _load(im)
        phash = perceptual_hash(im)  # on the verification decode (1/4 scale by default): no extra decode
        try:
            image, removed = strip_metadata(data) if config.strip_metadata else (data, ())
        except NotAJpeg as e:  # decodes, but its segments cannot be told apart: metadata could not be removed
            raise _Reject("malformed_jpeg", f"marker stream: {e}") from None
        return Verified(key=record.key, wnid=record.wnid, source=record.source, image=image,
                        sha256=hashlib.sha256(image).hexdigest() if removed else source_sha,
                        source_sha256=source_sha, width=width, height=height,
                        fixes=("metadata_stripped",) if removed else (), phash=phash)
    if im.format == "JPEG" and target is not None and im.mode in ("RGB", "L", "CMYK"):
        im.draft(None, target)  # DCT-domain downscale to at least `target`, before decoding
    _load(im)
    fixes: list[str] = []
    if im.format != "JPEG":
        fixes.append("png_to_jpeg" if im.format == "PNG" else f"converted_{str(im.format).lower()}")
    elif im.mode == "CMYK":
        fixes.append("cmyk_to_rgb")
    elif im.mode not in _KEEP_MODES:
        fixes.append(f"{im.mode.lower()}_to_rgb")
    try:
        rgb = _to_rgb(im)
        if target is not None:
            rgb = rgb.resize(target, _RESAMPLE)
            fixes.append("resized")
        out = io.BytesIO()
        rgb.save(out, format="JPEG", quality=config.quality)
    except Exception as e:  # noqa: BLE001 - any conversion failure of bad input is a reject, never a crash
        raise _Reject("undecodable", f"conversion failed: {type(e).__name__}: {e}") from None
    image = out.getvalue()
    return Verified(key=record.key, wnid=record.wnid, source=record.source, image=image,
                    sha256=hashlib.sha256(image).hexdigest(), source_sha256=source_sha, width=rgb.width,
                    height=rgb.height, fixes=tuple(fixes), phash=perceptual_hash(rgb))


def _open(data: bytes, config: VerifyConfig) -> Image.Image:
    """Identify the image and check its header size (no pixel data decoded yet)."""
    try:
        im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise _Reject("decompression_bomb", str(e)) from None
    except Image.UnidentifiedImageError:
        raise _Reject("undecodable",
                      f"not an image format Pillow can identify (starts with {data[:8]!r})") from None
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for garbage headers
        raise _Reject("undecodable", f"{type(e).__name__}: {e}") from None
    width, height = im.size
    if width * height > config.max_pixels:
        raise _Reject("decompression_bomb",
                      f"{width}x{height} = {width * height:,} pixels > {config.max_pixels:,}")
    if width < config.min_size or height < config.min_size:
        raise _Reject("too_small", f"{width}x{height} < {config.min_size}")
    return im


def _load(im: Image.Image) -> None:
    """Decode all pixel data; truncated files are rejected, never padded."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process; verify needs "
                           "truncated images to fail, so set it back to False")
    try:
        im.load()
    except Image.DecompressionBombError as e:
        raise _Reject("decompression_bomb", str(e)) from None
    except Exception as e:  # noqa: BLE001 - decoder errors come as OSError, SyntaxError, ValueError, ...
        text = str(e)
        lowered = text.lower()
        reason = "truncated" if "truncated" in lowered or "broken data stream" in lowered else "undecodable"
        raise _Reject(reason, f"{type(e).__name__}: {text}") from None


def _resized_size(width: int, height: int, short_side: int | None) -> tuple[int, int] | None:
    """The size with the short side scaled down to ``short_side``, or None when no shrink is needed."""
    if short_side is None or min(width, height) <= short_side:
        return None
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any decoded mode to RGB: alpha composited on white, 16/32-bit grey scaled to 8 bits."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        grey = np.asarray(im).astype(np.int64)
        grey = np.clip(grey, 0, 65535) >> 8
        return Image.fromarray(grey.astype(np.uint8), "L").convert("RGB")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode in ("LA", "La", "PA", "RGBa"):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, im).convert("RGB")
    return im.convert("RGB")

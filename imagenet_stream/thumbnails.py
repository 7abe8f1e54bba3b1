"""Small JPEG thumbnails of (possibly hostile) image bytes, for reports: bounded in pixels, bytes and
time, never raising on bad input.

A truncated JPEG still shows what arrived (Pillow fills the rest grey); bytes that are no image give
None, and the report draws a placeholder naming the reason instead.
"""
from __future__ import annotations

import base64
import io
import warnings

from PIL import Image

THUMB_SIDE = 96          # longest side, pixels
THUMB_QUALITY = 70
MAX_SOURCE_PIXELS = 64_000_000   # larger images are not decoded for a thumbnail (a bomb, or too slow)


def thumbnail(data: bytes, side: int = THUMB_SIDE) -> bytes | None:
    """JPEG bytes of ``data``'s image scaled to at most ``side`` pixels a side, or None when it does
    not decode (empty, not an image, too large)."""
    if not data:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                if im.width * im.height > MAX_SOURCE_PIXELS:
                    return None
                im.draft("RGB", (side, side))  # JPEG: decode at 1/2..1/8 scale straight away
                try:
                    im.load()
                    loaded = im
                except OSError:
                    if getattr(im, "im", None) is None:
                        return None
                    # truncated: keep what was decoded (no global LOAD_TRUNCATED_IMAGES: the
                    # sharder verifies images on other threads and must still see truncation)
                    loaded = im._new(im.im)
                rgb = loaded.convert("RGB")
        rgb.thumbnail((side, side))
        out = io.BytesIO()
        rgb.save(out, "JPEG", quality=THUMB_QUALITY, optimize=True)
        return out.getvalue()
    except Exception:  # noqa: BLE001 - any failure of bad input means "no thumbnail", never a crash
        return None


def thumbnail_b64(data: bytes, side: int = THUMB_SIDE) -> str | None:
    """:func:`thumbnail` as base64 text (for JSON reports and data URIs)."""
    thumb = thumbnail(data, side)
    return None if thumb is None else base64.b64encode(thumb).decode("ascii")


__all__ = ["THUMB_SIDE", "thumbnail", "thumbnail_b64"]

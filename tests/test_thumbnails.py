"""Thumbnails of hostile bytes: bounded, never raising; a truncated JPEG shows what arrived, and
making one never turns on Pillow's global LOAD_TRUNCATED_IMAGES (the sharder's verification on other
threads must still see truncation)."""
from __future__ import annotations

import io

from PIL import Image, ImageFile

from imagenet_stream.synthetic import make_jpeg, make_png, truncated
from imagenet_stream.thumbnails import THUMB_SIDE, thumbnail, thumbnail_b64


def test_thumbnails_are_small_jpegs_of_the_image() -> None:
    for data in (make_jpeg(800, 600, seed=1), make_png(300, 500, seed=2), make_jpeg(64, 48, seed=3, mode="L")):
        thumb = thumbnail(data)
        with Image.open(io.BytesIO(thumb)) as im:
            assert im.format == "JPEG" and max(im.size) <= THUMB_SIDE and im.mode == "RGB"
        assert len(thumb) < 8000


def test_a_truncated_image_shows_what_arrived_and_bad_bytes_give_none() -> None:
    part = truncated(make_jpeg(400, 300, seed=4), keep=0.4)
    assert thumbnail(part) is not None
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    for bad in (b"", b"not an image", make_jpeg(400, 300, seed=5)[:80]):
        assert thumbnail(bad) is None and thumbnail_b64(bad) is None


def test_a_decompression_bomb_is_not_decoded() -> None:
    header = io.BytesIO()
    Image.new("L", (1, 1)).save(header, "PNG")
    data = bytearray(header.getvalue())
    data[16:24] = (40_000).to_bytes(4, "big") + (40_000).to_bytes(4, "big")  # IHDR says 40,000 x 40,000
    assert thumbnail(bytes(data)) is None

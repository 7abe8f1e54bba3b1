"""verify_record on real image bytes: every quirk normalized or rejected with its reason, never raising."""
from __future__ import annotations

import hashlib
import io
import pickle
import struct
import warnings
import zlib
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from imagenet_stream.sharding.records import Rejected, SourceRecord, Verified
from imagenet_stream.sharding.verify_image import VerifyConfig, verify_record
from imagenet_stream.synthetic import encode, make_jpeg, make_png, photo_array, truncated

WNID = "n01440764"
DEFAULT = VerifyConfig()


def rec(data: bytes, wnid: str = WNID, key: str = "n01440764_1") -> SourceRecord:
    return SourceRecord(source=f"train/{wnid}/{key}.JPEG", wnid=wnid, key=key, data=data)


def ok(data: bytes, config: VerifyConfig = DEFAULT) -> Verified:
    result = verify_record(rec(data), config)
    assert isinstance(result, Verified), result
    return result


def rejected(data: bytes, config: VerifyConfig = DEFAULT) -> Rejected:
    result = verify_record(rec(data), config)
    assert isinstance(result, Rejected), result
    return result


def decoded(result: Verified) -> Image.Image:
    im = Image.open(io.BytesIO(result.image))
    im.load()
    assert im.format == "JPEG" and im.size == (result.width, result.height)
    assert hashlib.sha256(result.image).hexdigest() == result.sha256
    return im


def blocks(a: np.ndarray | Image.Image, n: int = 5) -> np.ndarray:
    """Mean over n x n blocks: compares content while ignoring JPEG noise on the synthetic sensor noise."""
    a = np.asarray(a, dtype=np.float64)
    h, w = a.shape[0] // n * n, a.shape[1] // n * n
    return a[:h, :w].reshape(h // n, n, w // n, n, -1).mean(axis=(1, 3))


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` (with one tiny IDAT)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------------------------- stored as is
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_rgb_and_grey_jpeg_bytes_are_preserved(mode: str) -> None:
    data = make_jpeg(120, 90, 3, mode=mode)
    result = ok(data)
    assert result.image == data and result.fixes == ()
    assert result.sha256 == result.source_sha256 == hashlib.sha256(data).hexdigest()
    assert (result.width, result.height) == (120, 90)
    assert (result.key, result.wnid, result.source) == ("n01440764_1", WNID, f"train/{WNID}/n01440764_1.JPEG")
    assert ok(data, VerifyConfig(full_decode=True)).image == data


def test_progressive_jpeg_is_preserved() -> None:
    data = encode(Image.fromarray(photo_array(64, 48, 1)), "JPEG", quality=85, progressive=True)
    assert ok(data).image == data


# --------------------------------------------------------------------------------------------- normalized
def test_cmyk_jpeg_becomes_rgb_jpeg() -> None:
    data = make_jpeg(80, 60, 2, mode="CMYK")
    result = ok(data)
    assert result.fixes == ("cmyk_to_rgb",) and result.image != data
    assert result.source_sha256 == hashlib.sha256(data).hexdigest() != result.sha256
    im = decoded(result)
    assert im.mode == "RGB" and im.size == (80, 60)
    expected = Image.open(io.BytesIO(data)).convert("RGB")
    assert np.abs(blocks(im) - blocks(expected)).mean() < 3


def test_png_named_jpeg_becomes_jpeg() -> None:
    """ILSVRC's n02105855_2933.JPEG is a PNG."""
    data = make_png(70, 50, 4)
    result = verify_record(SourceRecord("train/n02105855/n02105855_2933.JPEG", "n02105855", "n02105855_2933",
                                        data=data), DEFAULT)
    assert isinstance(result, Verified) and result.fixes == ("png_to_jpeg",)
    im = decoded(result)
    assert im.mode == "RGB" and (result.width, result.height) == (70, 50)
    assert np.abs(blocks(im) - blocks(photo_array(70, 50, 4))).mean() < 3


def test_alpha_is_composited_on_white() -> None:
    rgba = np.zeros((20, 30, 4), dtype=np.uint8)
    rgba[:, :15] = (255, 0, 0, 255)  # opaque red left half, fully transparent right half
    result = ok(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    pixels = np.asarray(decoded(result), dtype=np.int16)
    assert np.abs(pixels[:, 20:] - 255).max() < 8  # white
    assert pixels[:, :10, 0].min() > 240 and pixels[:, :10, 1:].max() < 15  # red


@pytest.mark.parametrize("mode,fmt,fix", [("P", "GIF", "converted_gif"), ("LA", "PNG", "png_to_jpeg"),
                                          ("P", "PNG", "png_to_jpeg"), ("RGB", "BMP", "converted_bmp"),
                                          ("RGB", "WEBP", "converted_webp")])
def test_other_formats_and_modes_become_rgb_jpeg(mode: str, fmt: str, fix: str) -> None:
    data = encode(Image.fromarray(photo_array(40, 30, 5)).convert(mode), fmt)
    result = ok(data)
    assert result.fixes == (fix,) and decoded(result).mode == "RGB"


def test_sixteen_bit_grey_png_is_scaled_not_clipped() -> None:
    grey = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1))
    image = Image.fromarray(grey)
    assert image.mode.startswith("I;16")
    pixels = np.asarray(decoded(ok(encode(image, "PNG"))), dtype=np.int16)
    assert pixels[:, 0].max() < 5 and pixels[:, -1].min() > 250  # black to white, not all clipped to 255
    assert abs(pixels[:, 31:33].mean() - 128) < 6


# ------------------------------------------------------------------------------------------------- resize
def test_resize_shrinks_short_side_and_reencodes() -> None:
    config = VerifyConfig(resize_short_side=64, quality=80)
    result = ok(make_jpeg(300, 200, 6), config)
    assert result.fixes == ("resized",) and (result.width, result.height) == (96, 64)
    im = decoded(result)
    assert im.mode == "RGB"
    tall = ok(make_jpeg(100, 250, 6), config)
    assert (tall.width, tall.height) == (64, 160)
    assert ok(make_png(300, 200, 6), config).fixes == ("png_to_jpeg", "resized")
    assert ok(make_jpeg(300, 200, 6, mode="CMYK"), config).fixes == ("cmyk_to_rgb", "resized")
    grey = ok(make_jpeg(300, 200, 6, mode="L"), config)
    assert grey.fixes == ("resized",) and decoded(grey).mode == "RGB"


def test_resize_never_enlarges() -> None:
    data = make_jpeg(60, 40, 7)
    result = ok(data, VerifyConfig(resize_short_side=40))
    assert result.image == data and result.fixes == ()


def test_resized_content_matches_a_plain_resize() -> None:
    data = make_jpeg(400, 320, 8)
    result = ok(data, VerifyConfig(resize_short_side=100, quality=95))
    reference = Image.open(io.BytesIO(data)).convert("RGB").resize((125, 100), Image.Resampling.LANCZOS)
    diff = np.abs(np.asarray(decoded(result), dtype=np.int16) - np.asarray(reference, dtype=np.int16))
    assert diff.mean() < 4


# ------------------------------------------------------------------------------------------------- rejects
def test_empty_and_unreadable(tmp_path: Path) -> None:
    assert rejected(b"").reason == "empty_file"
    missing = SourceRecord("x", WNID, "x", path=str(tmp_path / "missing.JPEG"))
    result = verify_record(missing, DEFAULT)
    assert isinstance(result, Rejected) and result.reason == "unreadable_file"
    assert "missing.JPEG" in result.detail
    folder = SourceRecord("d", WNID, "d", path=str(tmp_path))
    assert verify_record(folder, DEFAULT).reason == "unreadable_file"  # type: ignore[union-attr]
    nothing = SourceRecord("n", WNID, "n")
    assert verify_record(nothing, DEFAULT).reason == "unreadable_file"  # type: ignore[union-attr]


@pytest.mark.parametrize("data", [b"hello world" * 50, b"\xff\xd8\xff\xe0" + b"\x00" * 10,
                                  b"\x89PNG\r\n\x1a\n", b"GIF89a", png_header(10, 10)[:40]],
                         ids=["text", "jpeg-soi", "png-sig", "gif", "png-cut-ihdr"])
def test_garbage_is_undecodable(data: bytes) -> None:
    result = rejected(data)
    assert result.reason in ("undecodable", "truncated")
    assert "0x" not in result.detail  # no object reprs: details are deterministic


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("make", [lambda: make_jpeg(200, 150, 9), lambda: make_jpeg(200, 150, 9, mode="L"),
                                  lambda: make_jpeg(200, 150, 9, mode="CMYK"), lambda: make_png(120, 90, 9)],
                         ids=["rgb", "grey", "cmyk", "png"])
def test_truncated(make: object, full: bool) -> None:
    data = make()  # type: ignore[operator]
    for keep in (0.3, 0.6, 0.95):
        result = rejected(truncated(data, keep), VerifyConfig(full_decode=full))
        assert result.reason == "truncated", (keep, result)


def test_too_small() -> None:
    assert rejected(make_jpeg(7, 50, 1)).reason == "too_small"
    assert rejected(make_jpeg(50, 7, 1)).reason == "too_small"
    assert "7x50" in rejected(make_png(7, 50, 1)).detail
    assert ok(make_jpeg(8, 8, 1)).width == 8
    assert rejected(make_jpeg(40, 40, 1), VerifyConfig(min_size=41)).reason == "too_small"


def test_decompression_bomb_checked_from_the_header() -> None:
    # beyond twice Pillow's limit: Pillow itself refuses at open
    assert rejected(png_header(100_000, 100_000)).reason == "decompression_bomb"
    # between Pillow's limit and twice it: our check on the header size, before any decoding
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        result = rejected(png_header(10_000, 10_000))
    assert result.reason == "decompression_bomb" and "100,000,000" in result.detail
    assert rejected(make_jpeg(100, 100, 1), VerifyConfig(max_pixels=9_999)).reason == "decompression_bomb"
    assert ok(make_jpeg(100, 100, 1), VerifyConfig(max_pixels=10_000)).width == 100


def test_unknown_class_is_checked_before_loading(tmp_path: Path) -> None:
    config = VerifyConfig(allowed_wnids=frozenset({"n01443537"}))
    missing = SourceRecord("x", WNID, "x", path=str(tmp_path / "missing.JPEG"))
    result = verify_record(missing, config)
    assert isinstance(result, Rejected) and result.reason == "unknown_class" and WNID in result.detail
    good = verify_record(rec(make_jpeg(20, 20, 1), wnid="n01443537"), config)
    assert isinstance(good, Verified)
    as_set = VerifyConfig(allowed_wnids={"n01443537"})  # type: ignore[arg-type]
    assert as_set.allowed_wnids == frozenset({"n01443537"})


def test_truncated_images_must_not_be_loadable() -> None:
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
            verify_record(rec(make_jpeg(20, 20, 1)), DEFAULT)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


@pytest.mark.parametrize("kwargs,pattern", [({"min_size": 0}, "min_size"), ({"max_pixels": 0}, "max_pixels"),
                                            ({"quality": 101}, "quality"), ({"quality": 0}, "quality"),
                                            ({"resize_short_side": 4}, "resize_short_side")])
def test_config_validation(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        VerifyConfig(**kwargs)


# ------------------------------------------------------------------------------------- properties, pool
@settings(max_examples=40, deadline=None)
@given(keep=st.floats(0.0, 1.0), progressive=st.booleans(),
       flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(1, 255)), max_size=3))
def test_never_raises_and_draft_check_agrees_with_full_decode(keep: float, flips: list,
                                                              progressive: bool) -> None:
    image = Image.fromarray(photo_array(64, 48, 2))
    data = bytearray(encode(image, "JPEG", quality=85, progressive=progressive))
    for where, xor in flips:
        data[int(where * (len(data) - 1))] ^= xor
    damaged = bytes(data[: max(1, int(len(data) * keep))]) if keep < 1.0 else bytes(data)
    draft = verify_record(rec(damaged), DEFAULT)
    full = verify_record(rec(damaged), VerifyConfig(full_decode=True))
    assert type(draft) is type(full)
    if isinstance(draft, Rejected):
        assert draft.reason == full.reason  # type: ignore[union-attr]
    else:
        assert draft == full


def test_picklable_and_runs_in_a_process_pool() -> None:
    config = VerifyConfig(min_size=16, allowed_wnids=frozenset({WNID}))
    records = [rec(make_jpeg(32, 32, 1)), rec(b""), rec(make_jpeg(8, 8, 2)), rec(make_png(20, 20, 3))]
    assert pickle.loads(pickle.dumps(config)) == config
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(verify_record, records, [config] * len(records)))
    assert results == [verify_record(r, config) for r in records]
    assert [getattr(r, "reason", "ok") for r in results] == ["ok", "empty_file", "too_small", "ok"]

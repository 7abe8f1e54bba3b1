"""Lossless metadata stripping: EXIF (GPS, serial, owner), XMP, IPTC, comments and trailers go; the
pixels, ICC profiles and JFIF stay bit for bit; and the sharder strips by default."""
from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from imagenet_stream.cli import main
from imagenet_stream.format import IMAGE_EXT, REPORT_NAME, iter_samples
from imagenet_stream.sharding.privacy import NotAJpeg, strip_metadata
from imagenet_stream.synthetic import photo_array

GPS_IFD, SERIAL, OWNER, ORIENTATION = 0x8825, 0xA431, 0xA430, 0x0112
ICC = b"\x00\x00\x01\x00fake-icc-profile-for-the-test" + bytes(200)


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def after_soi(jpeg: bytes, *segments: bytes) -> bytes:
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def tagged_jpeg(width: int = 67, height: int = 45, *, mode: str = "RGB", subsampling: int = 2,
                progressive: bool = False, seed: int = 0) -> bytes:
    """A JPEG with everything identifying: EXIF with GPS, serial, owner and orientation; XMP; a
    comment; IPTC; a Flashpix APP2; an ICC profile (kept); and a trailer after EOI."""
    image = Image.fromarray(photo_array(width, height, seed), "RGB").convert(mode)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[SERIAL] = "SN-123456"
    exif[OWNER] = "Jane Doe"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    buf = io.BytesIO()
    options = {"subsampling": subsampling} if mode == "RGB" else {}
    image.save(buf, "JPEG", quality=85, exif=exif.tobytes(), comment=b"taken at 12 Rue Example",
               icc_profile=ICC, progressive=progressive, **options)
    xmp = segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>GPSLatitude 48.85</x:xmpmeta>")
    iptc = segment(0xED, b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x10by-line: Jane Doe")
    fpxr = segment(0xE2, b"FPXR\x00\x00extension")
    return after_soi(buf.getvalue(), xmp, iptc, fpxr) + b"TRAILER: serial SN-123456"


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


def assert_clean(stripped: bytes) -> None:
    for secret in (b"Exif\x00\x00", b"SN-123456", b"Jane Doe", b"Rue Example", b"GPSLatitude", b"8BIM",
                   b"FPXR", b"TRAILER"):
        assert secret not in stripped
    with Image.open(io.BytesIO(stripped)) as im:
        assert not im.getexif() and im.info.get("icc_profile") == ICC and "comment" not in im.info


@settings(max_examples=40, deadline=None)
@given(st.integers(8, 160), st.integers(8, 120), st.sampled_from(["RGB", "L"]), st.sampled_from([0, 1, 2]),
       st.booleans(), st.integers(0, 31))
def test_stripping_keeps_every_pixel_and_removes_every_identifying_segment(width, height, mode, subsampling,
                                                                           progressive, seed) -> None:
    original = tagged_jpeg(width, height, mode=mode, subsampling=subsampling, progressive=progressive, seed=seed)
    stripped, removed = strip_metadata(original)
    assert np.array_equal(pixels(stripped), pixels(original))  # bit-identical decode
    assert_clean(stripped)
    assert {"exif_or_xmp", "comment", "iptc", "app2", "trailer"} <= set(removed)
    assert strip_metadata(stripped) == (stripped, ())  # idempotent; nothing left to remove
    assert stripped[:2] == b"\xff\xd8" and stripped.endswith(b"\xff\xd9")


def test_a_clean_jpeg_comes_back_as_the_same_object() -> None:
    buf = io.BytesIO()
    Image.fromarray(photo_array(40, 30, 1), "RGB").save(buf, "JPEG", quality=80)
    data = buf.getvalue()
    assert strip_metadata(data)[0] is data


def test_the_adobe_segment_and_restart_markers_are_kept() -> None:
    buf = io.BytesIO()
    Image.fromarray(photo_array(64, 64, 2), "RGB").convert("CMYK").save(buf, "JPEG", quality=80)
    cmyk = segment(0xFE, b"a comment") + buf.getvalue()[2:]
    cmyk = b"\xff\xd8" + cmyk
    stripped, removed = strip_metadata(cmyk)
    assert removed == ("comment",) and b"Adobe" in stripped
    assert np.array_equal(pixels(stripped), pixels(cmyk))
    from imagenet_stream.synthetic import make_jpeg

    restarts = make_jpeg(96, 80, seed=3)
    im = Image.open(io.BytesIO(restarts))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=80, restart_marker_rows=1, comment=b"x")
    stripped, removed = strip_metadata(buf.getvalue())
    assert removed == ("comment",) and np.array_equal(pixels(stripped), pixels(buf.getvalue()))


@pytest.mark.parametrize("bad", [b"", b"\x89PNG\r\n", b"\xff\xd8\xff\xe1\x00\x40short", b"\xff\xd8\xff\xda\x00\x08"
                                 b"\x01\x01\x00\x00\x3f\x00" + b"\x12" * 50])
def test_malformed_marker_streams_raise(bad: bytes) -> None:
    with pytest.raises(NotAJpeg):
        strip_metadata(bad)


def test_the_sharder_strips_by_default_and_keeps_on_request(tmp_path: Path) -> None:
    src = tmp_path / "src" / "n01440764"
    src.mkdir(parents=True)
    originals = {f"n01440764_{i}": tagged_jpeg(80 + i, 60, seed=i, progressive=bool(i % 2)) for i in range(4)}
    for key, data in originals.items():
        (src / f"{key}.JPEG").write_bytes(data)
    for flag, out in (([], tmp_path / "stripped"), (["--keep-metadata"], tmp_path / "kept")):
        assert main(["shard", str(tmp_path / "src"), "--out", str(out), "--workers", "0", "--no-progress",
                     *flag]) == 0
        stored = {key: members[IMAGE_EXT] for shard in sorted(out.glob("*.tar"))
                  for key, members in iter_samples(shard.read_bytes())}
        assert sorted(stored) == sorted(originals)
        report = json.loads((out / REPORT_NAME).read_text())
        for key, image in stored.items():
            assert np.array_equal(pixels(image), pixels(originals[key]))
            if flag:
                assert image == originals[key]
            else:
                assert_clean(image)
        fixes = report.get("fixes", {})
        assert fixes.get("metadata_stripped", 0) == (0 if flag else 4), report

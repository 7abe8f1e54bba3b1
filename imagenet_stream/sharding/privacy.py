"""Lossless removal of identifying metadata from JPEGs: segments are dropped, pixels never re-encoded.

A JPEG is a sequence of marker segments, then entropy-coded scans, then EOI. What can identify a
person, a place or a device lives outside the pixels: EXIF (APP1: GPS position, camera serial,
owner, maker notes, thumbnails), XMP (APP1), Photoshop/IPTC (APP13), Flashpix and multi-picture
data (APP2), vendors' APP3–APP12/APP15 blocks, COM comments, and bytes after EOI (trailers, the
secondary images of MPF files). :func:`strip_metadata` keeps exactly what decoding needs:

* APP0 (JFIF/JFXX: pixel density; carries no identity);
* APP2 ``ICC_PROFILE`` chunks (colour: dropping them would change how viewers render the pixels);
* APP14 ``Adobe`` (its transform flag decides the colour conversion of 3/4-channel JPEGs);
* every table, frame, scan and restart marker, byte for byte.

Everything else listed above is removed, including the EXIF orientation tag. The streamer (like
Pillow's ``Image.open``, torchvision's and webdataset's decoders) never applies EXIF orientation,
so a stored image decodes to the same pixels with or without it; the property test in
tests/sharding/test_privacy.py checks the pixels bit for bit.
"""
from __future__ import annotations

import re

#: What each dropped segment was, for counts and logs.
_APP_NAMES = {0xE1: "exif_or_xmp", 0xE2: "app2", 0xED: "iptc", 0xFE: "comment"}
_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7: no length


class NotAJpeg(ValueError):
    """The bytes are not a well-formed JPEG marker stream (the caller keeps them as they are)."""


def _keep(marker: int, payload: bytes) -> bool:
    if marker == 0xE0:
        return True
    if marker == 0xE2:
        return payload.startswith(b"ICC_PROFILE\x00")
    if marker == 0xEE:
        return payload.startswith(b"Adobe")
    return not (0xE0 <= marker <= 0xEF or marker == 0xFE)


#: A marker inside or after scan data: 0xFF followed by anything but a stuffed 0x00, a restart
#: marker (RST0-7) or another 0xFF fill byte.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def _scan_end(data: bytes, pos: int) -> int:
    """The offset of the first marker after entropy-coded data starting at ``pos``."""
    found = _NEXT_MARKER.search(data, pos)
    if found is None:
        raise NotAJpeg("scan data runs to the end without a marker")
    return found.start()


def strip_metadata(data: bytes) -> tuple[bytes, tuple[str, ...]]:
    """``(the JPEG without identifying segments, what was removed)``; the input itself when nothing was.

    Raises :class:`NotAJpeg` for a malformed marker stream (verification rejects those anyway).
    """
    if data[:2] != b"\xff\xd8":
        raise NotAJpeg("no SOI marker")
    out = [b"\xff\xd8"]
    removed: list[str] = []
    pos, n = 2, len(data)
    while True:
        if pos + 2 > n:
            raise NotAJpeg("ends before EOI")
        if data[pos] != 0xFF:
            raise NotAJpeg(f"expected a marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker == _EOI:
            out.append(b"\xff\xd9")
            if pos + 2 < n:
                removed.append("trailer")
            break
        if marker in _STANDALONE or marker == _SOI:
            out.append(data[pos:pos + 2])
            pos += 2
            continue
        if pos + 4 > n:
            raise NotAJpeg("segment header cut short")
        length = (data[pos + 2] << 8) | data[pos + 3]
        end = pos + 2 + length
        if length < 2 or end > n:
            raise NotAJpeg(f"segment 0x{marker:02X} at byte {pos} overruns the file")
        payload = data[pos + 4:end]
        if marker == _SOS:
            scan_end = _scan_end(data, end)
            out.append(data[pos:scan_end])
            pos = scan_end
            continue
        if _keep(marker, payload):
            out.append(data[pos:end])
        else:
            removed.append(_APP_NAMES.get(marker, f"app{marker - 0xE0}"))
        pos = end
    if not removed:
        return data, ()
    return b"".join(out), tuple(removed)


__all__ = ["NotAJpeg", "strip_metadata"]

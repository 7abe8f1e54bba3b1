"""Generated hostile inputs for the fuzz tests: a corpus of broken and unusual image files, and tars
that lie (path traversal, links, pickles, missing or bogus members, truncation, random bytes)."""
from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from imagenet_stream.synthetic import make_jpeg, make_png, photo_array, truncated

#: Where the pickle bomb would write if anything ever unpickled it.
PICKLE_CANARY = Path("/tmp/imagenet-stream-pickle-canary")


class _Canary:
    """Unpickling this creates PICKLE_CANARY (the tests assert it never exists)."""

    def __reduce__(self):
        return (PICKLE_CANARY.write_text, ("unpickled!",))


def pickle_bomb() -> bytes:
    return pickle.dumps(_Canary())


def _encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def exif_rotated_jpeg() -> bytes:
    image = Image.fromarray(photo_array(120, 80, seed=5), "RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW
    return _encode(image, "JPEG", quality=90, exif=exif.tobytes())


def corpus() -> dict[str, tuple[bytes, str | None]]:
    """``name -> (file bytes, expected reject reason or None when it must be kept)``."""
    rgb = Image.fromarray(photo_array(96, 72, seed=7), "RGB")
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    sixteen = Image.fromarray((np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20).astype(np.uint16))
    bomb = Image.new("1", (10_000, 9_000))
    return {
        "zero_byte": (b"", "empty_file"),
        "truncated": (truncated(make_jpeg(200, 150, seed=1), 0.3), "truncated"),
        "garbage": (bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)), "undecodable"),
        "html_error_page": (b"<!DOCTYPE html><html><body><h1>503 Service Unavailable</h1></body></html>",
                            "undecodable"),
        "one_by_one": (make_jpeg(1, 1, seed=2), "too_small"),
        "png_bomb": (_encode(bomb, "PNG"), "decompression_bomb"),
        "gzip_bomb": (gzip.compress(bytes(50 << 20), 9), "undecodable"),
        "cmyk": (make_jpeg(80, 60, seed=3, mode="CMYK"), None),
        "png16": (_encode(sixteen, "PNG"), None),
        "palette_transparent": (_encode(palette, "PNG", transparency=0), None),
        "gif": (_encode(palette.convert("RGB").convert("P"), "GIF"), None),
        "webp": (_encode(rgb, "WEBP", quality=80), None),
        "exif_rotated": (exif_rotated_jpeg(), None),
        "plain": (make_jpeg(100, 80, seed=4), None),
        "png": (make_png(90, 70, seed=6), None),
    }


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def file_info(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def link_info(name: str, target: str, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


def hostile_source_tar(wnid: str) -> tuple[bytes, dict[str, str | None]]:
    """A tar of one per-synset tar whose members lie, and what must happen to each image in it.

    Returns ``(outer tar bytes, {member name: expected reason or None})`` for the image members;
    non-image members (pickle, links, folders) must simply be ignored.
    """
    good = make_jpeg(64, 48, seed=11)
    inner = tar_bytes([
        (file_info(f"../../{wnid}_1.JPEG"), good),                      # traversal: only a key is derived
        (file_info(f"/etc/{wnid}_2.JPEG"), make_jpeg(64, 48, seed=12)),  # absolute
        (link_info(f"{wnid}_3.JPEG", "/etc/passwd"), None),             # symlink: not a file, ignored
        (link_info(f"{wnid}_4.JPEG", f"../../{wnid}_1.JPEG", hard=True), None),
        (file_info(f"{wnid}_5.pickle"), pickle_bomb()),                 # never unpickled: not an image
        (file_info(f"{wnid}_6.JPEG"), b"\x80\x04garbage-pickle-ish"),
    ])
    outer = tar_bytes([(file_info(f"{wnid}.tar"), inner), (file_info("evil.pkl"), pickle_bomb())])
    return outer, {f"{wnid}_1": None, f"{wnid}_2": None, f"{wnid}_6": "undecodable"}


def write_gzip_bomb(path: Path, wnid: str, member_bytes: int = 400 << 20) -> None:
    """``path`` = a ``.tar.gz`` of one per-synset tar holding a JPEG-named member of ``member_bytes``
    zeros (a few hundred KB compressed) and then one good image. Written in chunks, never held whole."""
    good = make_jpeg(64, 48, seed=21)
    big = file_info(f"{wnid}_1.JPEG")
    big.size = member_bytes
    small = file_info(f"{wnid}_2.JPEG")
    small.size = len(good)
    inner_tail = (bytes(-member_bytes % 512) + small.tobuf(tarfile.GNU_FORMAT) + good + bytes(-len(good) % 512)
                  + bytes(1024))
    inner_size = 512 + member_bytes + len(inner_tail)
    outer = file_info(f"{wnid}.tar")
    outer.size = inner_size
    with gzip.open(path, "wb", compresslevel=6) as out:
        out.write(outer.tobuf(tarfile.GNU_FORMAT) + big.tobuf(tarfile.GNU_FORMAT))
        zeros = bytes(1 << 20)
        left = member_bytes
        while left:
            out.write(zeros[:min(left, len(zeros))])
            left -= min(left, len(zeros))
        out.write(inner_tail + bytes(-inner_size % 512) + bytes(1024))

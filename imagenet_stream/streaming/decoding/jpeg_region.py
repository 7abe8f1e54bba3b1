"""The native region decoder: decode only the crop of a JPEG, bit-identical to Pillow's decode of it.

``_jpegroi`` (C, ``setup.py`` builds it where libjpeg-turbo's headers exist) decodes one rectangle of
a baseline or progressive 8-bit JPEG at a DCT scale of 1, 1/2, 1/4 or 1/8: rows above the rectangle
are only entropy-decoded (``jpeg_skip_scanlines``), rows below it are never decoded, and columns
beside it are skipped inside each row (``jpeg_crop_scanline``), so the IDCT, upsampling and colour
conversion run on little more than the crop.

**One library.** The extension links no libjpeg: it resolves libjpeg-turbo's functions from the
library Pillow's ``_imaging`` module loads (the copy bundled in Pillow's wheel: 3.2.0 here, while the
system has 2.1.5). Bit-identity across libjpeg versions is not promised (SIMD kernels and upsampling
have changed between releases; 2.1.5 and 3.2.0 happened to agree on every test image, measured on
AVX2), so running the very library Pillow runs is what makes the two paths give the same pixels.
Both decode with Pillow's non-draft settings: ISLOW IDCT, fancy upsampling, RGB(X) output.

**Exactness** (every rectangle equals the same rectangle of Pillow's full decode at the same scale;
``tests/streaming/test_jpeg_region.py`` property-tests it):

* ``jpeg_crop_scanline`` moves the left edge down to an iMCU boundary; the extra columns are dropped
  while copying rows out. With 4:2:2/4:2:0 chroma, libjpeg's fancy upsampling treats the first and
  last decoded column as an image edge (up to 15 levels off at the rectangle's sides), so one more column
  is decoded on each side and dropped; and a row of 2 chroma samples or fewer makes libjpeg switch to
  box upsampling, so at least 8 pixels per row are decoded.
* Rows need no margin: ``jpeg_skip_scanlines`` keeps the context rows that h2v2 fancy upsampling
  reads at the crop's top edge (measured exact with 2.1.5 and 3.2.0 at every row offset).
* Not decoded natively (Pillow decodes them, as before): CMYK/YCCK, other component counts, 12-bit,
  lossless, arithmetic-coded and hierarchical JPEGs, chroma subsampling other than 4:4:4/4:2:2/4:2:0
  (e.g. 4:4:0, 4:1:1: untested), headers with junk between markers, Pillow without libjpeg-turbo >= 2.1.

**Corrupt data.** Pillow raises ``OSError`` for a JPEG whose data ends before its last row (its
source suspends) and ignores libjpeg's corrupt-data warnings. The region decoder never reads the
rows below the crop, so it checks instead that the scan's entropy-coded data runs on to an EOI
marker. Any libjpeg warning or error, a scan not ended by EOI, or a multi-scan file cut short sends
the image to Pillow, which then raises or decodes exactly as it always did: the same exceptions
(``DECODE_ERRORS``) and the same pixels whichever path ran.

Set ``IMAGENET_STREAM_DECODER=pillow`` to force the Pillow path (read once per process), or use
:func:`pillow_only` around a block.
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any, Union

log = logging.getLogger(__name__)

ENV = "IMAGENET_STREAM_DECODER"
_MIN_TURBO = (2, 1)

ImageBytes = Union[bytes, bytearray, memoryview]

_native: ModuleType | None = None
_status: str | None = None  # None until resolved


def _bind() -> tuple[ModuleType | None, str]:
    """Import the extension and bind it to Pillow's libjpeg-turbo: ``(module or None, description)``."""
    if os.environ.get(ENV, "auto").strip().lower() == "pillow":
        return None, f"Pillow ({ENV}=pillow)"
    try:
        from imagenet_stream.streaming.decoding import _jpegroi
    except ImportError as exc:
        return None, f"Pillow (native region decoder not built: {exc})"
    from PIL import _imaging, features

    version = features.version("libjpeg_turbo")
    try:
        parsed = tuple(int(part) for part in (version or "").split(".")[:2])
    except ValueError:
        parsed = ()
    if len(parsed) < 2 or parsed < _MIN_TURBO:
        return None, f"Pillow (its JPEG library is not libjpeg-turbo >= 2.1: {version or 'IJG libjpeg'})"
    try:
        library = _jpegroi.bind(_imaging.__file__)
    except OSError as exc:
        return None, f"Pillow (cannot use Pillow's libjpeg-turbo: {exc})"
    return _jpegroi, f"native region decoder (libjpeg-turbo {version}, {library})"


def status() -> str:
    """Which JPEG decode path this process runs, resolved on first use. Logged once per run: at INFO
    in the process that builds the dataset (``ImageNetStream`` resolves it there), at DEBUG in a
    DataLoader worker (a forked one inherits it resolved; a spawned one would repeat the line)."""
    global _native, _status
    if _status is None:
        _native, _status = _bind()
        from torch.utils.data import get_worker_info

        log.log(logging.DEBUG if get_worker_info() is not None else logging.INFO, "JPEG crops decode with: %s",
                _status)
    return _status


def available() -> bool:
    """Whether the native region decoder runs in this process."""
    status()
    return _native is not None


@contextlib.contextmanager
def pillow_only() -> Iterator[None]:
    """Decode with the Pillow path inside the block, process-wide (for tests and benchmarks)."""
    global _native
    status()
    saved, _native = _native, None
    try:
        yield
    finally:
        _native = saved


def header(data: ImageBytes) -> tuple[int, int] | None:
    """``(width, height)`` when the native decoder handles ``data``, else None (decode with Pillow)."""
    if _status is None:
        status()
    if _native is None:
        return None
    width, height, reason = _native.header(data)
    if reason:
        log.debug("JPEG not for the region decoder (%s); Pillow decodes it", reason)
        return None
    return width, height


def decode(data: ImageBytes, denom: int, box: tuple[int, int, int, int]) -> bytearray | None:
    """The pixels of ``box`` (in the image decoded at ``1/denom``) as RGBX rows, or None (use Pillow).

    ``header`` must have accepted ``data``. The result is a new bytearray of ``box`` width x height x 4
    bytes, written by libjpeg directly or through one row buffer, ready for a zero-copy view.
    """
    assert _native is not None, "decode() without a native decoder; call header() first"
    result = _native.decode(data, denom, *box)
    if isinstance(result, str):
        log.debug("region decode declined (%s); Pillow decodes the image", result)
        return None
    return result


def to_planar(rgbx: Any, width: int, height: int, out: Any, flip: bool) -> bool:
    """Write RGBX rows (``width * height * 4`` C-contiguous bytes) into ``out`` as three planes R, G, B
    (``width * height * 3`` bytes), mirrored left-right when ``flip``; about 4x faster than torch's
    strided copy. False when the native module is not in use (the caller copies another way)."""
    if _status is None:
        status()
    if _native is None:
        return False
    _native.planar(rgbx, width, height, out, flip)
    return True

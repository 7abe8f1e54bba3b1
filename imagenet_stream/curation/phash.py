"""Perceptual hashes: one 64-bit DCT hash per image, the same for an image and its mirror image.

The hash follows pHash (``imagehash.phash``): the image in grey, area-averaged to 32 x 32, its 2D
DCT, and one bit per low-frequency coefficient, set when the coefficient is above their median.
Two changes make it fit near-duplicate search on ImageNet:

* **Mirror images hash the same.** The 32 x 32 grey image is averaged with its left-right mirror
  before the DCT, which cancels every odd horizontal frequency; the bits come from the 64 lowest
  even-frequency coefficients (DC left out: it only says "brighter than average"). A horizontally
  flipped copy (a common augmentation and a common re-upload) is then at distance 0, not ~32.
* **Brightness and contrast do not matter**: a colour jitter scales or shifts the coefficients,
  which leaves their order around the median unchanged.

Resized, re-encoded, slightly cropped and colour-jittered copies land within a few bits; unrelated
photos around 32. The sharder computes the hash while it verifies each image (on the thumbnail the
verification decode already made), and stores it in the shard's side index, so ``dedup`` never
decodes an image again.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

#: Side of the grey thumbnail the DCT runs on.
SIDE = 32
#: Bits per hash.
BITS = 64


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix: ``D @ x`` is the DCT of the column vector ``x``."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d.astype(np.float32)


def _low_even_frequencies() -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the 64 lowest coefficients with an even horizontal frequency, DC excluded."""
    cells = [(r, c) for r in range(SIDE) for c in range(0, SIDE, 2) if (r, c) != (0, 0)]
    cells.sort(key=lambda rc: (rc[0] + rc[1] // 2, rc[0]))
    chosen = np.array(cells[:BITS])
    return chosen[:, 0], chosen[:, 1]


_DCT = _dct_matrix(SIDE)
_ROWS, _COLS = _low_even_frequencies()


def grey_thumbnail(im: Image.Image) -> np.ndarray:
    """The image as a float32 ``SIDE x SIDE`` grey thumbnail (area average; aspect not kept)."""
    grey = im if im.mode == "L" else im.convert("L")
    return np.asarray(grey.resize((SIDE, SIDE), Image.Resampling.BOX), dtype=np.float32)


def perceptual_hash(im: Image.Image) -> int:
    """The 64-bit mirror-invariant perceptual hash of a decoded image (any mode, any size)."""
    return hash_thumbnail(grey_thumbnail(im))


def hash_thumbnail(thumb: np.ndarray) -> int:
    """:func:`perceptual_hash` of a ``SIDE x SIDE`` grey thumbnail."""
    symmetric = (thumb + thumb[:, ::-1]) * 0.5
    coefficients = (_DCT @ symmetric @ _DCT.T)[_ROWS, _COLS]
    bits = coefficients > np.median(coefficients)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def hamming(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """Bitwise Hamming distances of uint64 hashes (broadcasting), as uint8."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64))
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.uint8)
    return _POPCOUNT8[x[..., None].view(np.uint8)].sum(axis=-1, dtype=np.uint8)  # numpy < 2.0


__all__ = ["BITS", "SIDE", "grey_thumbnail", "hamming", "hash_thumbnail", "perceptual_hash"]

"""Image bytes -> cropped uint8 CHW tensor, fast: the standard ImageNet train/eval presets.

Speed comes from decoding and resizing no more pixels than the output needs:

* The crop is chosen first, on the size read from the JPEG header. A JPEG can be decoded at 1/2, 1/4
  or 1/8 of its size for a fraction of the cost (libjpeg's scaled IDCT); the largest reduction that
  still leaves the crop at least the output's pixels in both dimensions is used, so the final resize
  only shrinks and its quality matches a full decode.
* The crop box is mapped into the decoded image and rounded to whole pixels (each edge moves by
  at most half a decoded pixel), so cropping is a slice (:mod:`~imagenet_stream.streaming.decoding.geometry`).
* Baseline/progressive 8-bit JPEGs decode only that box (:mod:`~imagenet_stream.streaming.decoding.jpeg_region`:
  libjpeg-turbo's skip/crop scanline API, bit-identical to Pillow's full decode of the same bytes).
  Everything else, and any JPEG the region decoder declines, takes the Pillow path: ``Image.draft``
  + full decode at that scale, then the same crop. Both paths give the identical tensor.
* The crop is resized with torch's uint8 antialiased bilinear kernel where it is vectorised
  (AVX2/AVX512: about 3x faster than Pillow's resize, same filter), else with Pillow's ``resize``;
  both read only the crop's pixels. The flip and the RGBX -> planar RGB layout change ride on the one
  final copy (native where the region decoder's module loads: about 4x faster than torch's strided
  copy), written straight into a batch's slot when the caller passes ``out=``.

Conventions: no EXIF orientation is applied (as torchvision's ``ImageFolder`` loader); every output
has 3 channels (grayscale is replicated, CMYK/palette/alpha images are converted to RGB); the same
bytes and the same ``np.random.Generator`` state give the identical tensor on a given machine,
whichever decode path ran. Undecodable bytes raise Pillow's errors (``PIL.UnidentifiedImageError`` /
``OSError``); images above :data:`MAX_PIXELS` raise ``PIL.Image.DecompressionBombError`` before any
pixel is decoded.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, Union

import numpy as np
import torch
from PIL import Image

from imagenet_stream.errors import ConfigError
from imagenet_stream.streaming.decoding import jpeg_region
from imagenet_stream.streaming.decoding.geometry import check_range as _check_range
from imagenet_stream.streaming.decoding.geometry import draft_scale, random_resized_crop_params
from imagenet_stream.streaming.decoding.geometry import eval_box as _eval_box
from imagenet_stream.streaming.decoding.geometry import snap_box as _snap_box
from imagenet_stream.streaming.stage_times import DecodeTimer

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SampleTransform",
    "BytesTransform",
    "TrainTransform",
    "EvalTransform",
    "PILTransform",
    "RawTransform",
    "decode_rgb",
    "random_resized_crop_params",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ImageBytes = Union[bytes, bytearray, memoryview]
Box = tuple[float, float, float, float]
SampleTransform = Callable[[ImageBytes, np.random.Generator], Any]
"""Encoded image bytes + a per-sample generator -> the sample's image output."""

_BILINEAR = Image.Resampling.BILINEAR


# --------------------------------------------------------------------------- decoding
#: Images with more pixels than this are refused before any pixel is decoded (Pillow's own default
#: limit, made explicit so it holds whatever ``PIL.Image.MAX_IMAGE_PIXELS`` a process sets).
MAX_PIXELS = 89_478_485


def _check_pixels(width: int, height: int) -> None:
    """Refuse images above :data:`MAX_PIXELS`, or above twice a lower ``PIL.Image.MAX_IMAGE_PIXELS``
    (``Image.open``'s own check, repeated so the region decoder, which skips ``Image.open``, refuses
    exactly what the Pillow path refuses)."""
    pixels = width * height
    pillow_limit = Image.MAX_IMAGE_PIXELS
    if pixels > MAX_PIXELS or (pillow_limit is not None and pixels > 2 * pillow_limit):
        limit = MAX_PIXELS if pillow_limit is None else min(MAX_PIXELS, 2 * pillow_limit)
        raise Image.DecompressionBombError(
            f"image of {width}x{height} = {pixels:,} pixels exceeds the limit of {limit:,}")


def _open(data: ImageBytes) -> Image.Image:
    """Open lazily: only the header is parsed, nothing is decoded yet.

    Raises ``PIL.Image.DecompressionBombError`` (one of the errors a dataset counts as a corrupt
    sample) for images above :data:`MAX_PIXELS`, whatever the decode path.
    """
    im = Image.open(io.BytesIO(data))
    _check_pixels(*im.size)
    return im


def _draft(im: Image.Image, box_w: float, box_h: float, out_w: int, out_h: int) -> float:
    """Ask for the largest DCT reduction keeping ``box_w/s >= out_w`` and ``box_h/s >= out_h``.

    Returns the reduction actually applied (1.0 for non-JPEGs or when none fits); the image must
    not be loaded yet. Pillow picks ``s`` from ``min(W // req_w, H // req_h)``, so requesting
    ``(W // s, H // s)`` yields exactly ``s`` (it lies in ``[s, 2s)``); the image then has
    ``ceil(W / s) x ceil(H / s)`` pixels and original coordinate ``x`` maps to ``x / s``.
    """
    s = draft_scale(box_w, box_h, out_w, out_h)
    if s == 1:
        return 1.0
    width, height = im.size
    result = im.draft("RGB", (width // s, height // s))
    if result is None:  # not a JPEG (or a multi-tile one): full decode
        return 1.0
    return width / result[1][2]


def _torch_resize_is_fast() -> bool:
    """torch's uint8 antialiased bilinear kernel is vectorised for AVX2/AVX512 only (about 3x faster
    than Pillow's resize there, about 2x slower elsewhere)."""
    return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


_USE_TORCH_RESIZE = _torch_resize_is_fast()


def _crop_resize(im: Image.Image, box: tuple[int, int, int, int], side: int, flip: bool,
                 use_torch: bool | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """Crop ``box`` from the loaded ``im``, resize it to ``side x side`` (bilinear, antialiased) and flip.

    Returns a contiguous uint8 ``[3, side, side]`` tensor (``out`` when given). Both backends compute
    the same filter (torch's ``antialias=True`` bilinear is Pillow's; outputs agree within a few
    levels) on the crop's pixels only, exactly as :func:`_resize_rgbx` does on a region-decoded crop.
    """
    region = im.crop(box)
    if region.mode != "RGB":  # gray is replicated: Pillow's L -> RGB copies the level to each band
        region = region.convert("RGB")
    # Pillow keeps RGB as 4 bytes per pixel: "RGBX" is a plain row copy, and both kernels' native
    # 4-channel layout; a bytearray is writable, so torch can share it without a copy.
    return _resize_rgbx(bytearray(region.tobytes("raw", "RGBX")), region.size, side, flip, use_torch, out)


def _resize_rgbx(pixels: bytearray, size: tuple[int, int], side: int, flip: bool, use_torch: bool | None = None,
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """RGBX rows of ``size``, resized to ``side x side`` and flipped if asked: uint8 ``[3, side, side]``,
    written into ``out`` when given."""
    if use_torch is None:
        use_torch = _USE_TORCH_RESIZE
    width, height = size
    if (width, height) == (side, side):
        rgbx = np.frombuffer(pixels, dtype=np.uint8).reshape(side, side, 4)
    elif use_torch:
        x = torch.frombuffer(pixels, dtype=torch.uint8).view(height, width, 4)
        x = x.permute(2, 0, 1).unsqueeze(0)  # [1, 4, h, w] channels_last view
        x = torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", antialias=True)
        # channels_last when it shrinks: [side, side, 4] rows, contiguous (an upscale may be planar)
        rgbx = np.ascontiguousarray(x[0].permute(1, 2, 0).numpy())
    else:
        # "RGBX" maps the buffer without a copy; Pillow resizes each band alike.
        region = Image.frombuffer("RGBX", size, pixels, "raw", "RGBX", 0, 1)
        rgbx = np.asarray(region.resize((side, side), _BILINEAR))
    return _planar(rgbx, flip, out)


def _planar(rgbx: np.ndarray, flip: bool, out: torch.Tensor | None) -> torch.Tensor:
    """``[h, w, 4]`` RGBX pixels -> uint8 ``[3, h, w]`` (``out`` when given, else a new tensor), mirrored
    left-right when ``flip``: the one copy out of the pixel layout the decoder and the resize use."""
    height, width = rgbx.shape[:2]
    dst = torch.empty(3, height, width, dtype=torch.uint8) if out is None else out
    if not jpeg_region.to_planar(rgbx, width, height, dst.numpy(), flip):
        np.copyto(dst.numpy(), (rgbx[:, ::-1, :3] if flip else rgbx[:, :, :3]).transpose(2, 0, 1))
    return dst


def _check_out(out: torch.Tensor | None, side: int) -> None:
    if out is not None and not (out.dtype == torch.uint8 and tuple(out.shape) == (3, side, side)
                                and out.is_contiguous() and out.device.type == "cpu"):
        raise ConfigError(f"out= must be a contiguous CPU uint8 tensor of shape (3, {side}, {side}), got "
                          f"{out.dtype} {tuple(out.shape)} on {out.device}")


def _decode_crop(data: ImageBytes, plan: Callable[[int, int], tuple[Box, bool]], side: int,
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """Decode the box ``plan(width, height)`` picks (original coordinates, plus a flip), resized to
    ``side`` (into ``out`` when given).

    The region decoder runs when it takes the image; otherwise, or when it declines mid-way (corrupt
    data), Pillow decodes the same box at the same scale. ``plan`` runs once either way (it may draw
    from a generator), after the pixel limit is checked.
    """
    _check_out(out, side)
    size = jpeg_region.header(data)
    if size is not None:
        _check_pixels(*size)
        box, flip = plan(*size)
        s = draft_scale(box[2] - box[0], box[3] - box[1], side, side)
        snapped = _snap_box(box, s, (-(-size[0] // s), -(-size[1] // s)))
        with DecodeTimer():
            pixels = jpeg_region.decode(data, s, snapped)
        if pixels is not None:
            return _resize_rgbx(pixels, (snapped[2] - snapped[0], snapped[3] - snapped[1]), side, flip, out=out)
    im = _open(data)
    if size is None:
        box, flip = plan(*im.size)
    scale = _draft(im, box[2] - box[0], box[3] - box[1], side, side)
    with DecodeTimer():
        im.load()
    return _crop_resize(im, _snap_box(box, scale, im.size), side, flip, out=out)


def _load_rgb_or_l(im: Image.Image) -> Image.Image:
    """Decode; keep ``RGB`` and ``L`` (``_to_chw`` replicates gray), convert anything else to RGB."""
    with DecodeTimer():
        im.load()
    return im if im.mode in ("RGB", "L") else im.convert("RGB")


def _to_chw(im: Image.Image) -> torch.Tensor:
    """An ``RGB``/``L`` image -> contiguous uint8 ``[3, H, W]`` tensor in one copy."""
    hwc = np.asarray(im)
    chw = hwc[None] if hwc.ndim == 2 else hwc.transpose(2, 0, 1)
    if chw.shape[0] == 1:
        chw = np.broadcast_to(chw, (3, *chw.shape[1:]))
    return torch.from_numpy(np.array(chw, dtype=np.uint8, order="C", copy=True))


def decode_rgb(data: ImageBytes) -> Image.Image:
    """Fully decode any Pillow-readable image bytes to an ``RGB`` PIL image (grayscale/CMYK safe)."""
    im = _open(data)
    with DecodeTimer():
        im.load()
    return im if im.mode == "RGB" else im.convert("RGB")


def _check_size(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive int, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- transforms
class BytesTransform:
    """Base of the transforms that take encoded bytes and a per-sample generator.

    ``build_transform`` passes instances through unchanged; any other callable is treated as a
    PIL-image transform and wrapped in :class:`PILTransform`.
    """

    def __call__(self, data: ImageBytes, rng: np.random.Generator | None = None) -> Any:
        raise NotImplementedError

    def out_shape(self) -> tuple[int, ...] | None:
        """The uint8 shape every output has when the transform can write it into a caller's slot
        (``__call__(data, rng, out=slot)``), else None."""
        return None

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class TrainTransform(BytesTransform):
    """``RandomResizedCrop(size, scale, ratio)`` (bilinear) + horizontal flip (p=0.5) -> uint8 ``[3, size, size]``.

    The crop and flip are drawn from the per-sample ``rng`` (crop first, then flip), so the output
    is a pure function of the bytes and the generator state.
    """

    def __init__(
        self,
        size: int = 224,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip: bool = True,
    ) -> None:
        self.size = _check_size("size", size)
        self.scale = _check_range("scale", scale)
        self.ratio = _check_range("ratio", ratio)
        self.flip = bool(flip)

    def __call__(self, data: ImageBytes, rng: np.random.Generator | None = None, *,
                 out: torch.Tensor | None = None) -> torch.Tensor:
        """The sample's crop; written into ``out`` (a uint8 ``[3, size, size]`` slot, e.g. of a batch)
        when given."""
        if rng is None:
            raise ConfigError("TrainTransform needs a per-sample np.random.Generator, got None")

        def plan(width: int, height: int) -> tuple[Box, bool]:
            left, top, crop_w, crop_h = random_resized_crop_params(width, height, rng, self.scale, self.ratio)
            return (left, top, left + crop_w, top + crop_h), self.flip and rng.random() < 0.5

        return _decode_crop(data, plan, self.size, out)

    def out_shape(self) -> tuple[int, ...]:
        return (3, self.size, self.size)


class EvalTransform(BytesTransform):
    """Resize the short side to ``resize`` then centre-crop ``size`` (bilinear) -> uint8 ``[3, size, size]``.

    Done as one resize of the kept region (see ``_eval_box``), after a draft decode that keeps the
    short side at least ``resize`` pixels. ``rng`` is accepted for interface symmetry and unused.
    """

    def __init__(self, size: int = 224, resize: int = 256) -> None:
        self.size = _check_size("size", size)
        self.resize = _check_size("resize", resize)
        if self.resize < self.size:
            raise ConfigError(f"resize ({resize}) must be >= the crop size ({size})")

    def __call__(self, data: ImageBytes, rng: np.random.Generator | None = None, *,
                 out: torch.Tensor | None = None) -> torch.Tensor:
        """The sample's centre crop; written into ``out`` (uint8 ``[3, size, size]``) when given."""
        return _decode_crop(data, lambda w, h: (_eval_box(w, h, self.size, self.resize), False), self.size, out)

    def out_shape(self) -> tuple[int, ...]:
        return (3, self.size, self.size)


class PILTransform(BytesTransform):
    """Decode fully to an RGB PIL image and call ``fn`` on it (e.g. a torchvision ``Compose``).

    ``fn`` draws its randomness from wherever it does (torchvision: torch's global RNG, seeded
    per DataLoader worker), not from the per-sample ``rng``.
    """

    def __init__(self, fn: Callable[[Image.Image], Any]) -> None:
        if not callable(fn):
            raise ConfigError(f"PILTransform needs a callable, got {fn!r}")
        self.fn = fn

    def __call__(self, data: ImageBytes, rng: np.random.Generator | None = None) -> Any:
        return self.fn(decode_rgb(data))


class RawTransform(BytesTransform):
    """The whole decoded image as a uint8 ``[3, H, W]`` RGB tensor (no crop, no resize)."""

    def __call__(self, data: ImageBytes, rng: np.random.Generator | None = None) -> torch.Tensor:
        return _to_chw(_load_rgb_or_l(_open(data)))

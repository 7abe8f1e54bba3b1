"""Decode + crop presets on real JPEG/PNG bytes: geometry, determinism, and pixels vs full-decode references."""
from __future__ import annotations

import io
import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from imagenet_stream.errors import ConfigError
from imagenet_stream.streaming.decoding import jpeg_region
from imagenet_stream.streaming.decoding import transforms as decode
from imagenet_stream.streaming.decoding.presets import build_transform
from imagenet_stream.streaming.decoding.transforms import (
    BytesTransform,
    EvalTransform,
    PILTransform,
    RawTransform,
    TrainTransform,
    decode_rgb,
    random_resized_crop_params,
)
from imagenet_stream.synthetic import make_jpeg, make_png


# --------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def images() -> dict[str, bytes]:
    """Real encoded images, built once (the big one takes a moment to synthesise)."""
    return {
        "tiny": make_jpeg(20, 30, seed=1),
        "small": make_jpeg(68, 56, seed=2),
        "median": make_jpeg(500, 375, seed=3),
        "portrait": make_jpeg(375, 500, seed=4),
        "mid": make_jpeg(1200, 900, seed=5),
        "big": make_jpeg(2400, 1632, seed=6),
        "gray": make_jpeg(500, 375, seed=7, mode="L"),
        "cmyk": make_jpeg(500, 375, seed=8, mode="CMYK"),
        "gray_big": make_jpeg(1600, 1200, seed=9, mode="L"),
        "png": make_png(320, 240, seed=10),
    }


@pytest.fixture(params=[True, False], ids=["torch-resize", "pillow-resize"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run a test with each resize backend (the torch one is only picked on AVX2/AVX512 CPUs)."""
    monkeypatch.setattr(decode, "_USE_TORCH_RESIZE", request.param)
    return request.param


def mad(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference of two uint8 images, in levels of 255."""
    assert a.shape == b.shape
    return (a.int() - b.int()).abs().float().mean().item()


def chw(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(im.convert("RGB")).transpose(2, 0, 1).copy())


def reference_train(data: bytes, seed: int, size: int = 224) -> torch.Tensor:
    """No draft: full decode, the same crop params and flip draw, Pillow crop + bilinear resize."""
    im = Image.open(io.BytesIO(data)).convert("RGB")
    rng = np.random.default_rng(seed)
    left, top, w, h = random_resized_crop_params(im.width, im.height, rng)
    flip = rng.random() < 0.5
    out = chw(im.crop((left, top, left + w, top + h)).resize((size, size), Image.Resampling.BILINEAR))
    return out.flip(-1) if flip else out


def reference_eval(data: bytes, size: int = 224, resize: int = 256) -> torch.Tensor:
    """torchvision's PIL path: Resize(256) (short side, long side truncated) then CenterCrop(224)."""
    im = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = im.size
    new_w, new_h = (resize, int(resize * h / w)) if w <= h else (int(resize * w / h), resize)
    im = im.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left, top = int(round((new_w - size) / 2.0)), int(round((new_h - size) / 2.0))
    return chw(im.crop((left, top, left + size, top + size)))


# --------------------------------------------------------------------------- crop geometry
scales = st.tuples(st.floats(0.01, 1.0), st.floats(0.01, 1.0)).map(sorted)
ratios = st.tuples(st.floats(0.2, 5.0), st.floats(0.2, 5.0)).map(sorted)


def fallback_crop(width: int, height: int, ratio: tuple[float, float]) -> tuple[int, int, int, int]:
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, max(1, round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        w, h = max(1, round(height * ratio[1])), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 3000), st.integers(0, 2**32), scales, ratios)
def test_crop_params_inside_and_within_bounds(width, height, seed, scale, ratio) -> None:
    left, top, w, h = random_resized_crop_params(width, height, np.random.default_rng(seed), scale, ratio)
    assert w >= 1 and h >= 1 and left >= 0 and top >= 0
    assert left + w <= width and top + h <= height
    assert (left, top, w, h) == random_resized_crop_params(width, height, np.random.default_rng(seed), scale, ratio)
    if (left, top, w, h) == fallback_crop(width, height, ratio):
        return
    # A drawn crop: some real-valued (w', h') within rounding of (w, h) has area share and ratio in range.
    area = width * height
    assert (w - 0.5) * (h - 0.5) <= scale[1] * area + 1e-9
    assert (w + 0.5) * (h + 0.5) >= scale[0] * area - 1e-9
    assert (w - 0.5) / (h + 0.5) <= ratio[1] + 1e-9
    assert (w + 0.5) / max(h - 0.5, 1e-9) >= ratio[0] - 1e-9


def test_crop_params_distribution_spans_the_bounds() -> None:
    rng = np.random.default_rng(0)
    crops = np.array([random_resized_crop_params(500, 375, rng) for _ in range(3000)], dtype=float)
    share = crops[:, 2] * crops[:, 3] / (500 * 375)
    log_ratio = np.log(crops[:, 2] / crops[:, 3])
    assert 0.075 < share.min() < 0.1 and share.max() > 0.95
    assert log_ratio.min() < math.log(0.8) and log_ratio.max() > math.log(1.25)
    assert abs(np.median(log_ratio)) < 0.05  # log-uniform ratio: symmetric about 1
    assert crops[:, 0].min() == 0 and (crops[:, 0] + crops[:, 2]).max() == 500  # placements reach both edges


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [(1000, 10, (493, 0, 13, 10)), (10, 1000, (0, 493, 10, 13)), (1, 1, (0, 0, 1, 1))],
)
def test_crop_params_fallback_is_centre_crop_clamped_to_ratio(width, height, expected) -> None:
    # No crop with area >= 90% and ratio within [3/4, 4/3] fits these shapes: always the fallback.
    for seed in range(5):
        assert random_resized_crop_params(width, height, np.random.default_rng(seed), (0.9, 1.0)) == expected


@pytest.mark.parametrize(
    "bad", [{"scale": (0.5, 0.1)}, {"scale": (0.0, 1.0)}, {"ratio": (-1.0, 2.0)}, {"ratio": (1.0, 2.0, 3.0)}]
)
def test_crop_params_reject_bad_ranges(bad) -> None:
    with pytest.raises(ConfigError, match=r"\("):
        random_resized_crop_params(100, 100, np.random.default_rng(0), **bad)
    with pytest.raises(ValueError):
        TrainTransform(**bad)


# --------------------------------------------------------------------------- train / eval presets
@pytest.mark.parametrize("name", ["tiny", "small", "median", "portrait", "big", "gray", "cmyk", "png"])
def test_presets_give_uint8_chw(images, backend, name) -> None:
    for transform in (TrainTransform(), EvalTransform()):
        out = transform(images[name], np.random.default_rng(0))
        assert out.shape == (3, 224, 224) and out.dtype == torch.uint8 and out.is_contiguous()
        assert out.float().std() > 5  # real picture content, not a blank buffer
    assert TrainTransform(size=96)(images[name], np.random.default_rng(0)).shape == (3, 96, 96)


def test_train_is_deterministic_per_rng_state(images, backend) -> None:
    t = TrainTransform()
    data = images["mid"]
    assert torch.equal(t(data, np.random.default_rng([1, 2])), t(data, np.random.default_rng([1, 2])))
    assert torch.equal(t(memoryview(data), np.random.default_rng(5)), t(data, np.random.default_rng(5)))
    outs = [t(data, np.random.default_rng(seed)) for seed in range(6)]
    assert all(not torch.equal(outs[0], o) for o in outs[1:])


@pytest.mark.parametrize("name", ["median", "portrait", "mid", "big", "gray_big"])
def test_train_matches_full_decode_reference(images, backend, name) -> None:
    # mid/big/gray_big take the draft path for most crops: a wrong box mapping would differ by tens of levels.
    for seed in range(8):
        assert mad(TrainTransform()(images[name], np.random.default_rng(seed)), reference_train(images[name], seed)) < 6


@pytest.mark.parametrize("name", ["tiny", "median", "portrait", "mid", "big", "gray"])
def test_eval_matches_resize_then_centre_crop(images, backend, name) -> None:
    out = EvalTransform()(images[name])
    assert torch.equal(out, EvalTransform()(images[name], np.random.default_rng(3)))  # rng unused
    assert mad(out, reference_eval(images[name])) < 4


def test_draft_reduces_the_decode_and_reports_its_scale(images) -> None:
    im = Image.open(io.BytesIO(images["big"]))
    assert decode._draft(im, 1800, 1800, 224, 224) == 8.0
    im.load()
    assert im.size == (300, 204)
    im = Image.open(io.BytesIO(images["big"]))
    assert decode._draft(im, 500, 500, 224, 224) == 2.0 and im.size == (1200, 816)
    im = Image.open(io.BytesIO(images["big"]))
    assert decode._draft(im, 400, 2000, 224, 224) == 1.0 and im.size == (2400, 1632)
    png = Image.open(io.BytesIO(images["png"]))
    assert decode._draft(png, 320, 240, 32, 32) == 1.0 and png.size == (320, 240)


def test_flip_mirrors_the_same_crop(images, backend) -> None:
    flipped = 0
    for seed in range(12):
        with_flip = TrainTransform(flip=True)(images["median"], np.random.default_rng(seed))
        without = TrainTransform(flip=False)(images["median"], np.random.default_rng(seed))
        if torch.equal(with_flip, without.flip(-1)):
            flipped += 1
        else:
            assert torch.equal(with_flip, without)
    assert 0 < flipped < 12


def test_grayscale_output_has_three_equal_channels(images, backend) -> None:
    out = TrainTransform()(images["gray"], np.random.default_rng(0))
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])


def test_resize_backends_agree(images) -> None:
    im = Image.open(io.BytesIO(images["median"]))
    im.load()
    for box, flip in [((10, 20, 400, 330), False), ((0, 0, 500, 375), True), ((100, 50, 324, 274), False)]:
        a = decode._crop_resize(im, box, 224, flip, use_torch=True)
        b = decode._crop_resize(im, box, 224, flip, use_torch=False)
        assert mad(a, b) < 1.0


def test_transforms_survive_pickling(images) -> None:
    # DataLoader workers (spawn) receive the transform pickled.
    t = pickle.loads(pickle.dumps(TrainTransform(size=128, scale=(0.2, 1.0))))
    assert (t.size, t.scale) == (128, (0.2, 1.0))
    assert torch.equal(t(images["median"], np.random.default_rng(0)),
                       TrainTransform(128, (0.2, 1.0))(images["median"], np.random.default_rng(0)))


def test_invalid_options_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="0"):
        TrainTransform(size=0)
    with pytest.raises(ConfigError, match="300"):
        EvalTransform(size=300, resize=256)
    with pytest.raises(ConfigError, match="None"):
        TrainTransform()(make_jpeg(40, 40), None)


def test_undecodable_bytes_raise_oserror(images) -> None:
    with pytest.raises(OSError):
        TrainTransform()(b"not an image at all", np.random.default_rng(0))
    with pytest.raises(OSError):
        EvalTransform()(images["median"][:2000])


# --------------------------------------------------------------------------- raw / PIL / factory
def test_decode_rgb_and_raw_transform(images) -> None:
    for name in ("median", "gray", "cmyk", "png"):
        im = decode_rgb(images[name])
        assert im.mode == "RGB" and im.size == Image.open(io.BytesIO(images[name])).size
        raw = RawTransform()(images[name])
        assert raw.dtype == torch.uint8 and raw.is_contiguous()
        assert torch.equal(raw, chw(im))
    assert RawTransform()(images["tiny"]).shape == (3, 30, 20)


def test_pil_transform_calls_user_fn_with_rgb_image(images) -> None:
    seen = []

    def fn(im: Image.Image) -> tuple[str, tuple[int, int]]:
        seen.append(im)
        return im.mode, im.size

    assert PILTransform(fn)(images["cmyk"], np.random.default_rng(0)) == ("RGB", (500, 375))
    assert isinstance(seen[0], Image.Image)
    with pytest.raises(ConfigError):
        PILTransform(42)  # type: ignore[arg-type]


def test_build_transform_presets_and_errors() -> None:
    train = build_transform("train", 160)
    assert isinstance(train, TrainTransform) and train.size == 160
    ev = build_transform("eval")
    assert isinstance(ev, EvalTransform) and (ev.size, ev.resize) == (224, 256)
    assert build_transform("eval", 160).resize == 182  # floor(160 / 0.875), as timm
    assert isinstance(build_transform(None), RawTransform)
    mine = EvalTransform(64, 64)
    assert build_transform(mine) is mine and isinstance(mine, BytesTransform)
    wrapped = build_transform(lambda im: im.size)
    assert isinstance(wrapped, PILTransform)
    assert wrapped(make_jpeg(40, 30), np.random.default_rng(0)) == (40, 30)
    with pytest.raises(ConfigError, match="'bogus'") as err:
        build_transform("bogus")
    assert isinstance(err.value, ValueError)
    with pytest.raises(ConfigError, match="5"):
        build_transform(5)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def png_bomb() -> bytes:
    """A 1-bit PNG of 10,000 x 9,000 pixels (over the limit) that compresses to a few KB."""
    buf = io.BytesIO()
    Image.new("1", (10_000, 9_000)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("spec", ["train", "eval", None, lambda im: im.size], ids=["train", "eval", "raw", "pil"])
def test_every_decode_path_refuses_a_pixel_bomb(png_bomb: bytes, spec) -> None:
    assert len(png_bomb) < 100_000
    transform = build_transform(spec)
    with pytest.raises(Image.DecompressionBombError, match="exceeds the limit"):
        transform(png_bomb, np.random.default_rng(0))


# --------------------------------------------------------------------------- the final copy
@settings(max_examples=60, deadline=None)
@given(width=st.integers(1, 1100), height=st.integers(1, 6), flip=st.booleans(), seed=st.integers(0, 2**16))
def test_planar_copy_matches_numpy_on_both_paths(width, height, flip, seed) -> None:
    # The native copy works in blocks of 512 pixels per row: widths around and past a block included.
    rgbx = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    expected = (rgbx[:, ::-1, :3] if flip else rgbx[:, :, :3]).transpose(2, 0, 1)
    assert np.array_equal(decode._planar(rgbx, flip, None).numpy(), expected)
    with jpeg_region.pillow_only():
        assert np.array_equal(decode._planar(rgbx, flip, None).numpy(), expected)


@pytest.mark.skipif(not jpeg_region.available(), reason="the native module is not loaded")
def test_native_planar_refuses_wrong_buffers() -> None:
    from imagenet_stream.streaming.decoding import _jpegroi

    src, dst = np.zeros((4, 5, 4), np.uint8), np.zeros((3, 4, 5), np.uint8)
    with pytest.raises(ValueError, match="5 x 5 pixels need 100 RGBX bytes in and 75 out, got 80 and 60"):
        _jpegroi.planar(src, 5, 5, dst, False)
    with pytest.raises(ValueError, match="bad size"):
        _jpegroi.planar(src, 0, 4, dst, False)
    with pytest.raises(BufferError, match="not writable"):
        _jpegroi.planar(src, 5, 4, bytes(60), False)
    with pytest.raises(ValueError, match="not C-contiguous"):
        _jpegroi.planar(src[:, ::2], 3, 4, dst, False)


@pytest.mark.parametrize("make", [TrainTransform, EvalTransform, lambda: TrainTransform(64, (0.9, 1.0))])
def test_out_writes_the_same_tensor_into_a_batch_slot(images, backend, make) -> None:
    transform = make()
    side = transform.size
    batch = torch.full((len(images), 3, side, side), 7, dtype=torch.uint8)
    for j, data in enumerate(images.values()):
        got = transform(data, np.random.default_rng(j), out=batch[j])
        assert got.data_ptr() == batch[j].data_ptr()
        assert torch.equal(batch[j], transform(data, np.random.default_rng(j)))


def test_out_of_the_wrong_shape_or_type_is_refused(images) -> None:
    data = images["median"]
    for bad in (torch.empty(3, 224, 223, dtype=torch.uint8), torch.empty(3, 224, 224, dtype=torch.float32),
                torch.empty(224, 224, 3, dtype=torch.uint8).permute(2, 0, 1)):
        with pytest.raises(ConfigError, match="out= must be a contiguous CPU uint8 tensor"):
            TrainTransform()(data, np.random.default_rng(0), out=bad)

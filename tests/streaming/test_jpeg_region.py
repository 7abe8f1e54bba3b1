"""The native region decoder against Pillow: bit-identical crops, identical transforms, the same errors.

Every comparison is exact (``np.array_equal`` / ``torch.equal``): both paths run the libjpeg-turbo
that Pillow loads, and the region decoder must reproduce Pillow's full decode pixel for pixel.
"""
from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from torch.utils.data import DataLoader

from imagenet_stream.sharding.demo_tree import make_demo_tree
from imagenet_stream.streaming import ImageNetStream
from imagenet_stream.streaming.dataset import DECODE_ERRORS
from imagenet_stream.streaming.decoding import jpeg_region
from imagenet_stream.streaming.decoding import transforms as decode
from imagenet_stream.streaming.decoding.transforms import EvalTransform, TrainTransform
from imagenet_stream.synthetic import encode, make_jpeg, photo_array

native = pytest.mark.skipif(not jpeg_region.available(), reason=f"JPEG crops decode with {jpeg_region.status()}")
KINDS = ("4:4:4", "4:2:2", "4:2:0", "gray", "gray-2x2", "rgb")
SCALES = (1, 2, 4, 8)
SLOW = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --------------------------------------------------------------------------- helpers
def segments(data: bytes) -> Iterator[tuple[int, int]]:
    """``(marker, offset of its FF byte)`` for each header segment, up to and including SOS."""
    i = 2
    while i + 4 <= len(data):
        marker = data[i + 1]
        yield marker, i
        if marker == 0xDA:
            return
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")


def sof_offset(data: bytes) -> int:
    return next(i for m, i in segments(data) if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC))


def patched(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + bytes([value]) + data[offset + 1:]


def make(width: int, height: int, seed: int, kind: str = "4:2:0", progressive: bool = False,
         restart: int = 0, extended: bool = False, quality: int = 90) -> bytes:
    """A photo-like JPEG. ``gray-2x2`` declares 2x2 sampling for its one component (16-row iMCUs, the
    same data); ``rgb`` is stored without YCbCr conversion; ``extended`` relabels a baseline frame SOF1."""
    im = Image.fromarray(photo_array(width, height, seed), "RGB")
    if progressive:  # Pillow sizes its progressive output buffer at 1 byte/pixel below quality 95, 2 above:
        quality = max(quality, 95)  # noisy 4:4:4/RGB content at q90 overflows the first ("Suspension not allowed")
    opts: dict[str, object] = {"quality": quality, "progressive": progressive}
    if restart and kind != "rgb":  # Pillow cannot write restart markers into an RGB (keep_rgb) JPEG
        opts["restart_marker_blocks"] = restart
    if kind.startswith("gray"):
        im = im.convert("L")
    elif kind == "rgb":
        opts["keep_rgb"] = True
    else:
        opts["subsampling"] = kind
    data = encode(im, "JPEG", **opts)
    sof = sof_offset(data)
    if kind == "gray-2x2":
        data = patched(data, sof + 11, 0x22)  # component 1's sampling byte
    if extended and not progressive:
        data = patched(data, sof + 1, 0xC1)
    return data


def full(data: bytes, s: int) -> np.ndarray:
    """Pillow's decode of the whole image at scale ``1/s`` (draft), as RGB ``[H, W, 3]``."""
    im = Image.open(io.BytesIO(data))
    if s > 1:
        im.draft("RGB", (im.width // s, im.height // s))
    return np.asarray(im.convert("RGB"))


def region(data: bytes, s: int, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    pixels = jpeg_region.decode(data, s, box)
    assert pixels is not None, f"region decoder declined box {box} at 1/{s}"
    rgbx = np.frombuffer(pixels, np.uint8).reshape(y1 - y0, x1 - x0, 4)
    return rgbx[:, :, :3]


@st.composite
def coords(draw: st.DrawFn, n: int) -> tuple[int, int]:
    """``lo < hi`` in ``[0, n]``, often on or next to an 8/16-pixel block boundary."""
    def near_block(limit: int) -> st.SearchStrategy[int]:
        return st.tuples(st.integers(0, limit // 8 + 1), st.sampled_from((-1, 0, 1))).map(
            lambda t: 8 * t[0] + t[1])

    lo = min(max(draw(st.one_of(st.integers(0, n - 1), near_block(n))), 0), n - 1)
    hi = min(max(draw(st.one_of(st.integers(lo + 1, n), near_block(n))), lo + 1), n)
    return lo, hi


@st.composite
def boxes(draw: st.DrawFn, width: int, height: int) -> tuple[int, int, int, int]:
    (x0, x1), (y0, y1) = draw(coords(width)), draw(coords(height))
    return x0, y0, x1, y1


def assert_region_exact(data: bytes, draw: Callable[[st.SearchStrategy], object], per_scale: int) -> None:
    width, height = Image.open(io.BytesIO(data)).size
    for s in SCALES:
        if width < s or height < s:  # no transform asks for it (and Pillow's draft refuses it)
            break
        ref = full(data, s)
        for _ in range(per_scale):
            box = draw(boxes(ref.shape[1], ref.shape[0]))
            x0, y0, x1, y1 = box
            got = region(data, s, box)
            if not np.array_equal(got, ref[y0:y1, x0:x1]):
                diff = np.abs(got.astype(int) - ref[y0:y1, x0:x1]).max(axis=2)
                rows, cols = np.nonzero(diff)
                raise AssertionError(f"1/{s} box {box}: {len(rows)} pixels differ (max {diff.max()}), "
                                     f"first at row {rows[0]}, col {cols[0]} of the box")


def outcome(fn: Callable[[], torch.Tensor]) -> tuple[str, object]:
    try:
        return "ok", fn()
    except DECODE_ERRORS as exc:
        return "error", type(exc)


def assert_same_outcome(a: tuple[str, object], b: tuple[str, object]) -> None:
    assert a[0] == b[0], (a, b)
    if a[0] == "ok":
        assert torch.equal(a[1], b[1])  # type: ignore[arg-type]
    else:
        assert a[1] is b[1], (a, b)


def both_paths(transform: Callable[..., torch.Tensor], data: bytes, seed: int) -> tuple[tuple, tuple]:
    first = outcome(lambda: transform(data, np.random.default_rng(seed)))
    with jpeg_region.pillow_only():
        second = outcome(lambda: transform(data, np.random.default_rng(seed)))
    return first, second


def _jpeglib_h() -> Path | None:
    dirs = [sysconfig.get_config_var("INCLUDEDIR"), "/usr/include", "/usr/local/include", "/opt/homebrew/include"]
    for var in ("CPATH", "C_INCLUDE_PATH"):
        dirs += os.environ.get(var, "").split(os.pathsep)
    return next((Path(d) / "jpeglib.h" for d in dirs if d and (Path(d) / "jpeglib.h").is_file()), None)


# --------------------------------------------------------------------------- build and selection
def test_extension_is_built_and_used_where_libjpeg_headers_exist() -> None:
    header = _jpeglib_h()
    if header is None:
        pytest.skip("no jpeglib.h here: the package installs without the native decoder (Pillow path)")
    if os.environ.get(jpeg_region.ENV, "").lower() == "pillow":
        pytest.skip(f"{jpeg_region.ENV}=pillow forces the Pillow path")
    importlib.import_module("imagenet_stream.streaming.decoding._jpegroi")  # built at install time (make test: pip -e)
    assert jpeg_region.available(), jpeg_region.status()
    assert "native" in jpeg_region.status()


@native
def test_status_is_logged_once_and_the_environment_forces_pillow(monkeypatch, caplog) -> None:
    monkeypatch.setattr(jpeg_region, "_status", None)
    monkeypatch.setattr(jpeg_region, "_native", None)
    with caplog.at_level("INFO", logger="imagenet_stream.streaming.decoding.jpeg_region"):
        jpeg_region.header(make_jpeg(40, 30))
        jpeg_region.header(make_jpeg(40, 30))
    assert [r.getMessage() for r in caplog.records] == [f"JPEG crops decode with: {jpeg_region.status()}"]
    code = "from imagenet_stream.streaming.decoding import jpeg_region as r; print(r.available(), r.status())"
    env = {**os.environ, jpeg_region.ENV: "pillow"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.startswith(f"False Pillow ({jpeg_region.ENV}=pillow)")


# --------------------------------------------------------------------------- region == full decode
@native
@settings(SLOW, max_examples=150)
@given(st.data(), st.integers(1, 600), st.integers(1, 600), st.integers(0, 10_000), st.sampled_from(KINDS),
       st.booleans(), st.sampled_from((0, 0, 1, 5)), st.booleans())
def test_region_equals_pillow_full_decode(draw_data, width, height, seed, kind, progressive, restart, extended) -> None:
    data = make(width, height, seed, kind, progressive, restart, extended)
    assert jpeg_region.header(data) == (width, height)
    assert_region_exact(data, draw_data.draw, per_scale=4)


@native
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_region_exact_at_every_row_offset_near_block_edges(kind, progressive) -> None:
    # A sweep where the property test samples: every top edge in 3 iMCU rows, both column edges near blocks.
    data = make(203, 61, 7, kind, progressive)
    ref = full(data, 1)
    for y0 in range(0, 50):
        for x0, x1 in ((0, 203), (15, 17), (16, 48), (31, 203), (200, 203), (1, 2)):
            for y1 in (y0 + 1, min(61, y0 + 17)):
                assert np.array_equal(region(data, 1, (x0, y0, x1, y1)), ref[y0:y1, x0:x1]), (x0, y0, x1, y1)


@pytest.fixture(scope="module")
def demo_tree(tmp_path_factory: pytest.TempPathFactory):
    return make_demo_tree(tmp_path_factory.mktemp("demo"), images_per_class=2)


@pytest.fixture(scope="module")
def demo_files(demo_tree) -> dict[str, bytes]:
    """The demo tree's 47 files by relative path: 42 photo-like JPEGs (some grayscale) and 5 quirks."""
    files = {p.relative_to(demo_tree.root).as_posix(): p.read_bytes() for p in sorted(demo_tree.root.rglob("*.JPEG"))}
    assert len(files) == demo_tree.images and set(demo_tree.quirks.values()) <= set(files)
    return files


@native
def test_only_the_demo_quirks_leave_the_region_decoder(demo_tree, demo_files) -> None:
    q = demo_tree.quirks
    declined = {name for name, data in demo_files.items() if jpeg_region.header(data) is None}
    assert declined == {q["cmyk"], q["png_named_jpeg"], q["empty"]}
    cut = demo_files[q["truncated"]]  # its header is intact: the region decoder declines at decode time
    assert jpeg_region.decode(cut, 8, (0, 0, 1, 1)) is None
    with pytest.raises(OSError, match="truncated"):
        Image.open(io.BytesIO(cut)).load()


@native
@settings(SLOW, max_examples=60)
@given(st.data())
def test_region_equals_full_decode_on_the_demo_data(demo_files, draw_data) -> None:
    data = demo_files[draw_data.draw(st.sampled_from(sorted(demo_files)))]
    if jpeg_region.header(data) is None or jpeg_region.decode(data, 8, (0, 0, 1, 1)) is None:
        return  # the quirks (see above)
    assert_region_exact(data, draw_data.draw, per_scale=3)


# --------------------------------------------------------------------------- transforms: same on both paths
#: (width, height, kind, progressive): sizes that take every draft scale in train and eval, odd and tiny ones.
GENERATED = [
    (500, 375, "4:2:0", False), (375, 500, "4:2:0", True), (333, 501, "4:2:2", False), (640, 427, "4:4:4", True),
    (1200, 900, "4:2:0", False), (2048, 1365, "4:2:0", True), (1601, 1203, "4:2:2", True), (999, 997, "rgb", False),
    (500, 400, "gray", False), (1300, 975, "gray-2x2", True), (61, 203, "4:2:0", False), (20, 30, "4:4:4", False),
    (1, 1, "4:2:0", False), (257, 1, "gray", True),
]


@pytest.fixture(scope="module")
def pool(demo_files) -> list[bytes]:
    """The GENERATED images, then the demo data (quirks included)."""
    return [make(w, h, i, kind, prog) for i, (w, h, kind, prog) in enumerate(GENERATED)] + list(demo_files.values())


@pytest.mark.parametrize("use_torch", [True, False], ids=["torch-resize", "pillow-resize"])
@pytest.mark.parametrize("make_transform", [TrainTransform, EvalTransform, lambda: TrainTransform(96, (0.5, 1.0)),
                                            lambda: EvalTransform(160, 182)], ids=["train", "eval", "train96", "eval160"])
def test_transforms_give_identical_tensors_on_both_paths(pool, use_torch, make_transform, monkeypatch) -> None:
    monkeypatch.setattr(decode, "_USE_TORCH_RESIZE", use_torch)
    transform = make_transform()
    for i, data in enumerate(pool):
        for seed in range(3):
            assert_same_outcome(*both_paths(transform, data, seed * 1000 + i))


@native
def test_the_pool_really_exercises_the_region_decoder(pool) -> None:
    # The comparison above means something only if the native path ran: every generated JPEG is taken.
    generated = pool[:len(GENERATED)]
    assert all(jpeg_region.header(d) is not None for d in generated)
    assert all(jpeg_region.decode(d, 1, (0, 0, 1, 1)) is not None for d in generated)


# --------------------------------------------------------------------------- corrupt and unusual input
@native
@pytest.mark.parametrize("name,mutate", [
    ("CMYK", lambda: make_jpeg(64, 48, mode="CMYK")),
    ("PNG", lambda: encode(Image.new("RGB", (40, 30)), "PNG")),
    ("empty", lambda: b""),
    ("12-bit", lambda: patched(patched(make(64, 48, 1), sof_offset(make(64, 48, 1)) + 1, 0xC1),
                               sof_offset(make(64, 48, 1)) + 4, 12)),
    ("arithmetic", lambda: patched(make(64, 48, 1), sof_offset(make(64, 48, 1)) + 1, 0xC9)),
    ("lossless", lambda: patched(make(64, 48, 1), sof_offset(make(64, 48, 1)) + 1, 0xC3)),
    ("hierarchical", lambda: patched(make(64, 48, 1), sof_offset(make(64, 48, 1)) + 1, 0xC5)),
    ("junk between markers", lambda: make(64, 48, 1)[:20] + b"\x00\x07" + make(64, 48, 1)[20:]),
])
def test_unsupported_jpegs_go_to_pillow_unchanged(name, mutate) -> None:
    data = mutate()
    assert jpeg_region.header(data) is None, name
    for transform in (TrainTransform(), EvalTransform()):
        assert_same_outcome(*both_paths(transform, data, 0))


@native
@settings(SLOW, max_examples=50)
@given(st.integers(0, 3), st.floats(0.0, 1.0), st.integers(0, 100))
def test_truncated_jpegs_raise_or_decode_exactly_as_on_the_pillow_path(which, keep, seed) -> None:
    data = [make(640, 480, 1), make(640, 480, 2, "4:4:4", progressive=True), make(500, 375, 3, "gray"),
            make(320, 240, 4, restart=2)][which]
    cut = data[: int(len(data) * keep)]
    for transform in (TrainTransform(), EvalTransform()):
        first, second = both_paths(transform, cut, seed)
        assert_same_outcome(first, second)
        if keep < 0.9:  # rows are lost: Pillow raises (UnidentifiedImageError for a cut inside the header)
            assert first[0] == "error" and issubclass(first[1], OSError), first  # type: ignore[arg-type]


def test_truncated_jpeg_raises_oserror_on_both_paths_even_when_the_crop_is_above_the_cut() -> None:
    data = make(640, 480, 5)[: int(0.7 * len(make(640, 480, 5)))]
    for seed in range(10):
        first, second = both_paths(TrainTransform(scale=(0.08, 0.1)), data, seed)
        assert first == second == ("error", OSError)
    if jpeg_region.available():
        assert jpeg_region.header(data) == (640, 480) and jpeg_region.decode(data, 1, (0, 0, 64, 64)) is None


@native
@settings(SLOW, max_examples=60)
@given(st.integers(0, 2), st.lists(st.tuples(st.floats(0.0, 0.9999), st.integers(0, 255)), min_size=1, max_size=4),
       st.integers(0, 100))
def test_corrupt_entropy_data_gives_the_pillow_paths_pixels_or_error(which, flips, seed) -> None:
    data = [make(480, 360, 11), make(480, 360, 12, "4:2:2", progressive=True), make(300, 200, 13, restart=3)][which]
    start = next(i for m, i in segments(data) if m == 0xDA) + 14  # past the SOS header: scan data
    damaged = bytearray(data)
    for where, value in flips:
        damaged[start + int(where * (len(data) - start))] = value
    for transform in (TrainTransform(), EvalTransform()):
        assert_same_outcome(*both_paths(transform, bytes(damaged), seed))


@native
@settings(SLOW, max_examples=60)
@given(st.integers(0, 2), st.lists(st.tuples(st.floats(0.0, 0.9999), st.integers(0, 255)), min_size=1, max_size=2),
       st.integers(0, 100))
def test_corrupt_headers_give_the_pillow_paths_pixels_or_error(which, flips, seed) -> None:
    # Pillow parses the header in Python, the region decoder with libjpeg: they must refuse alike.
    data = [make(200, 150, 1), make(200, 150, 2, "4:4:4", progressive=True), make(120, 90, 3, "gray")][which]
    sos = next(i for m, i in segments(data) if m == 0xDA) + 14
    damaged = bytearray(data)
    for where, value in flips:
        damaged[2 + int(where * (sos - 2))] = value
    for transform in (TrainTransform(), EvalTransform()):
        assert_same_outcome(*both_paths(transform, bytes(damaged), seed))


@native
def test_decodes_in_threads_agree_with_serial_ones(pool) -> None:
    # The C decoder runs without the GIL and shares only the bound function table between threads.
    transform = TrainTransform()
    jobs = [(data, seed) for data in pool[:len(GENERATED)] for seed in range(4)]
    expected = [transform(data, np.random.default_rng(seed)) for data, seed in jobs]
    with ThreadPoolExecutor(4) as threads:
        got = list(threads.map(lambda job: transform(job[0], np.random.default_rng(job[1])), jobs))
    assert all(torch.equal(a, b) for a, b in zip(expected, got))


@native
def test_junk_before_eoi_is_ignored_alike_and_garbage_after_eoi_too() -> None:
    data = make(320, 240, 21)
    for variant in (data[:-2] + b"\x12\x34" + data[-2:], data + b"trailing garbage", data[:-2]):
        for transform in (TrainTransform(), EvalTransform()):
            for seed in range(3):
                assert_same_outcome(*both_paths(transform, variant, seed))


@native
def test_native_path_refuses_a_jpeg_pixel_bomb_before_decoding() -> None:
    data = make(64, 48, 1)
    sof = sof_offset(data)
    bomb = data[:sof + 5] + (9000).to_bytes(2, "big") + (10_000).to_bytes(2, "big") + data[sof + 9:]
    assert jpeg_region.header(bomb) == (10_000, 9000)
    for transform in (TrainTransform(), EvalTransform()):
        with pytest.raises(Image.DecompressionBombError, match="exceeds the limit"):
            transform(bomb, np.random.default_rng(0))


# --------------------------------------------------------------------------- through the DataLoader
def test_stream_pixels_do_not_depend_on_workers_or_decode_path(dsutil, tmp_path, monkeypatch) -> None:
    sizes = [(64, 48), (500, 375), (333, 500), (1200, 900), (97, 61)]
    built = dsutil.build_dataset(str(tmp_path / "ds"), 30, 10, corrupt=(4, 17), sizes=lambda i: sizes[i % 5])

    def pixels(num_workers: int) -> dict[str, torch.Tensor]:
        ds = ImageNetStream(built.url, size=64, batch_size=2, return_keys=True, seed=5)
        out: dict[str, torch.Tensor] = {}
        for images, _, keys in DataLoader(ds, batch_size=2, num_workers=num_workers):
            out.update(zip(keys, images))
        return out

    reference = pixels(0)  # native where available
    monkeypatch.setenv(jpeg_region.ENV, "pillow")  # spawned workers read it; forked ones inherit:
    monkeypatch.setattr(jpeg_region, "_native", None)
    fallback = pixels(2)
    assert len(reference) == 28 and reference.keys() == fallback.keys()
    assert all(torch.equal(reference[k], fallback[k]) for k in reference)


def test_a_lower_pillow_pixel_limit_refuses_alike_on_both_paths(monkeypatch) -> None:
    data = make(120, 100, 3)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # 2 x 5000 < 12,000 pixels: Image.open refuses it
    for transform in (TrainTransform(), EvalTransform()):
        first, second = both_paths(transform, data, 0)
        assert first == second == ("error", Image.DecompressionBombError)

"""normalize() against the formula, and CudaPrefetcher as a pass-through on CPU / a prefetcher on CUDA."""
from __future__ import annotations

from collections import namedtuple

import pytest
import torch

from imagenet_stream.errors import ConfigError
from imagenet_stream.streaming.decoding.transforms import IMAGENET_MEAN, IMAGENET_STD
from imagenet_stream.streaming.device import CudaPrefetcher, normalize

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def uint8_batch(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def formula(batch: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    x = batch.to(torch.float64) / 255.0
    m = torch.tensor(mean, dtype=torch.float64).view(-1, 1, 1)
    s = torch.tensor(std, dtype=torch.float64).view(-1, 1, 1)
    return (x - m) / s


def test_normalize_matches_formula_float32_and_float64() -> None:
    batch = uint8_batch(4, 3, 17, 9)
    out32 = normalize(batch)
    assert out32.dtype == torch.float32 and out32.shape == batch.shape
    torch.testing.assert_close(out32.double(), formula(batch), rtol=0, atol=2e-6)
    out64 = normalize(batch, dtype=torch.float64)
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64, formula(batch), rtol=0, atol=1e-12)
    # the extremes: 0 -> -mean/std, 255 -> (1 - mean)/std
    edges = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 2).expand(3, 1, 2).contiguous()
    got = normalize(edges, dtype=torch.float64)
    for c in range(3):
        assert got[c, 0, 0].item() == pytest.approx(-IMAGENET_MEAN[c] / IMAGENET_STD[c], abs=1e-12)
        assert got[c, 0, 1].item() == pytest.approx((1 - IMAGENET_MEAN[c]) / IMAGENET_STD[c], abs=1e-12)


def test_normalize_single_image_custom_stats_half_and_channels_last() -> None:
    image = uint8_batch(3, 8, 8, seed=1)
    out = normalize(image, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    torch.testing.assert_close(out.double(), image.double() / 127.5 - 1.0, rtol=0, atol=1e-6)
    half = normalize(image, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.double(), formula(image), rtol=1e-2, atol=1e-2)
    batch = uint8_batch(2, 3, 6, 5, seed=2).contiguous(memory_format=torch.channels_last)
    out = normalize(batch)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out.double(), formula(batch), rtol=0, atol=2e-6)
    assert batch.dtype == torch.uint8  # input untouched


@pytest.mark.parametrize(
    ("batch", "kwargs", "needle"),
    [
        (torch.zeros(2, 3, 4, 4), {}, "float32"),
        (torch.zeros(2, 4, 4, 4, dtype=torch.uint8), {}, "(2, 4, 4, 4)"),
        (torch.zeros(4, 4, dtype=torch.uint8), {}, "(4, 4)"),
        (torch.zeros(3, 4, 4, dtype=torch.uint8), {"dtype": torch.int32}, "int32"),
        (torch.zeros(3, 4, 4, dtype=torch.uint8), {"std": (1.0, 0.0, 1.0)}, "0.0"),
    ],
)
def test_normalize_rejects_bad_input(batch, kwargs, needle) -> None:
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        normalize(batch, **kwargs)


Batch = namedtuple("Batch", ["images", "targets"])


def make_batches(n: int = 3) -> list:
    return [
        (uint8_batch(2, 3, 4, 4, seed=i), torch.tensor([i, i + 1]), f"key{i}") for i in range(n)
    ]


def test_prefetcher_on_cpu_is_a_pass_through() -> None:
    batches = make_batches()
    if not torch.cuda.is_available():
        got = list(CudaPrefetcher(batches))
        assert len(got) == 3 and all(g is b for g, b in zip(got, batches))  # unchanged objects
    got = list(CudaPrefetcher(batches, device="cpu"))
    assert len(got) == 3
    for g, b in zip(got, batches):
        assert torch.equal(g[0], b[0]) and torch.equal(g[1], b[1]) and g[2] == b[2]
    assert len(CudaPrefetcher(batches, "cpu")) == 3
    with pytest.raises(TypeError):
        len(CudaPrefetcher(iter(batches), "cpu"))


def test_prefetcher_moves_nested_structures_on_cpu() -> None:
    nested = [Batch(torch.ones(2), torch.zeros(2)), {"x": torch.arange(3), "meta": [torch.ones(1), 7]}]
    out = list(CudaPrefetcher(nested, device=torch.device("cpu")))
    assert isinstance(out[0], Batch) and torch.equal(out[0].images, torch.ones(2))
    assert torch.equal(out[1]["x"], torch.arange(3)) and out[1]["meta"][1] == 7
    assert list(CudaPrefetcher([], "cpu")) == []


@cuda
def test_prefetcher_on_cuda_copies_every_batch_in_order() -> None:
    batches = make_batches(5)
    out = []
    for images, targets, key in CudaPrefetcher(batches, device="cuda"):
        assert images.is_cuda and targets.is_cuda
        out.append((normalize(images).cpu(), targets.cpu(), key))
    assert len(out) == 5
    for (images, targets, key), (ref_images, ref_targets, ref_key) in zip(out, batches):
        torch.testing.assert_close(images, normalize(ref_images))
        assert torch.equal(targets, ref_targets) and key == ref_key


@cuda
def test_prefetcher_on_cuda_accepts_pinned_batches_and_defaults_to_cuda() -> None:
    batches = [(b[0].pin_memory(), b[1].pin_memory()) for b in make_batches(3)]
    prefetcher = CudaPrefetcher(batches)
    assert prefetcher.device is not None and prefetcher.device.type == "cuda"
    got = [(i.cpu(), t.cpu()) for i, t in prefetcher]
    assert all(torch.equal(g[0], b[0]) and torch.equal(g[1], b[1]) for g, b in zip(got, batches))

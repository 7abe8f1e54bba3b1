"""Device-side helpers: normalise uint8 batches where they live, and overlap host-to-GPU copies.

The loader yields uint8 images (4x fewer bytes to move than float32); :func:`normalize` turns a
batch into floats on its own device, typically the GPU after the copy, and
:class:`CudaPrefetcher` hides that copy behind the previous step's compute.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

import torch

from imagenet_stream.errors import ConfigError
from imagenet_stream.streaming.decoding.transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["normalize", "CudaPrefetcher"]


@lru_cache(maxsize=64)
def _affine(
    mean: tuple[float, ...], std: tuple[float, ...], dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``scale = 1 / (255 std)`` and ``shift = mean / std`` as ``[C, 1, 1]`` tensors, cached per device."""
    std_t = torch.tensor(std, dtype=torch.float64)
    mean_t = torch.tensor(mean, dtype=torch.float64)
    scale = (1.0 / (255.0 * std_t)).to(dtype).view(-1, 1, 1)
    shift = (mean_t / std_t).to(dtype).view(-1, 1, 1)
    return scale.to(device), shift.to(device)


def normalize(
    batch: torch.Tensor,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``(batch / 255 - mean) / std`` as ``dtype``, computed on ``batch``'s device.

    ``batch`` is uint8 ``[B, C, H, W]`` or ``[C, H, W]`` with ``C == len(mean)``; the memory format
    (e.g. ``channels_last``) is kept. Half-precision outputs are computed in float32 and cast.
    """
    if batch.dtype != torch.uint8:
        raise ConfigError(f"normalize expects a uint8 batch, got {batch.dtype}")
    if not dtype.is_floating_point:
        raise ConfigError(f"normalize needs a floating output dtype, got {dtype}")
    mean_t, std_t = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if len(mean_t) != len(std_t) or any(s <= 0 for s in std_t):
        raise ConfigError(f"mean and std must have the same length and std > 0, got {mean_t} and {std_t}")
    if batch.dim() not in (3, 4) or batch.shape[-3] != len(mean_t):
        raise ConfigError(
            f"normalize expects [B, {len(mean_t)}, H, W] or [{len(mean_t)}, H, W], got {tuple(batch.shape)}"
        )
    compute = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    scale, shift = _affine(mean_t, std_t, compute, batch.device)
    out = batch.to(compute).mul_(scale).sub_(shift)  # .to keeps the memory format; in-place ops too
    return out if compute == dtype else out.to(dtype)


def _move(batch: Any, device: torch.device, non_blocking: bool, pin: bool) -> Any:
    """``batch`` with every tensor (inside tuples, lists, dicts) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        if pin and batch.device.type == "cpu" and not batch.is_pinned():
            batch = batch.pin_memory()
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(_move(b, device, non_blocking, pin) for b in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(_move(b, device, non_blocking, pin) for b in batch)
    if isinstance(batch, Mapping):
        return {k: _move(v, device, non_blocking, pin) for k, v in batch.items()}
    return batch


def _record(batch: Any, stream: torch.cuda.Stream) -> None:
    """Mark every CUDA tensor in ``batch`` as used on ``stream`` (so the caching allocator does
    not hand its memory, allocated on the copy stream, to new copies while compute still reads it)."""
    if isinstance(batch, torch.Tensor):
        if batch.is_cuda:
            batch.record_stream(stream)
    elif isinstance(batch, (tuple, list)):
        for b in batch:
            _record(b, stream)
    elif isinstance(batch, Mapping):
        for b in batch.values():
            _record(b, stream)


class CudaPrefetcher:
    """Iterate ``loader``'s batches with the next batch's host-to-device copy already in flight.

    On CUDA (``device`` a CUDA device, or ``None`` while CUDA is available) each batch is pinned
    (if the loader did not already, e.g. ``DataLoader(pin_memory=True)``) and copied with
    ``non_blocking=True`` on a side stream while the caller works on the previous one; the compute
    stream waits for the copy before a batch is handed out. Otherwise this is a pass-through:
    batches are yielded unchanged, or moved with ``.to(device)`` when a device is given.
    Tensors may sit in (named)tuples, lists and dicts; other values pass through.
    """

    def __init__(self, loader: Iterable[Any], device: str | torch.device | None = None) -> None:
        self.loader = loader
        if device is None:
            self.device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else None
        else:
            self.device = torch.device(device)
            if self.device.type == "cuda" and self.device.index is None and torch.cuda.is_available():
                self.device = torch.device("cuda", torch.cuda.current_device())

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]  # TypeError for unsized loaders, as DataLoader

    def __iter__(self) -> Iterator[Any]:
        if self.device is None:
            yield from self.loader
        elif self.device.type != "cuda":
            for batch in self.loader:
                yield _move(batch, self.device, non_blocking=False, pin=False)
        else:
            yield from self._cuda_iter(self.device)

    def _cuda_iter(self, device: torch.device) -> Iterator[Any]:
        copy_stream = torch.cuda.Stream(device=device)
        batches = iter(self.loader)

        def launch() -> tuple[bool, Any]:
            try:
                batch = next(batches)
            except StopIteration:
                return False, None
            with torch.cuda.stream(copy_stream):
                return True, _move(batch, device, non_blocking=True, pin=True)

        more, ready = launch()
        while more:
            compute = torch.cuda.current_stream(device)
            compute.wait_stream(copy_stream)
            _record(ready, compute)
            current = ready
            more, ready = launch()  # the next copy overlaps the caller's work on `current`
            yield current

"""A whole batch as one yield (``ImageNetStream(batched=True)``): images decoded straight into one
batch tensor, no per-sample tensor and no ``torch.stack``.

Inside a DataLoader worker the batch tensor is allocated in shared memory, as torch's own collate
does, so it crosses to the main process without a copy. A transform that cannot write into a slot
(anything but the train/eval presets) has its outputs collated by torch's ``default_collate``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import default_collate, get_worker_info


class BatchOutput:
    """Slots to decode a batch into, and the batch ``(images, targets, keys)`` made of them."""

    def __init__(self, out_shape: tuple[int, ...] | None) -> None:
        self.out_shape = out_shape

    def slots(self, size: int) -> torch.Tensor | None:
        """A uint8 ``[size, *out_shape]`` tensor to decode into (shared memory in a DataLoader worker),
        or None when the transform writes no slots. Not zeroed: every slot is written."""
        if self.out_shape is None:
            return None
        shape = (size, *self.out_shape)
        if get_worker_info() is None:
            return torch.empty(shape, dtype=torch.uint8)
        storage = torch.UntypedStorage._new_shared(math.prod(shape))
        return torch.empty(0, dtype=torch.uint8).set_(storage, 0, shape)

    @staticmethod
    def assemble(samples: Sequence[tuple[Any, int, str]], slots: torch.Tensor | None) -> tuple[Any, torch.Tensor, list[str]]:
        """``(images, int64 targets, keys)``: ``slots`` already hold the images (decoded into them)."""
        images = slots if slots is not None else default_collate([s[0] for s in samples])
        return images, torch.tensor([s[1] for s in samples], dtype=torch.int64), [s[2] for s in samples]


__all__ = ["BatchOutput"]

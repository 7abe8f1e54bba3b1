"""imagenet-stream: shard ImageNet as it is distributed, stream it exactly-once to DDP training.

Top-level names are imported lazily, so ``import imagenet_stream`` (e.g. by the sharder) does not
import torch.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ImageNetStream": "imagenet_stream.streaming.dataset",
    "Stream": "imagenet_stream.streaming.mixture",
    "ClassSampling": "imagenet_stream.streaming.mixture",
    "RetryPolicy": "imagenet_stream.storage",
    "normalize": "imagenet_stream.streaming.device",
    "CudaPrefetcher": "imagenet_stream.streaming.device",
    "IMAGENET_MEAN": "imagenet_stream.streaming.decode",
    "IMAGENET_STD": "imagenet_stream.streaming.decode",
    "Hierarchy": "imagenet_stream.hierarchy",
    "HierarchicalTargets": "imagenet_stream.hierarchy",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)

"""imagenet-stream: shard ImageNet as it is distributed, stream it exactly-once to DDP training.

Top-level names are imported lazily, so ``import imagenet_stream`` (e.g. by the sharder) does not
import torch.
"""
from __future__ import annotations

from imagenet_stream._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "ImageNetStream": "imagenet_stream.streaming.dataset",
    "ResumableLoader": "imagenet_stream.streaming.loader",
    "StreamMonitor": "imagenet_stream.streaming.monitor",
    "Stream": "imagenet_stream.streaming.mixture",
    "ClassSampling": "imagenet_stream.streaming.sampling",
    "RetryPolicy": "imagenet_stream.retry",
    "normalize": "imagenet_stream.streaming.device",
    "CudaPrefetcher": "imagenet_stream.streaming.device",
    "IMAGENET_MEAN": "imagenet_stream.streaming.decoding.transforms",
    "IMAGENET_STD": "imagenet_stream.streaming.decoding.transforms",
    "Hierarchy": "imagenet_stream.hierarchy",
    "HierarchicalTargets": "imagenet_stream.hierarchy",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

__getattr__ = lazy_exports(__name__, _EXPORTS)

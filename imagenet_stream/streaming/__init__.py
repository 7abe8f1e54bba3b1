"""Streaming half: plan (pure), read shards, decode, and the ``ImageNetStream`` IterableDataset.

Names are imported lazily so that ``imagenet_stream.streaming.plan`` (pure, no torch) stays cheap.
"""
from __future__ import annotations

from imagenet_stream._lazy import lazy_exports

_EXPORTS = {
    "ImageNetStream": "imagenet_stream.streaming.dataset",
    "ResumableLoader": "imagenet_stream.streaming.loader",
    "Stream": "imagenet_stream.streaming.mixture",
    "ClassSampling": "imagenet_stream.streaming.sampling",
    "merge_rank_states": "imagenet_stream.streaming.resume",
    "build_index": "imagenet_stream.streaming.foreign",
    "ShardCache": "imagenet_stream.streaming.cache",
    "ShardReader": "imagenet_stream.streaming.reader",
    "ShardInfo": "imagenet_stream.streaming.reader",
    "ClassSubset": "imagenet_stream.streaming.classes",
    "resolve_classes": "imagenet_stream.streaming.classes",
    "detect_world": "imagenet_stream.streaming.launch_env",
    "COUNTERS": "imagenet_stream.streaming.shared_state",
    "TrainTransform": "imagenet_stream.streaming.decoding.transforms",
    "EvalTransform": "imagenet_stream.streaming.decoding.transforms",
    "PILTransform": "imagenet_stream.streaming.decoding.transforms",
    "RawTransform": "imagenet_stream.streaming.decoding.transforms",
    "build_transform": "imagenet_stream.streaming.decoding.presets",
    "normalize": "imagenet_stream.streaming.device",
    "CudaPrefetcher": "imagenet_stream.streaming.device",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)

"""Streaming half: plan (pure), read shards, decode, and the ``ImageNetStream`` IterableDataset.

Names are imported lazily so that ``imagenet_stream.streaming.plan`` (pure, no torch) stays cheap.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ImageNetStream": "imagenet_stream.streaming.dataset",
    "Stream": "imagenet_stream.streaming.mixture",
    "ClassSampling": "imagenet_stream.streaming.mixture",
    "merge_rank_states": "imagenet_stream.streaming.resume",
    "build_index": "imagenet_stream.streaming.foreign",
    "ShardCache": "imagenet_stream.streaming.cache",
    "ShardReader": "imagenet_stream.streaming.reader",
    "ShardInfo": "imagenet_stream.streaming.reader",
    "ClassSubset": "imagenet_stream.streaming.classes",
    "resolve_classes": "imagenet_stream.streaming.classes",
    "detect_world": "imagenet_stream.streaming.detect",
    "COUNTERS": "imagenet_stream.streaming.shared",
    "TrainTransform": "imagenet_stream.streaming.decode",
    "EvalTransform": "imagenet_stream.streaming.decode",
    "PILTransform": "imagenet_stream.streaming.decode",
    "RawTransform": "imagenet_stream.streaming.decode",
    "build_transform": "imagenet_stream.streaming.decode",
    "normalize": "imagenet_stream.streaming.device",
    "CudaPrefetcher": "imagenet_stream.streaming.device",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)

"""The named decode presets (``transform="train"``, ``imagenet-stream bench --transform eval``).

:data:`PRESETS` maps a name to what it builds; the CLI's choices and :func:`build_transform` read it,
so a new preset is one entry here. Torch-free until a preset is built (the CLI lists the names
without importing torch).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imagenet_stream.errors import ConfigError

#: The standard ImageNet eval ratio of crop to resize (224 / 256).
EVAL_CROP_PCT = 0.875


@dataclass(frozen=True)
class Preset:
    """A named transform: ``build(size)`` makes it; ``help`` says what it does."""

    help: str
    build: Callable[[int], Any]


def _train(size: int) -> Any:
    from imagenet_stream.streaming.decoding.transforms import TrainTransform

    return TrainTransform(size)


def _eval(size: int) -> Any:
    from imagenet_stream.streaming.decoding.transforms import EvalTransform

    return EvalTransform(size, resize=math.floor(size / EVAL_CROP_PCT))


PRESETS: dict[str, Preset] = {
    "train": Preset("RandomResizedCrop(size) + horizontal flip", _train),
    "eval": Preset("resize the short side to floor(size / 0.875), centre crop size", _eval),
}


def _check_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"size must be a positive int, got {size!r}")
    return size


def build_transform(spec: str | None | Callable[..., Any], size: int = 224) -> Any:
    """A :data:`PRESETS` name at ``size``; ``None`` -> ``RawTransform`` (the whole image); a
    ``BytesTransform`` as is; any other callable -> ``PILTransform`` around it (it gets an RGB PIL image).

    The eval resize follows the standard 0.875 crop ratio: ``floor(size / 0.875)`` (256 for 224).
    """
    from imagenet_stream.streaming.decoding.transforms import BytesTransform, PILTransform, RawTransform

    names = ", ".join(repr(n) for n in PRESETS)
    if spec is None:
        return RawTransform()
    if isinstance(spec, str):
        preset = PRESETS.get(spec)
        if preset is None:
            raise ConfigError(f"unknown transform preset {spec!r}; expected one of {names}, None or a callable")
        return preset.build(_check_size(size))
    if isinstance(spec, BytesTransform):
        return spec
    if callable(spec):
        return PILTransform(spec)
    raise ConfigError(f"transform must be one of {names}, None or a callable, got {spec!r}")


__all__ = ["EVAL_CROP_PCT", "PRESETS", "Preset", "build_transform"]

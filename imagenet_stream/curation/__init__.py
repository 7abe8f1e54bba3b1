"""Curation of published datasets: opt-out registries, and new versions that exclude samples over the
same shards.

Names are imported on first use: the sharder's workers load :mod:`.registry` alone, not the
streaming and hierarchy modules that :mod:`.exclude` needs.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Excluded": "imagenet_stream.curation.versions",
    "KEY_REASON": "imagenet_stream.curation.versions",
    "SYNSET_REASON": "imagenet_stream.curation.versions",
    "exclude": "imagenet_stream.curation.versions",
    "read_key_list": "imagenet_stream.curation.versions",
    "Registry": "imagenet_stream.curation.registry",
    "parse_registry": "imagenet_stream.curation.registry",
    "read_registry": "imagenet_stream.curation.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)

"""Curation of published datasets: opt-out registries, and new versions that exclude samples over the
same shards.

Names are imported on first use: the sharder's workers load :mod:`.registry` alone, not the
streaming and hierarchy modules that :mod:`.exclusion` needs.
"""
from __future__ import annotations

from imagenet_stream._lazy import lazy_exports

_EXPORTS = {
    "Excluded": "imagenet_stream.curation.exclusion",
    "KEY_REASON": "imagenet_stream.curation.exclusion",
    "SYNSET_REASON": "imagenet_stream.curation.exclusion",
    "exclude": "imagenet_stream.curation.exclusion",
    "read_key_list": "imagenet_stream.curation.exclusion",
    "Registry": "imagenet_stream.curation.registry",
    "parse_registry": "imagenet_stream.curation.registry",
    "read_registry": "imagenet_stream.curation.registry",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)

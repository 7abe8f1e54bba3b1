"""Curation of published datasets: opt-out registries, perceptual hashes and near-duplicate search
(within a dataset, and train <-> val leakage), and new versions that exclude samples over the same
shards.

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
    "read_digest_list": "imagenet_stream.curation.exclusion",
    "read_url_list": "imagenet_stream.curation.exclusion",
    "dedup": "imagenet_stream.curation.duplicates",
    "DEFAULT_MAX_DISTANCE": "imagenet_stream.curation.duplicates",
    "perceptual_hash": "imagenet_stream.curation.phash",
    "HashIndex": "imagenet_stream.curation.hash_index",
    "Registry": "imagenet_stream.curation.registry",
    "parse_registry": "imagenet_stream.curation.registry",
    "read_registry": "imagenet_stream.curation.registry",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)

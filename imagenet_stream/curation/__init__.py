"""Curation of published datasets: opt-out registries, and new versions that exclude samples over the
same shards."""
from imagenet_stream.curation.exclude import KEY_REASON, SYNSET_REASON, Excluded, exclude, read_key_list
from imagenet_stream.curation.registry import Registry, parse_registry, read_registry

__all__ = ["Excluded", "KEY_REASON", "Registry", "SYNSET_REASON", "exclude", "parse_registry", "read_key_list",
           "read_registry"]

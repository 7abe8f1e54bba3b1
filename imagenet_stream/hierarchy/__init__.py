"""WordNet 3.0 hierarchy of ImageNet: the shipped noun graph and the class spaces over it.

The graph and class-space API needs no torch and no fsspec: pure lookups over package data. The
torch parts — :class:`HierarchicalTargets` and the ``losses`` / ``metrics`` modules — are imported on
first use, so ``import imagenet_stream.hierarchy`` stays torch-free. See docs/HIERARCHY.md.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from imagenet_stream._lazy import lazy_exports
from imagenet_stream.hierarchy.class_hierarchy import Hierarchy
from imagenet_stream.hierarchy.graph import WordNetGraph, load_graph
from imagenet_stream.hierarchy.spaces import (
    NAMED_SPACES,
    STANDARD_SPACES,
    ClassSpace,
    choose_space,
    is_known_wnid,
    load_space,
    standard_space,
    subset_indices,
)
from imagenet_stream.hierarchy.tree import SpaceTables, build_tables

if TYPE_CHECKING:
    from imagenet_stream.hierarchy import losses, metrics
    from imagenet_stream.hierarchy.targets import HierarchicalTargets

__all__ = ["NAMED_SPACES", "STANDARD_SPACES", "ClassSpace", "HierarchicalTargets", "Hierarchy", "SpaceTables", "WordNetGraph",
           "build_tables", "choose_space", "is_known_wnid", "load_graph", "load_space", "losses", "metrics",
           "standard_space", "subset_indices"]

__getattr__ = lazy_exports(__name__, {"HierarchicalTargets": "imagenet_stream.hierarchy.targets",
                                       "losses": "imagenet_stream.hierarchy.losses",
                                       "metrics": "imagenet_stream.hierarchy.metrics"})

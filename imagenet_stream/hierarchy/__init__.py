"""WordNet 3.0 hierarchy of ImageNet: the shipped noun graph and the class spaces over it.

The graph and class-space API needs no torch and no fsspec: pure lookups over package data. The
torch parts — :class:`HierarchicalTargets` and the ``losses`` / ``metrics`` modules — are imported on
first use, so ``import imagenet_stream.hierarchy`` stays torch-free. See docs/HIERARCHY.md.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .graph import WordNetGraph, load_graph
from .hierarchy import Hierarchy
from .spaces import STANDARD_SPACES, ClassSpace, choose_space, is_known_wnid, load_space, standard_space
from .tree import SpaceTables, build_tables

if TYPE_CHECKING:
    from . import losses, metrics
    from .targets import HierarchicalTargets

__all__ = ["STANDARD_SPACES", "ClassSpace", "HierarchicalTargets", "Hierarchy", "SpaceTables", "WordNetGraph",
           "build_tables", "choose_space", "is_known_wnid", "load_graph", "load_space", "losses", "metrics",
           "standard_space"]

_LAZY = {"HierarchicalTargets": ("targets", "HierarchicalTargets"), "losses": ("losses", None),
         "metrics": ("metrics", None)}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(f".{module_name}", __name__)
    return module if attribute is None else getattr(module, attribute)

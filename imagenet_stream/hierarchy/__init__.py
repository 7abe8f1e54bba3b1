"""WordNet 3.0 hierarchy of ImageNet: the shipped noun graph and the class spaces over it.

No torch, no fsspec: pure lookups over package data. See docs/HIERARCHY.md.
"""
from __future__ import annotations

from .graph import WordNetGraph, load_graph
from .hierarchy import Hierarchy
from .spaces import STANDARD_SPACES, ClassSpace, choose_space, is_known_wnid, load_space, standard_space

__all__ = ["STANDARD_SPACES", "ClassSpace", "Hierarchy", "WordNetGraph", "choose_space", "is_known_wnid",
           "load_graph", "load_space", "standard_space"]

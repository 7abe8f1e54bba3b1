"""Integer tables over one class space for batched hierarchy math (numpy, no torch).

Everything here is computed once per class space from the shipped graph and its tree projection
(``WordNetGraph.tree_parent``: the parent on the longest path to entity, ties by smallest wnid).
See docs/HIERARCHY.md, "Hierarchy-aware targets", for the definitions these tables implement.

Tree terms used below, for a class ``c`` whose node has tree depth ``d_c`` (= ``max_depth``):

* ``paths[c, j]`` is the node at depth ``j`` on ``c``'s tree path (root-anchored, ``paths[c, 0]`` =
  entity, ``paths[c, d_c]`` = ``c``'s own node, ``-1`` after it);
* classes sorted by their root-anchored paths are in **pre-order** (a node before everything under
  it, siblings by wnid), so the classes under any node form one contiguous run ``[lo, hi)`` of
  pre-order positions; ``path_lo/path_hi[c, j]`` is that run for ``paths[c, j]`` (``0, 0`` padding);
* the tree LCA of two classes is the deepest node their paths share;
  ``D(a, b) = max(d_a, d_b) - depth(tree LCA)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imagenet_stream.hierarchy.graph import WordNetGraph

#: the semantic-softmax level weight cap of Ridnik et al. 2021 (``max_normalization_factor``)
LEVEL_WEIGHT_CAP = 20.0


@dataclass(frozen=True, eq=False)
class SpaceTables:
    """Per-class tables of one class space (all numpy, read-only). Build with :func:`build_tables`."""

    class_depth: np.ndarray  #: [C] int32, tree depth of each class's node
    paths: np.ndarray  #: [C, L] int32, root-anchored tree path node ids, -1 padded; L = max depth + 1
    order: np.ndarray  #: [C] int64, pre-order position -> class index
    position: np.ndarray  #: [C] int64, class index -> pre-order position
    path_lo: np.ndarray  #: [C, L] int32, first pre-order position under paths[c, j] (0 padded)
    path_hi: np.ndarray  #: [C, L] int32, one past the last position under paths[c, j] (0 padded)
    ancestors: np.ndarray  #: [C, K] int32, the class and its in-space DAG ancestors, padded with c
    num_ancestors: np.ndarray  #: [C] int32, number of valid entries in ``ancestors`` (self included)
    class_level: np.ndarray  #: [C] int32, depth in the tree projection restricted to the space
    level_position: np.ndarray  #: [C] int32, index of the class within its level
    levels: np.ndarray  #: [C, NL] int64, index within level l of the class's in-space ancestor, -1 none
    level_classes: tuple[np.ndarray, ...]  #: class indices (ascending) of each level
    level_weights: np.ndarray  #: [NL] float64, min(C / #classes at level >= l, LEVEL_WEIGHT_CAP)
    depth_hist: np.ndarray  #: [N, L] int32, per graph node: classes under it (itself included) per depth
    node_depths: np.ndarray  #: tree depths of every distinct node on some class path (entity included)
    internal_depths: np.ndarray  #: tree depths of the classes that have another class under them
    d_max: int  #: max over class pairs of D(a, b) (0 for a single class)

    @property
    def num_classes(self) -> int:
        return len(self.class_depth)

    @property
    def num_levels(self) -> int:
        return len(self.level_classes)


def build_tables(graph: WordNetGraph, class_nodes: np.ndarray) -> SpaceTables:
    """All tables for the class space whose class ``i`` is graph node ``class_nodes[i]``."""
    class_nodes = np.asarray(class_nodes, dtype=np.int64)
    num = len(class_nodes)
    depth = graph.max_depth[class_nodes].astype(np.int64)
    width = int(depth.max()) + 1
    up = _upward(graph.tree_parent, class_nodes, width)  # up[c, s] = s-th tree ancestor, -1 past root
    cols = np.arange(width)
    steps = depth[:, None] - cols[None, :]
    paths = np.where(steps >= 0, np.take_along_axis(up, np.clip(steps, 0, None), axis=1), -1)

    order = np.lexsort(paths.T[::-1]).astype(np.int64)  # -1 padding sorts a prefix first: pre-order
    position = np.empty(num, dtype=np.int64)
    position[order] = np.arange(num)
    valid = paths >= 0
    rows, js = np.nonzero(valid)
    nodes_on = paths[rows, js]
    lo = np.full(graph.num_nodes, num, dtype=np.int64)
    hi = np.zeros(graph.num_nodes, dtype=np.int64)
    np.minimum.at(lo, nodes_on, position[rows])
    np.maximum.at(hi, nodes_on, position[rows] + 1)
    safe = np.where(valid, paths, 0)
    path_lo = np.where(valid, lo[safe], 0)
    path_hi = np.where(valid, hi[safe], 0)

    node_classes = np.full(graph.num_nodes, -1, dtype=np.int64)
    node_classes[class_nodes] = np.arange(num)
    ancestors, num_ancestors = _space_ancestors(graph, class_nodes, node_classes)
    class_level, levels, level_classes, level_position = _levels(up, node_classes, num)
    counts = np.array([len(c) for c in level_classes], dtype=np.float64)
    at_or_below = np.cumsum(counts[::-1])[::-1]
    level_weights = np.minimum(num / at_or_below, LEVEL_WEIGHT_CAP)

    depth_hist = np.zeros((graph.num_nodes, width), dtype=np.int32)
    np.add.at(depth_hist, (nodes_on, depth[rows]), 1)
    distinct = np.unique(nodes_on)
    internal = class_nodes[(hi[class_nodes] - lo[class_nodes]) > 1]
    return SpaceTables(
        class_depth=_ro(depth.astype(np.int32)), paths=_ro(paths.astype(np.int32)), order=_ro(order),
        position=_ro(position), path_lo=_ro(path_lo.astype(np.int32)), path_hi=_ro(path_hi.astype(np.int32)),
        ancestors=_ro(ancestors), num_ancestors=_ro(num_ancestors), class_level=_ro(class_level),
        level_position=_ro(level_position), levels=_ro(levels),
        level_classes=tuple(_ro(c) for c in level_classes), level_weights=_ro(level_weights),
        depth_hist=_ro(depth_hist),
        node_depths=_ro(graph.max_depth[distinct].astype(np.int64)),
        internal_depths=_ro(graph.max_depth[internal].astype(np.int64)),
        d_max=_d_max(graph, distinct, lo, hi, order, paths, depth))


def _upward(tree_parent: np.ndarray, start: np.ndarray, width: int) -> np.ndarray:
    up = np.full((len(start), width), -1, dtype=np.int64)
    cur = start.copy()
    for s in range(width):
        up[:, s] = cur
        cur = np.where(cur >= 0, tree_parent[np.clip(cur, 0, None)], -1)
    return up


def _space_ancestors(graph: WordNetGraph, class_nodes: np.ndarray,
                     node_classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class: itself then its in-space ancestors over every DAG path, padded with itself."""
    memo: dict[int, frozenset[int]] = {}
    by_depth = np.argsort(graph.max_depth, kind="stable")  # parents before children
    for node in by_depth:
        node = int(node)
        acc: set[int] = set()
        for p in graph.parents(node):
            acc.add(int(p))
            acc |= memo[int(p)]
        memo[node] = frozenset(acc)
    rows = []
    for c, node in enumerate(class_nodes):
        found = node_classes[np.fromiter(memo[int(node)], dtype=np.int64, count=len(memo[int(node)]))]
        rows.append([c] + sorted(int(x) for x in found if x >= 0))
    width = max(len(r) for r in rows)
    table = np.array([r + [r[0]] * (width - len(r)) for r in rows], dtype=np.int32)
    return table, np.array([len(r) for r in rows], dtype=np.int32)


def _levels(up: np.ndarray, node_classes: np.ndarray,
            num: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray]:
    """Levels of the tree projection restricted to the space (Ridnik et al.'s semantic levels)."""
    chain_cls = np.where(up >= 0, node_classes[np.clip(up, 0, None)], -1)  # [C, W]; column 0 = self
    class_level = (chain_cls[:, 1:] >= 0).sum(axis=1).astype(np.int32)
    num_levels = int(class_level.max()) + 1
    level_classes = [np.flatnonzero(class_level == lv) for lv in range(num_levels)]
    level_position = np.empty(num, dtype=np.int32)
    for members in level_classes:
        level_position[members] = np.arange(len(members))
    levels = np.full((num, num_levels), -1, dtype=np.int64)
    for c in range(num):
        chain = chain_cls[c][chain_cls[c] >= 0]  # self, in-space tree parent, ... (bottom-up)
        levels[c, :len(chain)] = level_position[chain[::-1]]
    return class_level, levels, level_classes, level_position


def _d_max(graph: WordNetGraph, distinct: np.ndarray, lo: np.ndarray, hi: np.ndarray, order: np.ndarray,
           paths: np.ndarray, depth: np.ndarray) -> int:
    """max D over class pairs: over nodes that are the tree LCA of some pair, deepest class below - depth.

    A node is such an LCA exactly when it is the LCA of the first and last class (pre-order) under it.
    """
    first, last = paths[order[lo[distinct]]], paths[order[hi[distinct] - 1]]
    shared = ((first == last) & (first >= 0)).sum(axis=1) - 1
    own = graph.max_depth[distinct]
    deepest = np.zeros(graph.num_nodes, dtype=np.int64)
    rows, js = np.nonzero(paths >= 0)
    np.maximum.at(deepest, paths[rows, js], depth[rows])
    is_lca = shared == own
    return int((deepest[distinct] - own)[is_lca].max())


def _ro(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array

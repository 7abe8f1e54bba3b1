"""The class counts over the WordNet tree, as compact arrays for the report's treemap.

Nodes are every class with images plus its ancestors along the WordNet *tree* (each node's parent on
its longest path to the root, :attr:`~imagenet_stream.hierarchy.graph.WordNetGraph.tree_parent`), so
every image is counted once. A class that is also an ancestor of other classes keeps its own
images as its own count; the treemap shows them as a "(this class)" tile. Classes outside the
shipped graph hang under an extra top-level node.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from imagenet_stream.hierarchy.graph import load_graph

OTHER = "(not in WordNet)"


def class_tree(wnids: Sequence[str], counts: Sequence[int]) -> dict[str, Any]:
    """``{"w": wnids, "n": names, "p": parent positions (-1: root), "c": own image counts,
    "k": 1 for a class of the dataset}``, parents before children."""
    graph = load_graph()
    n = graph.num_nodes
    own = np.zeros(n + 1, dtype=np.int64)      # slot n: classes outside the graph, summed
    is_class = np.zeros(n + 1, dtype=bool)
    outside: list[tuple[str, int]] = []
    for wnid, count in zip(wnids, counts):
        if count <= 0:
            continue
        if wnid in graph:
            node = graph.node_index(wnid)
            own[node] += int(count)
            is_class[node] = True
        else:
            outside.append((wnid, int(count)))
    keep = np.zeros(n, dtype=bool)
    frontier = np.flatnonzero(is_class[:n])
    parents = np.asarray(graph.tree_parent)
    while frontier.size:
        frontier = frontier[~keep[frontier]]
        keep[frontier] = True
        frontier = parents[frontier]
        frontier = frontier[frontier >= 0]
    nodes = np.flatnonzero(keep)
    # parents first: a tree parent lies on the longest path to the root, one step up it
    nodes = nodes[np.argsort(np.asarray(graph.max_depth)[nodes], kind="stable")]
    position = {int(node): i for i, node in enumerate(nodes.tolist())}
    out: dict[str, list[Any]] = {"w": [], "n": [], "p": [], "c": [], "k": []}
    for node in nodes.tolist():
        out["w"].append(graph.node_wnids[node])
        out["n"].append(graph.names[node].split(",")[0])
        out["p"].append(position.get(int(parents[node]), -1))
        out["c"].append(int(own[node]))
        out["k"].append(int(is_class[node]))
    if outside:
        other = len(out["w"])
        out["w"].append("")
        out["n"].append(OTHER)
        out["p"].append(0 if out["w"] else -1)
        out["c"].append(0)
        out["k"].append(0)
        for wnid, count in outside:
            out["w"].append(wnid)
            out["n"].append(wnid)
            out["p"].append(other)
            out["c"].append(count)
            out["k"].append(1)
    return out


__all__ = ["OTHER", "class_tree"]

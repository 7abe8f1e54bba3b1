"""The shipped WordNet 3.0 noun graph: integer arrays over every node ImageNet needs, loaded once.

Package data ``data/wordnet.msgpack.gz`` (built by ``tools/build_hierarchy.py``) is a gzipped msgpack
map: ``format`` (1), ``source`` (provenance), ``root`` (node index of n00001740 entity), ``wnids``
(the node wnids, sorted, joined by newlines), ``names`` (one per node), ``parent_ptr`` / ``parent_idx``
(the parents as CSR of little-endian uint32 node indices, each node's parents sorted), ``in21k`` and
``in1k`` (uint32 node indices of fall11's 21,841 sorted synsets and of ILSVRC-2012's 1,000 in standard
order). Node ``i`` is ``wnids[i]``; since nodes are sorted, a smaller node index means a smaller wnid.

Depth conventions (entity has depth 0):
  * ``depth``: length of the SHORTEST path from the node up to entity;
  * ``max_depth``: length of the LONGEST such path (= the node's depth in the tree projection);
  * ``tree_parent``: the parent on a longest path to entity (``max_depth[parent] == max_depth[node] - 1``),
    ties broken by the smallest wnid; ``-1`` for entity.
"""
from __future__ import annotations

import gzip
import logging
from collections.abc import Callable
from functools import lru_cache
from importlib import resources

import msgpack
import numpy as np

from imagenet_stream.errors import ImageNetStreamError

log = logging.getLogger(__name__)

DATA_NAME = "wordnet.msgpack.gz"
DATA_FORMAT = 1
ROOT_WNID = "n00001740"


class WordNetGraph:
    """The WordNet noun DAG over the shipped nodes. Build it with :func:`load_graph` (shared, cached).

    Public integer arrays (numpy, read-only) are indexed by node index: ``parent_ptr``/``parent_idx``
    and ``child_ptr``/``child_idx`` (CSR), ``depth``, ``max_depth``, ``tree_parent``.
    """

    def __init__(self, doc: dict) -> None:
        if doc.get("format") != DATA_FORMAT:
            raise ImageNetStreamError(f"hierarchy data format {doc.get('format')!r} is not {DATA_FORMAT}")
        self.node_wnids: tuple[str, ...] = tuple(doc["wnids"].split("\n"))
        self.names: tuple[str, ...] = tuple(doc["names"])
        self.source: dict = dict(doc["source"])
        n = len(self.node_wnids)
        self._node = {wnid: i for i, wnid in enumerate(self.node_wnids)}
        self.root = int(doc["root"])
        self.parent_ptr = _u32(doc["parent_ptr"])
        self.parent_idx = _u32(doc["parent_idx"])
        self.in21k_nodes = _u32(doc["in21k"])
        self.in1k_nodes = _u32(doc["in1k"])
        #: Named class spaces (pretrained heads' orders): name -> node indices in head order.
        self.named_spaces: dict[str, np.ndarray] = {str(k): _u32(v) for k, v in doc.get("spaces", {}).items()}
        if (len(self.names) != n or len(self.parent_ptr) != n + 1
                or self.parent_ptr[-1] != len(self.parent_idx)):
            raise ImageNetStreamError(f"hierarchy data is inconsistent: {n} wnids, {len(self.names)} names, "
                                      f"{len(self.parent_ptr)} parent pointers")
        counts = np.diff(self.parent_ptr)
        self._edge_child = np.repeat(np.arange(n, dtype=np.int64), counts)
        order = np.argsort(self.parent_idx, kind="stable")
        self.child_idx = self._edge_child[order]
        self.child_ptr = np.concatenate([[0], np.cumsum(np.bincount(self.parent_idx, minlength=n))])
        self.depth = self._relax(np.minimum, initial=n + 1)
        self.max_depth = self._relax(np.maximum, initial=0)
        self.tree_parent = self._tree_parents()
        for array in (self.parent_ptr, self.parent_idx, self.child_ptr, self.child_idx, self.in21k_nodes,
                      self.in1k_nodes, self.depth, self.max_depth, self.tree_parent):
            array.flags.writeable = False

    def _relax(self, op: np.ufunc, initial: int) -> np.ndarray:
        """Shortest (op=minimum) or longest (op=maximum) path length from every node to the root."""
        n = self.num_nodes
        out = np.full(n, initial, dtype=np.int64)
        out[self.root] = 0
        for _ in range(n + 1):
            step = np.full(n, initial, dtype=np.int64)
            op.at(step, self._edge_child, out[self.parent_idx] + 1)
            step[self.root] = 0
            if np.array_equal(step, out):
                break
            out = step
        else:
            raise ImageNetStreamError("hierarchy data has a cycle")
        unreachable = np.flatnonzero(out > n)
        if op is np.minimum and len(unreachable):
            raise ImageNetStreamError(f"{self.node_wnids[unreachable[0]]} does not reach {ROOT_WNID}")
        return out

    def _tree_parents(self) -> np.ndarray:
        n = self.num_nodes
        on_longest = self.max_depth[self.parent_idx] == self.max_depth[self._edge_child] - 1
        tree_parent = np.full(n, n, dtype=np.int64)
        np.minimum.at(tree_parent, self._edge_child[on_longest], self.parent_idx[on_longest])
        tree_parent[self.root] = -1
        return tree_parent

    # ---- node lookups -------------------------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        return len(self.node_wnids)

    def __contains__(self, wnid: object) -> bool:
        return wnid in self._node

    def node_index(self, wnid: str) -> int:
        """The node index of a wnid; KeyError naming it when it is not in the shipped graph."""
        try:
            return self._node[wnid]
        except (KeyError, TypeError):
            raise KeyError(f"{wnid!r} is not a node of the shipped WordNet 3.0 graph") from None

    def parents(self, node: int) -> np.ndarray:
        return self.parent_idx[self.parent_ptr[node]:self.parent_ptr[node + 1]]

    def children(self, node: int) -> np.ndarray:
        return self.child_idx[self.child_ptr[node]:self.child_ptr[node + 1]]

    def ancestors(self, node: int) -> np.ndarray:
        """Node indices of all ancestors of ``node`` (itself excluded), sorted."""
        return self._reach(node, self.parents)

    def descendants(self, node: int) -> np.ndarray:
        """Node indices of all descendants of ``node`` (itself excluded), sorted."""
        return self._reach(node, self.children)

    @staticmethod
    def _reach(node: int, step: Callable[[int], np.ndarray]) -> np.ndarray:
        seen: set[int] = set()
        stack = [int(x) for x in step(node)]
        while stack:
            x = stack.pop()
            if x not in seen:
                seen.add(x)
                stack.extend(int(y) for y in step(x))
        return np.array(sorted(seen), dtype=np.int64)

    def is_a(self, a: int, b: int) -> bool:
        """True when ``a == b`` or ``b`` is an ancestor of ``a``."""
        if a == b:
            return True
        if self.max_depth[b] >= self.max_depth[a]:
            return False  # a proper ancestor's longest path to the root is strictly shorter
        stack, seen = [a], {a}
        while stack:
            for p in self.parents(stack.pop()):
                p = int(p)
                if p == b:
                    return True
                if p not in seen:
                    seen.add(p)
                    stack.append(p)
        return False

    def lca(self, a: int, b: int) -> int:
        """The deepest common ancestor (each node counts as its own ancestor).

        "Deepest" is by ``max_depth``; ties go to the smallest wnid. A common ancestor below another
        always has a strictly larger ``max_depth``, so the result has no common ancestor under it.
        """
        common = np.intersect1d(np.append(self.ancestors(a), a), np.append(self.ancestors(b), b))
        best = common[self.max_depth[common] == self.max_depth[common].max()]
        return int(best.min())

    def tree_path(self, node: int) -> list[int]:
        """``[node, tree_parent(node), ..., root]``."""
        path = [node]
        while path[-1] != self.root:
            path.append(int(self.tree_parent[path[-1]]))
        return path


def short_names() -> dict[str, str]:
    """wnid -> its first WordNet lemma ("golden retriever"), for every shipped node."""
    graph = load_graph()
    return {w: n.split(",")[0] for w, n in zip(graph.node_wnids, graph.names)}


def _u32(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<u4").astype(np.int64)


@lru_cache(maxsize=1)
def load_graph() -> WordNetGraph:
    """The shipped graph, read from package data on first use and shared afterwards."""
    raw = resources.files(__package__).joinpath("data", DATA_NAME).read_bytes()
    doc = msgpack.unpackb(gzip.decompress(raw), raw=False)
    graph = WordNetGraph(doc)
    log.debug("loaded WordNet graph: %d nodes", graph.num_nodes)
    return graph

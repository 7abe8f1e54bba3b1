"""``Hierarchy``: a class space seen through the shipped WordNet 3.0 graph.

Graph queries (``name``, ``parents``, ``ancestors``, ``is_a``, ``depth``, ``max_depth``, ``lca``,
``tree_parent``, ``tree_path``) accept ANY node of the graph, including non-class ancestors such as
n02084071 (dog) in ``in1k``. Class queries (``index``, ``subtree``, ``classes``, ``len``, ``in``) are about
this hierarchy's class space. Unknown wnids raise KeyError naming them. See docs/HIERARCHY.md.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property, lru_cache
from typing import Any

import numpy as np

from imagenet_stream.errors import SourceError
from imagenet_stream.hierarchy.graph import WordNetGraph, load_graph
from imagenet_stream.hierarchy.spaces import (
    CUSTOM_PREFIX,
    STANDARD_SPACES,
    ClassSpace,
    load_space,
    standard_space,
)
from imagenet_stream.hierarchy.tree import SpaceTables, build_tables


class Hierarchy:
    """The WordNet graph (shared by every instance, loaded once) plus one class space.

    For batched math, integer views are exposed: ``graph`` (a :class:`WordNetGraph` with CSR parent and
    child arrays, ``depth``, ``max_depth``, ``tree_parent`` over node indices), ``node_wnids``,
    ``node_index(wnid)``, ``class_nodes`` (class index → node index) and ``node_classes`` (node index →
    class index, -1 for nodes that are not classes of this space).
    """

    def __init__(self, space: ClassSpace) -> None:
        graph = load_graph()
        missing = [w for w in space.wnids if w not in graph]
        if missing:
            raise SourceError(f"class space {space.id!r}: {len(missing)} wnid(s) not in the shipped "
                              f"WordNet 3.0 graph, e.g. {', '.join(missing[:5])}")
        self.graph: WordNetGraph = graph
        self.space = space
        self.class_nodes = np.array([graph.node_index(w) for w in space.wnids], dtype=np.int64)
        node_classes = np.full(graph.num_nodes, -1, dtype=np.int64)
        node_classes[self.class_nodes] = np.arange(len(space), dtype=np.int64)
        self.node_classes = node_classes
        self.class_nodes.flags.writeable = False
        self.node_classes.flags.writeable = False

    # ---- construction ---------------------------------------------------------------------------
    @classmethod
    def imagenet1k(cls) -> Hierarchy:
        """ILSVRC-2012's 1,000 classes in standard order."""
        return _standard("in1k")

    @classmethod
    def imagenet21k(cls) -> Hierarchy:
        """fall11's 21,841 classes, sorted (no n04399382 teddy bear)."""
        return _standard("in21k")

    @classmethod
    def imagenet22k(cls) -> Hierarchy:
        """Microsoft's 21,842: the in1k classes first (ILSVRC order), then the rest of fall11 sorted."""
        return _standard("in22k")

    @classmethod
    def for_space(cls, space: ClassSpace | str | Sequence[str]) -> Hierarchy:
        """A hierarchy over ``space``: a ClassSpace, a standard or named space (``"in21k-p"``), a
        class-list file (see load_space), or a list of wnids such as ``ImageNetStream(...).classes``.

        Standard spaces give shared cached objects. SourceError when a class is not in the shipped graph.
        """
        if isinstance(space, str) and space in STANDARD_SPACES:
            return _standard(space)
        if not isinstance(space, (str, ClassSpace)) and isinstance(space, Sequence):
            return cls.for_classes(space)
        if not isinstance(space, ClassSpace):
            space = load_space(space)
        if space.is_standard and space == standard_space(space.id):
            return _standard(space.id)
        return cls(space)

    @classmethod
    def for_classes(cls, wnids: Iterable[str], name: str = "classes") -> Hierarchy:
        """A hierarchy whose class ``i`` is ``wnids[i]`` (e.g. ``ImageNetStream(...).classes``).

        The shared standard hierarchy when the list is exactly a standard space, else ``custom:<name>``.
        SourceError for malformed or repeated wnids or ones missing from the shipped graph.
        """
        wnids = tuple(wnids)
        for space in STANDARD_SPACES:
            if standard_space(space).wnids == wnids:
                return _standard(space)
        return cls(ClassSpace.custom(name, wnids))

    # ---- class space ------------------------------------------------------------------------------
    @property
    def classes(self) -> tuple[str, ...]:
        return self.space.wnids

    def index(self, wnid: str) -> int:
        """Class index of ``wnid`` in this space; KeyError naming it otherwise."""
        return self.space.index(wnid)

    def __len__(self) -> int:
        """Number of classes."""
        return len(self.space)

    def __contains__(self, wnid: object) -> bool:
        """True when ``wnid`` is a CLASS of this space (use :meth:`in_graph` for any graph node)."""
        return wnid in self.space

    def in_graph(self, wnid: object) -> bool:
        """True when ``wnid`` is a node of the shipped graph (a class or an ancestor of one)."""
        return wnid in self.graph

    def subtree(self, wnid: str) -> tuple[str, ...]:
        """The classes of this space that are ``wnid`` or under it, in class order."""
        return tuple(self.space.wnids[i] for i in self.subtree_indices(wnid))

    def subtree_indices(self, wnid: str) -> np.ndarray:
        """Class indices (sorted) of :meth:`subtree`."""
        node = self.node_index(wnid)
        nodes = np.append(self.graph.descendants(node), node)
        found = self.node_classes[nodes]
        return np.sort(found[found >= 0])

    # ---- any graph node -------------------------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        """Number of nodes in the shipped graph (classes of all standard spaces and their ancestors)."""
        return self.graph.num_nodes

    @property
    def node_wnids(self) -> tuple[str, ...]:
        """Node index → wnid (sorted, so node order is wnid order)."""
        return self.graph.node_wnids

    @property
    def root(self) -> str:
        """n00001740 (entity), the only root."""
        return self.graph.node_wnids[self.graph.root]

    def node_index(self, wnid: str) -> int:
        """Node index of any graph node; KeyError naming ``wnid`` when it is not in the graph."""
        return self.graph.node_index(wnid)

    def name(self, wnid: str) -> str:
        """The synset's lemmas joined by ", ", e.g. "dog, domestic dog, Canis familiaris"."""
        return self.graph.names[self.node_index(wnid)]

    def parents(self, wnid: str) -> tuple[str, ...]:
        """Hypernyms and instance hypernyms, sorted by wnid (empty for entity)."""
        return self._wnids(self.graph.parents(self.node_index(wnid)))

    def ancestors(self, wnid: str) -> tuple[str, ...]:
        """Every ancestor up to and including entity, excluding ``wnid`` itself, sorted by wnid."""
        return self._wnids(self.graph.ancestors(self.node_index(wnid)))

    def is_a(self, a: str, b: str) -> bool:
        """True when ``a == b`` or ``b`` is an ancestor of ``a``."""
        return self.graph.is_a(self.node_index(a), self.node_index(b))

    def depth(self, wnid: str) -> int:
        """Length of the SHORTEST path from ``wnid`` up to entity (entity = 0)."""
        return int(self.graph.depth[self.node_index(wnid)])

    def max_depth(self, wnid: str) -> int:
        """Length of the LONGEST path from ``wnid`` up to entity (= its depth in the tree projection)."""
        return int(self.graph.max_depth[self.node_index(wnid)])

    def lca(self, a: str, b: str) -> str:
        """The deepest common ancestor of ``a`` and ``b``; each node counts as its own ancestor.

        DAG rule: among all common ancestors, the one with the largest :meth:`max_depth`, ties broken by
        the smallest wnid. No other common ancestor lies under the result (a node's proper descendant
        always has a larger max_depth). ``lca(a, b) == b`` when ``is_a(a, b)``.
        """
        return self.graph.node_wnids[self.graph.lca(self.node_index(a), self.node_index(b))]

    def tree_parent(self, wnid: str) -> str | None:
        """The tree projection's single parent: the parent on the longest path to entity.

        That is the parent ``p`` with ``max_depth(p) == max_depth(wnid) - 1`` (the largest max_depth of
        all parents); when several parents qualify, the smallest wnid wins. None for entity.
        """
        parent = int(self.graph.tree_parent[self.node_index(wnid)])
        return None if parent < 0 else self.graph.node_wnids[parent]

    def tree_path(self, wnid: str) -> tuple[str, ...]:
        """``(wnid, tree_parent(wnid), ..., "n00001740")``; its length is ``max_depth(wnid) + 1``."""
        return self._wnids(self.graph.tree_path(self.node_index(wnid)))

    def tree_lca(self, a: str, b: str) -> str:
        """The deepest node shared by the tree paths of ``a`` and ``b`` (the LCA in the tree projection).

        Unlike :meth:`lca` (over the whole DAG) this follows only ``tree_parent`` links, so it can be
        shallower: dog and wolf meet at canine either way, but a node reached through a non-tree parent
        is not seen here.
        """
        path_a = self.tree_path(a)[::-1]
        path_b = self.tree_path(b)[::-1]
        shared = 0
        while shared < min(len(path_a), len(path_b)) and path_a[shared] == path_b[shared]:
            shared += 1
        return path_a[shared - 1]

    def distance(self, a: str, b: str) -> int:
        """The tree-projection LCA distance used by soft labels, HXE metrics and the benchmarks.

        ``D(a, b) = max(max_depth(a), max_depth(b)) - max_depth(tree_lca(a, b))``: the height of the
        tree LCA in the smallest subtree holding ``a`` and ``b`` (edges from the LCA down to the deeper of
        the two). ``D(a, a) == 0``, ``D`` is symmetric, and ``D(a, b) = max_depth(a) - max_depth(b)`` when
        ``b`` is on ``a``'s tree path. Any graph nodes are accepted; see docs/HIERARCHY.md.
        """
        depth = self.graph.max_depth
        deeper = max(depth[self.node_index(a)], depth[self.node_index(b)])
        return int(deeper - depth[self.node_index(self.tree_lca(a, b))])

    # ---- derived class spaces and index maps --------------------------------------------------------
    @cached_property
    def tables(self) -> SpaceTables:
        """Precomputed integer tables over this class space (built on first use, then kept)."""
        return build_tables(self.graph, self.class_nodes)

    def restrict(self, wnids: Iterable[str], name: str | None = None) -> Hierarchy:
        """A hierarchy over the given classes of this space, in the given order.

        SourceError when the list is empty, repeats a wnid, or names a wnid that is not a class here.
        The new space's id is ``custom:<name>`` (default ``<this id>-subset``).
        """
        wnids = tuple(wnids)
        missing = [w for w in wnids if w not in self.space]
        if missing:
            raise SourceError(f"cannot restrict space {self.space.id!r}: {len(missing)} wnid(s) are not its "
                              f"classes, e.g. {', '.join(map(repr, missing[:5]))}")
        return Hierarchy(ClassSpace.custom(name or f"{self._base_name()}-subset", wnids))

    def restrict_subtree(self, wnid: str, name: str | None = None) -> Hierarchy:
        """A hierarchy over this space's classes that are ``wnid`` or under it (in this space's order).

        KeyError for a wnid that is not in the graph; SourceError when no class lies under it.
        """
        found = self.subtree(wnid)
        if not found:
            raise SourceError(f"no class of space {self.space.id!r} is {wnid} or under it")
        return Hierarchy(ClassSpace.custom(name or f"{self._base_name()}-{wnid}", found))

    def class_map(self, to: Hierarchy | ClassSpace) -> np.ndarray:
        """``[len(self)]`` int64: index in ``to`` of each class of this space, -1 where ``to`` lacks it."""
        target = to.space if isinstance(to, Hierarchy) else to
        return np.array([target.index(w) if w in target else -1 for w in self.space.wnids], dtype=np.int64)

    def remap(self, indices: Any, to: Hierarchy | ClassSpace) -> Any:
        """Class indices of this space → indices of ``to`` (-1 for classes ``to`` lacks).

        Accepts an int, a sequence, a numpy array or a torch tensor (the result stays on its device)
        and returns the same kind. IndexError naming the value for an index outside this space. E.g.
        ``Hierarchy.imagenet1k().remap([0, 850], to=Hierarchy.imagenet21k())`` maps tench to its in21k
        index and teddy bear (not in fall11) to -1.
        """
        key = to.space if isinstance(to, Hierarchy) else to
        table = self._maps.get(key.sha256 + key.id)
        if table is None:
            table = self._maps[key.sha256 + key.id] = self.class_map(key)
        if type(indices).__module__.startswith("torch"):
            import torch  # only when a tensor is passed: the hierarchy package stays torch-free

            if indices.is_floating_point() or indices.is_complex():
                raise IndexError(f"class indices must be integers, got dtype {indices.dtype}")
            lookup = torch.from_numpy(table).to(indices.device)
            _check_range(int(indices.min()) if indices.numel() else 0,
                         int(indices.max()) if indices.numel() else 0, len(self))
            return lookup[indices.long()]
        array = np.asarray(indices)
        if not np.issubdtype(array.dtype, np.integer) and array.size:
            raise IndexError(f"class indices must be integers, got dtype {array.dtype}")
        if array.size:
            _check_range(int(array.min()), int(array.max()), len(self))
        out = table[array.astype(np.int64)]
        if array.ndim == 0:
            return int(out)
        return out if isinstance(indices, np.ndarray) else out.tolist()

    @cached_property
    def _maps(self) -> dict[str, np.ndarray]:
        return {}

    def _base_name(self) -> str:
        return self.space.id.removeprefix(CUSTOM_PREFIX)

    def _wnids(self, nodes: Iterable[int]) -> tuple[str, ...]:
        names = self.graph.node_wnids
        return tuple(names[int(i)] for i in nodes)

    def __repr__(self) -> str:
        return f"Hierarchy(space={self.space.id!r}, classes={len(self)}, nodes={self.num_nodes})"


def _check_range(low: int, high: int, size: int) -> None:
    bad = low if low < 0 else high
    if low < 0 or high >= size:
        raise IndexError(f"class index {bad} is outside [0, {size})")


@lru_cache(maxsize=None)
def _standard(name: str) -> Hierarchy:
    return Hierarchy(standard_space(name))

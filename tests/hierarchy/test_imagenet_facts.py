"""The published ImageNet / WordNet 3.0 facts (/work/shared/IMAGENET_FACTS.md), on the shipped data."""
from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from imagenet_stream.hierarchy import Hierarchy, load_graph

ENTITY = "n00001740"
DOG, CANINE, DOMESTIC_ANIMAL, CAT = "n02084071", "n02083346", "n01317541", "n02121808"
TEDDY = "n04399382"


@pytest.fixture(scope="module")
def in21k() -> Hierarchy:
    return Hierarchy.imagenet21k()


@pytest.fixture(scope="module")
def in1k() -> Hierarchy:
    return Hierarchy.imagenet1k()


def _num_paths() -> np.ndarray:
    """Number of distinct paths from each node up to entity (parents processed before children)."""
    g = load_graph()
    paths = np.zeros(g.num_nodes, dtype=np.int64)
    paths[g.root] = 1
    for node in np.argsort(g.max_depth, kind="stable"):
        if node != g.root:
            paths[node] = paths[g.parents(node)].sum()
    return paths


@cache
def _ancestor_union(h: Hierarchy) -> frozenset[int]:
    out: set[int] = set()
    for node in h.class_nodes:
        out.update(h.graph.ancestors(int(node)).tolist())
    return frozenset(out)


def test_in21k_counts(in21k: Hierarchy) -> None:
    g = in21k.graph
    nodes = in21k.class_nodes
    assert len(in21k) == 21841
    assert int((np.diff(g.parent_ptr)[nodes] > 1).sum()) == 453
    paths = _num_paths()[nodes]
    assert int((paths > 1).sum()) == 5744
    assert int(paths.max()) == 10
    assert int(g.depth[nodes].max()) == 18
    assert int(g.max_depth[nodes].max()) == 19


def test_in21k_ancestors(in21k: Hierarchy) -> None:
    ancestors = _ancestor_union(in21k)
    classes = set(in21k.class_nodes.tolist())
    assert len(ancestors) == 6293
    assert len(ancestors - classes) == 1705
    assert len(ancestors & classes) == 4588
    assert len(classes - ancestors) == 17253  # leaves


def test_in1k_counts(in1k: Hierarchy) -> None:
    g = in1k.graph
    assert len(in1k) == 1000
    assert int((np.diff(g.parent_ptr)[in1k.class_nodes] > 1).sum()) == 38
    ancestors = _ancestor_union(in1k)
    assert len(ancestors) == 860
    assert not ancestors & set(in1k.class_nodes.tolist())  # all 1,000 are leaves


def test_graph_is_exactly_the_closure(in21k: Hierarchy, in1k: Hierarchy) -> None:
    goog = Hierarchy.for_space("in21k-goog")  # fall11 + picture + bleacher: every named space's classes
    wanted = set(in21k.class_nodes.tolist()) | set(in1k.class_nodes.tolist()) | set(goog.class_nodes.tolist())
    wanted |= _ancestor_union(in21k) | _ancestor_union(in1k) | _ancestor_union(goog)
    assert wanted == set(range(in21k.num_nodes))
    assert list(in21k.node_wnids) == sorted(in21k.node_wnids)


def test_dog(in21k: Hierarchy) -> None:
    assert in21k.name(DOG) == "dog, domestic dog, Canis familiaris"
    assert in21k.parents(DOG) == (DOMESTIC_ANIMAL, CANINE)
    assert in21k.name(CANINE) == "canine, canid"
    assert in21k.name(DOMESTIC_ANIMAL) == "domestic animal, domesticated animal"
    assert in21k.name(CAT) == "domestic cat, house cat, Felis domesticus, Felis catus"
    assert in21k.name("n01440764") == "tench, Tinca tinca"
    assert "n02084442" not in in21k and not in21k.in_graph("n02084442")


def test_teddy_bear(in21k: Hierarchy, in1k: Hierarchy) -> None:
    assert in21k.in_graph(TEDDY) and in21k.name(TEDDY) == "teddy, teddy bear"
    assert TEDDY in in1k and in1k.index(TEDDY) == 850
    assert TEDDY not in in21k
    assert in21k.is_a(TEDDY, ENTITY)


def test_entity_only_root_and_reached_by_all(in21k: Hierarchy) -> None:
    g = in21k.graph
    counts = np.diff(g.parent_ptr)
    assert [g.node_wnids[i] for i in np.flatnonzero(counts == 0)] == [ENTITY]
    assert in21k.root == ENTITY and in21k.depth(ENTITY) == 0 and in21k.max_depth(ENTITY) == 0
    assert bool((g.depth[np.arange(g.num_nodes) != g.root] >= 1).all())
    assert all(in21k.tree_path(w)[-1] == ENTITY for w in in21k.node_wnids)
    assert all(ENTITY in in21k.ancestors(w) for w in in21k.classes[::97])


@pytest.mark.parametrize("wnid, name, parent", [
    ("n09450163", "sun, Sun", "n09444100"),                                      # star
    ("n10994097", "Genet, Edmund Charles Edouard Genet, Citizen Genet", "n10013927"),  # diplomat
    ("n11196627", "Munro, H. H. Munro, Hector Hugh Munro, Saki", "n10794014"),  # writer
    ("n11318824", "Stoker, Bram Stoker, Abraham Stoker", "n10794014"),
])
def test_instance_hypernyms_resolved(in21k: Hierarchy, wnid: str, name: str, parent: str) -> None:
    assert wnid in in21k
    assert in21k.name(wnid) == name
    assert in21k.parents(wnid) == (parent,)
    assert in21k.is_a(wnid, ENTITY)

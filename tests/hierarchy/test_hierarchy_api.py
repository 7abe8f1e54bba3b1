"""Hierarchy API behaviour: lookups, errors, is_a / lca / subtree, tree projection, spaces."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenet_stream.errors import SourceError
from imagenet_stream.hierarchy import ClassSpace, Hierarchy, load_graph, standard_space

ENTITY = "n00001740"
DOG, CAT, CANINE, CARNIVORE = "n02084071", "n02121808", "n02083346", "n02075296"
DOMESTIC_ANIMAL, FELINE = "n01317541", "n02120997"
ELEPHANT, PACHYDERM, PROBOSCIDEAN = "n02503517", "n02453108", "n02503127"
TEDDY = "n04399382"

IN1K = Hierarchy.imagenet1k()
IN21K = Hierarchy.imagenet21k()
NODES = st.sampled_from(IN21K.node_wnids)


def test_constructors_and_sharing() -> None:
    assert IN1K.classes == standard_space("in1k").wnids and len(IN1K) == 1000
    assert IN21K.classes == standard_space("in21k").wnids and len(IN21K) == 21841
    in22k = Hierarchy.imagenet22k()
    assert len(in22k) == 21842 and in22k.classes[:1000] == IN1K.classes
    assert Hierarchy.imagenet1k() is IN1K
    assert Hierarchy.for_space("in21k") is IN21K and Hierarchy.for_space(standard_space("in22k")) is in22k
    assert IN1K.graph is IN21K.graph is load_graph()  # one graph for all
    assert IN1K.num_nodes == IN21K.num_nodes == len(IN21K.node_wnids)


def test_class_vs_node_membership() -> None:
    assert DOG in IN21K and DOG not in IN1K and IN1K.in_graph(DOG)
    assert ENTITY not in IN21K and IN21K.in_graph(ENTITY)
    assert IN1K.index("n01440764") == 0 and IN1K.index(TEDDY) == 850
    assert IN21K.index(IN21K.classes[12345]) == 12345
    assert IN1K.node_wnids[IN1K.node_index(DOG)] == DOG
    assert [IN1K.node_wnids[n] for n in IN1K.class_nodes[:3]] == list(IN1K.classes[:3])
    assert IN1K.node_classes[IN1K.node_index(TEDDY)] == 850 and IN1K.node_classes[IN1K.node_index(DOG)] == -1


@pytest.mark.parametrize("call", [
    lambda h: h.name("n09999999"), lambda h: h.parents("n09999999"), lambda h: h.ancestors("n09999999"),
    lambda h: h.depth("n09999999"), lambda h: h.max_depth("n09999999"), lambda h: h.tree_parent("n09999999"),
    lambda h: h.tree_path("n09999999"), lambda h: h.subtree("n09999999"), lambda h: h.node_index("n09999999"),
    lambda h: h.index("n09999999"), lambda h: h.is_a(DOG, "n09999999"), lambda h: h.lca("n09999999", DOG),
])
def test_unknown_wnid_keyerror_names_it(call) -> None:
    with pytest.raises(KeyError, match="n09999999"):
        call(IN1K)


def test_class_query_on_non_class_node() -> None:
    with pytest.raises(KeyError, match=DOG):
        IN1K.index(DOG)
    assert IN1K.name(DOG).startswith("dog")  # graph queries work on any node


def test_parents_ancestors_depths() -> None:
    assert IN1K.parents(DOG) == (DOMESTIC_ANIMAL, CANINE)
    assert IN1K.parents(ENTITY) == ()
    anc = IN1K.ancestors(DOG)
    assert list(anc) == sorted(anc) and DOG not in anc
    assert {CANINE, CARNIVORE, DOMESTIC_ANIMAL, ENTITY} <= set(anc)
    assert IN1K.ancestors(ENTITY) == ()
    assert IN1K.depth(DOG) == 8 and IN1K.max_depth(DOG) == 13  # via domestic animal / via canine
    assert IN1K.depth("n00001930") == 1  # physical entity


def test_is_a_dogs_and_cats() -> None:
    beagle, tabby = "n02088364", "n02123045"
    assert IN1K.is_a(beagle, DOG) and IN1K.is_a(beagle, CARNIVORE) and IN1K.is_a(beagle, ENTITY)
    assert IN1K.is_a(tabby, CAT) and IN1K.is_a(tabby, FELINE)
    assert not IN1K.is_a(beagle, CAT) and not IN1K.is_a(tabby, DOG)
    assert IN1K.is_a(DOG, DOG) and not IN1K.is_a(CARNIVORE, DOG)
    assert IN1K.is_a(DOG, DOMESTIC_ANIMAL)  # through the second parent


def test_lca_dogs_and_cats() -> None:
    assert IN1K.lca(DOG, CAT) == CARNIVORE
    assert IN1K.lca("n02088364", "n02123045") == CARNIVORE  # beagle, tabby
    assert IN1K.lca("n02088364", DOG) == DOG  # is_a(a, b) -> b
    assert IN1K.lca(DOG, DOG) == DOG
    assert IN1K.lca(DOG, "n01440764") == "n01471682"  # vertebrate (tench)
    assert IN1K.lca(DOG, TEDDY) == "n00003553"  # whole, unit (living thing vs artifact)


@settings(max_examples=150, deadline=None)
@given(NODES, NODES)
def test_lca_properties(a: str, b: str) -> None:
    c = IN21K.lca(a, b)
    assert c == IN21K.lca(b, a)
    assert IN21K.is_a(a, c) and IN21K.is_a(b, c)
    common = (set(IN21K.ancestors(a)) | {a}) & (set(IN21K.ancestors(b)) | {b})
    best = max(IN21K.max_depth(x) for x in common)
    assert c == min(x for x in common if IN21K.max_depth(x) == best)
    assert not any(x != c and IN21K.is_a(x, c) for x in common)  # nothing common lies below it


def test_subtree_dogs_and_cats() -> None:
    dogs = IN1K.subtree(DOG)
    assert len(dogs) == 118 and dogs == tuple(sorted(dogs, key=IN1K.index))
    assert all(IN1K.is_a(w, DOG) for w in dogs)
    assert [IN1K.index(w) for w in dogs] == list(range(151, 269))  # the ILSVRC dog block
    assert IN1K.subtree(CAT) == ("n02123045", "n02123159", "n02123394", "n02123597", "n02124075")
    assert IN1K.subtree("n02123045") == ("n02123045",)  # a class is in its own subtree
    assert IN1K.subtree(ENTITY) == IN1K.classes
    assert DOG in IN21K.subtree(DOG) and DOG not in IN1K.subtree(DOG)  # class-space dependent
    assert "n01322604" in IN21K.subtree(DOG)  # pup, puppy: a dog by a second parent, sorted before dog
    assert len(IN21K.subtree(DOG)) == 190
    assert TEDDY not in IN21K.subtree(ENTITY) and len(IN21K.subtree(ENTITY)) == 21841
    assert IN1K.subtree_indices(CAT).tolist() == [281, 282, 283, 284, 285]


def test_subtree_matches_is_a() -> None:
    for node in (CARNIVORE, "n04341686", "n00021939"):  # carnivore, structure, artifact
        expected = tuple(w for w in IN1K.classes if IN1K.is_a(w, node))
        assert IN1K.subtree(node) == expected


def test_tree_parent_rule_examples() -> None:
    assert IN1K.tree_parent(DOG) == CANINE  # max_depth 12 beats domestic animal's 7
    assert IN1K.max_depth(PACHYDERM) == IN1K.max_depth(PROBOSCIDEAN)
    assert IN1K.parents(ELEPHANT) == (PACHYDERM, PROBOSCIDEAN)
    assert IN1K.tree_parent(ELEPHANT) == PACHYDERM  # tie: smallest wnid
    assert IN1K.tree_parent(ENTITY) is None
    assert IN1K.tree_path(ENTITY) == (ENTITY,)
    path = IN1K.tree_path(DOG)
    assert path[:3] == (DOG, CANINE, CARNIVORE) and path[-1] == ENTITY
    assert len(path) == IN1K.max_depth(DOG) + 1


def test_tree_parent_rule_everywhere() -> None:
    g = load_graph()
    for node in range(g.num_nodes):
        if node == g.root:
            assert g.tree_parent[node] == -1
            continue
        parents = g.parents(node)
        best = g.max_depth[parents].max()
        assert best == g.max_depth[node] - 1
        assert g.tree_parent[node] == parents[g.max_depth[parents] == best].min()


def test_arrays_are_read_only() -> None:
    with pytest.raises(ValueError):
        IN1K.graph.tree_parent[0] = 5
    with pytest.raises(ValueError):
        IN1K.class_nodes[0] = 5


def test_custom_space(tmp_path: Path) -> None:
    path = tmp_path / "pets.txt"
    path.write_text(f"{CAT}\n{DOG}\n# tabby\nn02123045\n", encoding="utf-8")
    h = Hierarchy.for_space(str(path))
    assert h.space.id == "custom:pets" and h.classes == (CAT, DOG, "n02123045")
    assert h.subtree(CARNIVORE) == (CAT, DOG, "n02123045") and h.subtree(CAT) == (CAT, "n02123045")
    assert np.array_equal(h.subtree_indices(CAT), [0, 2])
    with pytest.raises(SourceError, match="n09999999"):
        Hierarchy(ClassSpace.custom("x", [DOG, "n09999999"]))

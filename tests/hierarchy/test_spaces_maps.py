"""Class spaces derived from a hierarchy (restrict, restrict_subtree) and index maps between spaces."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenet_stream.errors import SourceError
from imagenet_stream.hierarchy import Hierarchy

DOG, CAT, CANINE, CARNIVORE, TENCH, TEDDY = ("n02084071", "n02121808", "n02083346", "n02075296",
                                             "n01440764", "n04399382")
PUPPY = "n01322604"  # an in21k class under dog with no in1k class under it
IN1K, IN21K, IN22K = Hierarchy.imagenet1k(), Hierarchy.imagenet21k(), Hierarchy.imagenet22k()


def test_in1k_to_in21k_and_back() -> None:
    tench21k = IN21K.index(TENCH)
    assert IN1K.remap([0, 850], to=IN21K) == [tench21k, -1]
    assert IN1K.remap(0, to=IN21K) == tench21k
    mapped = IN1K.remap(np.array([850, 0]), to=IN21K)
    assert isinstance(mapped, np.ndarray) and mapped.tolist() == [-1, tench21k]
    tensor = IN1K.remap(torch.tensor([[0, 850]]), to=IN21K)
    assert isinstance(tensor, torch.Tensor) and tensor.tolist() == [[tench21k, -1]]
    assert IN21K.remap([tench21k, IN21K.index(DOG)], to=IN1K) == [0, -1]  # dog is no in1k class
    assert IN1K.remap(np.arange(1000), to=IN22K).tolist() == list(range(1000))  # in22k starts with in1k
    full = IN1K.class_map(IN21K)
    assert (full < 0).sum() == 1 and full[850] == -1


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 21840), min_size=1, max_size=20))
def test_remap_roundtrip(indices: list[int]) -> None:
    there = IN21K.remap(indices, to=IN22K)
    assert min(there) >= 0 and IN22K.remap(there, to=IN21K) == indices
    assert [IN22K.classes[i] for i in there] == [IN21K.classes[i] for i in indices]


def test_remap_errors() -> None:
    with pytest.raises(IndexError, match="1000"):
        IN1K.remap([1000], to=IN21K)
    with pytest.raises(IndexError, match="-3"):
        IN1K.remap(torch.tensor([-3]), to=IN21K)
    with pytest.raises(IndexError, match="float"):
        IN1K.remap(np.array([1.5]), to=IN21K)


def test_restrict_keeps_given_order() -> None:
    sub = IN21K.restrict([CAT, DOG, CANINE], name="three")
    assert sub.space.id == "custom:three" and sub.classes == (CAT, DOG, CANINE)
    assert sub.remap([0, 1, 2], to=IN21K) == [IN21K.index(CAT), IN21K.index(DOG), IN21K.index(CANINE)]
    assert IN21K.remap([IN21K.index(DOG), IN21K.index(CARNIVORE)], to=sub) == [1, -1]
    assert sub.distance(DOG, CAT) == 3 and sub.tree_parent(DOG) == CANINE  # graph queries unchanged
    with pytest.raises(SourceError, match=TEDDY):
        IN21K.restrict([DOG, TEDDY])
    with pytest.raises(SourceError, match="duplicate"):
        IN21K.restrict([DOG, DOG])
    with pytest.raises(SourceError, match="no classes"):
        IN21K.restrict([])


def test_restrict_subtree() -> None:
    dogs = IN1K.restrict_subtree(DOG)
    assert len(dogs) == 118 and dogs.classes == IN1K.subtree(DOG)
    assert list(dogs.classes) == sorted(dogs.classes)  # in1k order is sorted
    assert dogs.space.id == f"custom:in1k-{DOG}"
    carnivores = IN21K.restrict_subtree(CARNIVORE)
    assert carnivores.classes[0] == sorted(carnivores.classes)[0] and CARNIVORE in carnivores
    assert not IN1K.subtree(PUPPY)
    with pytest.raises(SourceError, match=PUPPY):
        IN1K.restrict_subtree(PUPPY)
    with pytest.raises(KeyError, match="n99999999"):
        IN1K.restrict_subtree("n99999999")


def test_distance_and_tree_lca() -> None:
    assert IN21K.distance(DOG, DOG) == 0
    assert IN21K.tree_lca(DOG, CAT) == CARNIVORE and IN21K.distance(DOG, CAT) == 14 - 11
    assert IN21K.distance(DOG, CANINE) == 1 and IN21K.distance(CANINE, DOG) == 1
    # tree LCA vs DAG LCA: dog's second parent (domestic animal) is off its tree path
    assert IN21K.lca(DOG, "n01317541") == "n01317541" and IN21K.tree_lca(DOG, "n01317541") == "n00015388"
    assert IN21K.distance(DOG, "n01317541") == 13 - IN21K.max_depth("n00015388")


def test_for_classes_reuses_standard_spaces() -> None:
    assert Hierarchy.for_classes(list(IN21K.classes)) is IN21K
    assert Hierarchy.for_classes(IN1K.classes) is IN1K
    demo = Hierarchy.for_classes([DOG, CAT], name="demo")
    assert demo.space.id == "custom:demo" and demo.classes == (DOG, CAT)
    with pytest.raises(SourceError, match="n99999999"):
        Hierarchy.for_classes([DOG, "n99999999"])

"""HierarchicalTargets: hand-computed values, the issue's dog acceptance, brute-force comparisons."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenet_stream.errors import ConfigError
from imagenet_stream.hierarchy import ClassSpace, HierarchicalTargets, Hierarchy

DOG, CAT, CANINE, DOMESTIC_ANIMAL, CARNIVORE = "n02084071", "n02121808", "n02083346", "n01317541", "n02075296"
CHIHUAHUA, TOY_DOG, TABBY = "n02085620", "n02085374", "n02123045"

IN21K = Hierarchy.imagenet21k()
IN1K = Hierarchy.imagenet1k()
T21K = HierarchicalTargets(IN21K)
T1K = HierarchicalTargets(IN1K)
# a hand-checkable space: tree depths dog 13, cat 14, Chihuahua 15, tabby 15, toy dog 14, carnivore 11
SMALL = Hierarchy(ClassSpace.custom("pets", [DOG, CAT, CHIHUAHUA, TABBY, TOY_DOG, CARNIVORE]))
TS = HierarchicalTargets(SMALL)


def test_small_space_by_hand() -> None:
    assert TS.class_depth.tolist() == [13, 14, 15, 15, 14, 11]
    # Chihuahua: toy dog -> dog -> canine -> carnivore; tabby: cat -> ... feline -> carnivore
    assert TS.distances(torch.tensor([2])).tolist() == [[2, 4, 0, 4, 1, 4]]
    assert TS.distances(torch.tensor([0])).tolist() == [[0, 3, 2, 4, 1, 2]]
    assert TS.d_max == 4
    assert TS.multi_hot(torch.tensor([2])).tolist() == [[1, 0, 1, 0, 1, 1]]
    assert TS.multi_hot(torch.tensor([3])).tolist() == [[0, 1, 0, 1, 0, 1]]
    expected = torch.softmax(-10.0 * torch.tensor([2.0, 4, 0, 4, 1, 4]) / 4, 0)
    assert torch.allclose(TS.soft_labels(torch.tensor([2]), beta=10.0)[0], expected, atol=1e-6)
    # restricted tree: carnivore (level 0) > dog, cat (1) > toy dog, tabby (2) > Chihuahua (3)
    assert [c.tolist() for c in TS.level_classes] == [[5], [0, 1], [3, 4], [2]]
    assert TS.levels(torch.tensor([2, 3, 5])).tolist() == [[0, 0, 1, 0], [0, 1, 0, -1], [0, -1, -1, -1]]
    assert TS.level_weights.tolist() == pytest.approx([1.0, 6 / 5, 2.0, 6.0])
    assert SMALL.distance(CHIHUAHUA, TABBY) == 4 and SMALL.tree_lca(CHIHUAHUA, TABBY) == CARNIVORE


def test_dog_acceptance() -> None:
    dog, cat = IN21K.index(DOG), IN21K.index(CAT)
    row = T21K.multi_hot(torch.tensor([dog]))[0]
    marked = {IN21K.classes[i] for i in torch.nonzero(row).flatten().tolist()}
    assert marked == {DOG} | {a for a in IN21K.ancestors(DOG) if a in IN21K}
    assert {CANINE, CARNIVORE, DOMESTIC_ANIMAL} <= marked  # both parent paths
    assert CAT not in marked and row.sum() == 10
    soft = T21K.soft_labels(torch.tensor([dog]), beta=10.0)[0]
    assert float(soft.sum()) == pytest.approx(1.0, abs=1e-5)
    assert int(soft.argmax()) == dog
    assert soft[IN21K.index(TOY_DOG)] > soft[cat] and soft[IN21K.index(CHIHUAHUA)] > soft[cat]
    levels = T21K.levels(torch.tensor([dog]))[0]
    chain = [w for w in reversed(IN21K.tree_path(DOG)) if w in IN21K]  # organism ... canine, dog
    assert (levels >= 0).sum() == len(chain) == 9
    assert levels[:9].ge(0).all() and levels[9:].eq(-1).all()
    decoded = [IN21K.classes[int(T21K.level_classes[lv][int(levels[lv])])] for lv in range(9)]
    assert decoded == chain


def test_brute_force_21k_random(ref) -> None:
    rng = random.Random(7)
    idx = torch.tensor(rng.sample(range(len(IN21K)), 6))
    multi, dist, levels = T21K.multi_hot(idx), T21K.distances(idx), T21K.levels(idx)
    soft = T21K.soft_labels(idx, beta=5.0)
    probe = rng.sample(range(len(IN21K)), 150)
    for b, t in enumerate(idx.tolist()):
        assert set(torch.nonzero(multi[b]).flatten().tolist()) == ref.ref_multi_hot(IN21K, t)
        assert [int(dist[b, a]) for a in probe] == [ref.ref_distance(IN21K, a, t) for a in probe]
        assert int(dist[b, t]) == 0
        chain = ref.ref_chain(IN21K, t)
        decoded = [int(T21K.level_classes[lv][int(x)]) for lv, x in enumerate(levels[b]) if x >= 0]
        assert decoded == chain
        scores = torch.tensor([math.exp(-5.0 * int(d) / T21K.d_max) for d in dist[b]], dtype=torch.float64)
        assert torch.allclose(soft[b].double(), scores / scores.sum(), rtol=1e-4, atol=1e-9)


def test_brute_force_full_rows_1k(ref) -> None:
    idx = torch.tensor([0, 850, 207, 999])
    soft = T1K.soft_labels(idx, beta=10.0)
    for b, t in enumerate(idx.tolist()):
        expected = torch.tensor(ref.ref_soft_labels(IN1K, t, 10.0, T1K.d_max), dtype=torch.float64)
        assert torch.allclose(soft[b].double(), expected, rtol=1e-4, atol=1e-10)
    assert T1K.multi_hot(idx).sum(1).tolist() == [1, 1, 1, 1]  # all 1,000 are leaves with no in1k ancestor
    assert T1K.num_levels == 1 and T1K.levels(idx).tolist() == [[0], [850], [207], [999]]


def test_levels_layout_matches_reference(ref) -> None:
    carnivores = IN21K.restrict_subtree(CARNIVORE)
    t = HierarchicalTargets(carnivores)
    members, rows = ref.ref_levels(carnivores)
    assert [c.tolist() for c in t.level_classes] == members
    assert t.levels(torch.arange(len(carnivores))).tolist() == rows
    assert sum(t.level_sizes) == len(carnivores)
    logits = torch.randn(3, len(carnivores))
    for level, part in enumerate(t.level_logits(logits)):
        assert torch.equal(part, logits[:, members[level]])


def test_d_max_is_max_over_pairs(ref) -> None:
    space = IN21K.restrict_subtree("n02121620")  # cat family: a small space
    t = HierarchicalTargets(space)
    all_d = t.distances(torch.arange(len(space)))
    assert int(all_d.max()) == t.d_max
    assert torch.equal(all_d, all_d.T)
    assert all_d.diagonal().eq(0).all()
    assert t.d_max == max(ref.ref_distance(space, a, b) for a in range(len(space)) for b in range(len(space)))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, len(IN21K) - 1), min_size=1, max_size=8),
       st.lists(st.integers(0, len(IN21K) - 1), min_size=1, max_size=8))
def test_distance_properties(a: list[int], b: list[int]) -> None:
    ta, tb = torch.tensor(a), torch.tensor(b)
    pair = T21K.distance(ta[:, None], tb[None, :])
    assert torch.equal(pair, T21K.distance(tb[None, :], ta[:, None]))
    assert torch.equal(pair, T21K.distances(ta)[:, tb].long())
    assert T21K.distance(ta, ta).eq(0).all()
    assert int(pair[0, 0]) == IN21K.distance(IN21K.classes[a[0]], IN21K.classes[b[0]])
    assert 0 <= int(pair.min()) and int(pair.max()) <= T21K.d_max


def test_soft_labels_beta_zero_is_uniform_and_rows_sum_to_one() -> None:
    idx = torch.randint(0, len(IN21K), (16,), generator=torch.Generator().manual_seed(3))
    assert torch.allclose(T21K.soft_labels(idx, beta=0.0), torch.full((16, len(IN21K)), 1 / len(IN21K)))
    soft = T21K.soft_labels(idx, beta=30.0)
    assert torch.allclose(soft.sum(1), torch.ones(16), atol=1e-5)
    assert torch.equal(soft.argmax(1), idx)


def test_module_buffers_and_devices() -> None:
    names = {n for n, _ in TS.named_buffers()}
    assert {"paths", "ancestors", "levels_table", "path_lo", "path_hi"} <= names
    assert TS.to("cpu") is TS and TS.state_dict() == {}  # tables are rebuilt, never checkpointed
    assert T21K.table_bytes() < 16_000_000
    assert T21K.paths.dtype == torch.int32 and T21K.ancestors.dtype == torch.int32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu() -> None:
    cuda = HierarchicalTargets(IN21K).to("cuda")
    idx = torch.randint(0, len(IN21K), (64,))
    for name in ("multi_hot", "soft_labels", "levels", "distances"):
        got = getattr(cuda, name)(idx.cuda())
        assert got.device.type == "cuda"
        assert torch.allclose(got.cpu().double(), getattr(T21K, name)(idx).double(), atol=1e-6), name


def test_invalid_inputs() -> None:
    with pytest.raises(ConfigError, match="21841"):
        T21K.multi_hot(torch.tensor([21841]))
    with pytest.raises(ConfigError, match="-1"):
        T21K.levels(torch.tensor([-1]))
    with pytest.raises(ConfigError, match="float"):
        T21K.soft_labels(torch.tensor([1.0]))
    with pytest.raises(ConfigError, match="1-D"):
        T21K.multi_hot(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ConfigError, match="beta"):
        T21K.soft_labels(torch.tensor([1]), beta=-1.0)
    with pytest.raises(ConfigError, match="Hierarchy"):
        HierarchicalTargets(IN21K.space)  # type: ignore[arg-type]
    assert T21K.multi_hot(np.array([5])).shape == (1, len(IN21K))  # array-likes are accepted

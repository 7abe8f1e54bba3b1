"""Metrics: top-k accuracy (ILSVRC protocol), mistake severity, hierarchical distance@k, the tracker."""
from __future__ import annotations

import math

import pytest
import torch

from imagenet_stream.errors import ConfigError
from imagenet_stream.hierarchy import HierarchicalTargets, Hierarchy, metrics

DOG, CAT, CHIHUAHUA, TOY_DOG, PUG = "n02084071", "n02121808", "n02085620", "n02085374", "n02110958"
IN21K = Hierarchy.imagenet21k()
IN1K = Hierarchy.imagenet1k()
T21K = HierarchicalTargets(IN21K)


def _one_hot_logits(classes: list[int], num: int) -> torch.Tensor:
    logits = torch.zeros(len(classes), num)
    logits[torch.arange(len(classes)), torch.tensor(classes)] = 10.0
    return logits


def test_perfect_logits() -> None:
    idx = torch.randint(0, len(IN21K), (20,), generator=torch.Generator().manual_seed(0))
    logits = torch.randn(20, len(IN21K), generator=torch.Generator().manual_seed(1))
    logits[torch.arange(20), idx] = 100.0
    assert metrics.topk_accuracy(logits, idx, ks=(1, 5)) == {1: 1.0, 5: 1.0}
    assert math.isnan(metrics.mistake_severity(logits, idx, T21K))
    assert metrics.hierarchical_distance_at_k(logits, idx, T21K, k=1) == 0.0


def test_sibling_breed_is_a_milder_mistake_than_a_cat() -> None:
    chihuahua, pug, cat = IN21K.index(CHIHUAHUA), IN21K.index(PUG), IN21K.index(CAT)
    target = torch.tensor([chihuahua])
    sibling = metrics.mistake_severity(_one_hot_logits([pug], len(IN21K)), target, T21K)
    feline = metrics.mistake_severity(_one_hot_logits([cat], len(IN21K)), target, T21K)
    assert sibling == IN21K.distance(PUG, CHIHUAHUA) and feline == IN21K.distance(CAT, CHIHUAHUA) == 4
    assert sibling < feline


def test_against_brute_force(ref) -> None:
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(12, len(IN1K), generator=gen)
    idx = torch.randint(0, len(IN1K), (12,), generator=gen)
    logits[:4, :] = logits[:4, :] - 50
    logits[torch.arange(4), idx[:4]] = 50.0  # four right, the rest almost surely wrong
    targets = HierarchicalTargets(IN1K)
    ranked = [sorted(range(len(IN1K)), key=lambda c: -float(logits[b, c]))[:5] for b in range(12)]
    acc = metrics.topk_accuracy(logits, idx, ks=(1, 3, 5))
    for k in (1, 3, 5):
        assert acc[k] == sum(int(idx[b]) in ranked[b][:k] for b in range(12)) / 12
    mistakes = [ref.ref_distance(IN1K, ranked[b][0], int(idx[b]))
                for b in range(12) if ranked[b][0] != idx[b]]
    assert metrics.mistake_severity(logits, idx, targets) == pytest.approx(sum(mistakes) / len(mistakes))
    hd = [ref.ref_distance(IN1K, c, int(idx[b])) for b in range(12) for c in ranked[b]]
    assert metrics.hierarchical_distance_at_k(logits, idx, targets, k=5) == pytest.approx(sum(hd) / len(hd))


def test_tracker_equals_whole_batch() -> None:
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(30, len(IN21K), generator=gen)
    idx = torch.randint(0, len(IN21K), (30,), generator=gen)
    logits[torch.arange(10), idx[:10]] = 20.0
    tracker = metrics.MetricTracker(T21K, ks=(1, 5), k=5)
    for part in range(3):
        tracker.update(logits[part * 10:(part + 1) * 10], idx[part * 10:(part + 1) * 10])
    got = tracker.compute()
    assert set(got) == {"top1", "top5", "mistake_severity", "hdist@5"}
    assert got["top1"] == pytest.approx(metrics.topk_accuracy(logits, idx)[1])
    assert got["mistake_severity"] == pytest.approx(metrics.mistake_severity(logits, idx, T21K))
    assert got["hdist@5"] == pytest.approx(metrics.hierarchical_distance_at_k(logits, idx, T21K, k=5))
    tracker.reset()
    with pytest.raises(ConfigError):
        tracker.compute()


def test_remap_logits_21k_model_on_1k() -> None:
    logits = torch.randn(2, len(IN21K), generator=torch.Generator().manual_seed(4))
    on1k = metrics.remap_logits(logits, IN21K, IN1K)
    assert on1k.shape == (2, 1000)
    assert torch.equal(on1k[:, 0], logits[:, IN21K.index("n01440764")])
    assert on1k[:, 850].eq(-math.inf).all()  # teddy bear is not a fall11 class
    with pytest.raises(ConfigError):
        metrics.remap_logits(logits[:, :10], IN21K, IN1K)


def test_invalid_arguments() -> None:
    logits, idx = torch.zeros(2, len(IN21K)), torch.tensor([0, 1])
    with pytest.raises(ConfigError, match="k must"):
        metrics.topk_accuracy(logits, idx, ks=(0,))
    with pytest.raises(ConfigError, match="k must"):
        metrics.hierarchical_distance_at_k(logits, idx, T21K, k=len(IN21K) + 1)
    with pytest.raises(ConfigError, match="logits"):
        metrics.topk_accuracy(logits, torch.tensor([0]))
    with pytest.raises(ConfigError, match=r"\[B, 21841\]"):
        metrics.mistake_severity(torch.zeros(2, 5), idx, T21K)

"""Hierarchy-aware losses: hand values, brute-force references, gradients, training on a toy problem."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from imagenet_stream.errors import ConfigError
from imagenet_stream.hierarchy import ClassSpace, HierarchicalTargets, Hierarchy, losses

DOG, CAT, CHIHUAHUA, TABBY, TOY_DOG, CARNIVORE = ("n02084071", "n02121808", "n02085620", "n02123045",
                                                  "n02085374", "n02075296")
SMALL = Hierarchy(ClassSpace.custom("pets", [DOG, CAT, CHIHUAHUA, TABBY, TOY_DOG, CARNIVORE]))
TS = HierarchicalTargets(SMALL)
IN21K = Hierarchy.imagenet21k()
T21K = HierarchicalTargets(IN21K)
FELIDS = Hierarchy.imagenet21k().restrict_subtree("n02120997")  # feline: ~ a hundred classes
TF = HierarchicalTargets(FELIDS)


def test_hxe_by_hand() -> None:
    # uniform logits, target Chihuahua: masses self 1/6, Chihuahua 1/6, toy dog 2/6, dog 3/6, canine 3/6,
    # carnivore and above 1 -> terms log 2 (depth 15), log 1.5 (14), 0, log 2 (canine, depth 12), 0, ...
    logits, idx = torch.zeros(1, 6), torch.tensor([2])
    raw = losses.HierarchicalCrossEntropy(TS, alpha=0.3, normalize=False)(logits, idx)
    expected = math.log(2) * math.exp(-0.3 * 15) + math.log(1.5) * math.exp(-0.3 * 14) \
        + math.log(2) * math.exp(-0.3 * 12)
    assert float(raw) == pytest.approx(expected, rel=1e-5)
    # normalizer: nodes at depths 0..11 (entity to carnivore), 12..15 on the dog and on the cat side,
    # plus the own-mass leaves of dog (14), cat (15), toy dog (15) and carnivore (12)
    depths = list(range(12)) + [12, 13, 14, 15] * 2 + [14, 15, 15, 12]
    loss = losses.HierarchicalCrossEntropy(TS, alpha=0.3)
    assert loss.norm == pytest.approx(sum(math.exp(-0.3 * d) for d in depths))
    assert float(loss(logits, idx)) == pytest.approx(expected / loss.norm, rel=1e-5)
    # an internal class as target: predicting its descendant is not free
    own = torch.tensor([[0.0, 0, 5, 0, 0, 0]])  # mass on Chihuahua, target dog
    assert float(losses.HierarchicalCrossEntropy(TS, alpha=0.0, normalize=False)(own, torch.tensor([0]))) \
        == pytest.approx(float(F.cross_entropy(own, torch.tensor([0]))), rel=1e-6)


def test_hxe_alpha_zero_is_cross_entropy() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(32, len(IN21K), generator=gen) * 3
    idx = torch.randint(0, len(IN21K), (32,), generator=gen)
    hxe = losses.HierarchicalCrossEntropy(T21K, alpha=0.0, normalize=False)(logits, idx)
    assert float(hxe) == pytest.approx(float(F.cross_entropy(logits, idx)), rel=1e-5)


def test_hxe_matches_brute_force(ref) -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(5, len(FELIDS), generator=gen) * 2
    idx = torch.randint(0, len(FELIDS), (5,), generator=gen)
    idx[0] = FELIDS.index(CAT)  # a class with classes under it
    got = losses.HierarchicalCrossEntropy(TF, alpha=0.4, normalize=False)(logits, idx)
    expected = np.mean([ref.ref_hxe(FELIDS, logits[b].tolist(), int(idx[b]), 0.4) for b in range(5)])
    assert float(got) == pytest.approx(expected, rel=1e-4)


def test_semantic_softmax_matches_reference_loop() -> None:
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(6, len(FELIDS), generator=gen)
    idx = torch.randint(0, len(FELIDS), (6,), generator=gen)
    got = losses.SemanticSoftmaxLoss(TF, label_smoothing=0.2)(logits, idx)
    levels = TF.levels(idx)
    total = 0.0
    for lv, classes in enumerate(TF.level_classes):
        log_p = torch.log_softmax(logits[:, classes], 1)
        n = len(classes)
        level_sum = 0.0
        for b in range(6):
            if levels[b, lv] < 0:
                continue
            target = torch.full((n,), 0.2 / n)
            target[levels[b, lv]] += 0.8
            level_sum += float(-(target * log_p[b]).sum())
        total += float(TF.level_weights[lv]) * level_sum / 6
    assert float(got) == pytest.approx(total, rel=1e-5)


def test_soft_label_loss_is_kl() -> None:
    idx = torch.tensor([2, 3])
    soft = TS.soft_labels(idx, beta=4.0)
    loss = losses.SoftLabelLoss(TS, beta=4.0)
    assert float(loss(soft.log(), idx)) == pytest.approx(0.0, abs=1e-6)
    logits = torch.randn(2, 6, generator=torch.Generator().manual_seed(4))
    expected = (soft * (soft.log() - torch.log_softmax(logits, 1))).sum(1).mean()
    assert float(loss(logits, idx)) == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("make", [
    lambda t: losses.SoftLabelLoss(t, beta=10.0),
    lambda t: losses.HierarchicalCrossEntropy(t, alpha=0.1),
    lambda t: losses.SemanticSoftmaxLoss(t, label_smoothing=0.1),
], ids=["soft", "hxe", "semantic"])
def test_gradients_finite_on_extreme_logits(make) -> None:
    gen = torch.Generator().manual_seed(5)
    idx = torch.randint(0, len(IN21K), (8,), generator=gen)
    for scale in (1.0, 300.0):
        logits = (torch.randn(8, len(IN21K), generator=gen) * scale).requires_grad_()
        value = make(T21K)(logits, idx)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("make", [
    lambda t: losses.SoftLabelLoss(t, beta=10.0),
    lambda t: losses.HierarchicalCrossEntropy(t, alpha=0.1, normalize=False),
    lambda t: losses.SemanticSoftmaxLoss(t),
], ids=["soft", "hxe", "semantic"])
def test_losses_decrease_on_toy_problem(make) -> None:
    gen = torch.Generator().manual_seed(6)
    features = torch.randn(len(FELIDS), 16, generator=gen)  # one prototype per class
    idx = torch.randint(0, len(FELIDS), (128,), generator=gen)
    x = features[idx] + 0.1 * torch.randn(128, 16, generator=gen)
    model = torch.nn.Linear(16, len(FELIDS))
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    loss_fn = make(TF)
    first = loss_fn(model(x), idx).item()
    for _ in range(40):
        opt.zero_grad()
        loss_fn(model(x), idx).backward()
        opt.step()
    last = loss_fn(model(x), idx).item()
    assert last < 0.5 * first
    assert (model(x).argmax(1) == idx).float().mean() > 0.5


def test_invalid_arguments() -> None:
    with pytest.raises(ConfigError, match="beta"):
        losses.SoftLabelLoss(TS, beta=-2)
    with pytest.raises(ConfigError, match="alpha"):
        losses.HierarchicalCrossEntropy(TS, alpha=float("nan"))
    with pytest.raises(ConfigError, match="label_smoothing"):
        losses.SemanticSoftmaxLoss(TS, label_smoothing=1.0)
    with pytest.raises(ConfigError, match=r"\[B, 6\]"):
        losses.HierarchicalCrossEntropy(TS)(torch.zeros(2, 5), torch.tensor([0, 1]))

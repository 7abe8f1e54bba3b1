"""Flat and hierarchical evaluation metrics over ``[B, C]`` logits (torch; CPU or CUDA).

* :func:`topk_accuracy` — the ILSVRC protocol: a sample counts as correct at k when its class is
  among the k highest-scoring classes (ties broken by ``torch.topk``).
* :func:`mistake_severity` — mean ``D(top-1, target)`` over the samples whose top-1 is wrong.
* :func:`hierarchical_distance_at_k` — mean ``D`` over the top-k predictions (0 for a correct one).
* :class:`MetricTracker` — accumulates the sums behind all of them over many batches.
* :func:`remap_logits` — logits of one class space as logits of another (e.g. in21k → in1k).

``D`` is the tree-projection LCA distance (``Hierarchy.distance``); Bertinetto et al. 2020.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from imagenet_stream.errors import ConfigError
from imagenet_stream.hierarchy.class_hierarchy import Hierarchy
from imagenet_stream.hierarchy.targets import HierarchicalTargets


def topk_accuracy(logits: Tensor, idx: Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """``{k: share of samples whose class is in the top k}`` for each ``k`` in ``ks``."""
    sums, count = _topk_correct(logits, idx, ks)
    return {k: v / count for k, v in sums.items()}


def mistake_severity(logits: Tensor, idx: Tensor, targets: HierarchicalTargets) -> float:
    """Mean ``D(top-1 prediction, target)`` over mistakes; NaN when there is no mistake."""
    total, mistakes = _severity_sums(logits, idx, targets)
    return total / mistakes if mistakes else math.nan


def hierarchical_distance_at_k(logits: Tensor, idx: Tensor, targets: HierarchicalTargets,
                               k: int = 5) -> float:
    """Mean ``D(prediction, target)`` over the k highest-scoring predictions of every sample."""
    total, count = _distance_sums(logits, idx, targets, k)
    return total / count


class MetricTracker:
    """Accumulates top-k accuracy, mistake severity and hierarchical distance@k over batches.

    ``update(logits, idx)`` per batch, ``compute()`` for ``{"top1": ..., "top5": ...,
    "mistake_severity": ..., "hdist@5": ...}`` (the keys follow ``ks`` and ``k``).
    """

    def __init__(self, targets: HierarchicalTargets, ks: Sequence[int] = (1, 5), k: int = 5) -> None:
        self.targets, self.ks, self.k = targets, tuple(ks), k
        self.reset()

    def reset(self) -> None:
        self.samples = 0
        self.correct = {k: 0 for k in self.ks}
        self.severity_total, self.mistakes = 0.0, 0
        self.distance_total, self.distance_count = 0.0, 0

    @torch.no_grad()
    def update(self, logits: Tensor, idx: Tensor) -> None:
        correct, count = _topk_correct(logits, idx, self.ks)
        for k, v in correct.items():
            self.correct[k] += v
        self.samples += count
        total, mistakes = _severity_sums(logits, idx, self.targets)
        self.severity_total += total
        self.mistakes += mistakes
        total, count = _distance_sums(logits, idx, self.targets, self.k)
        self.distance_total += total
        self.distance_count += count

    def compute(self) -> dict[str, float]:
        if not self.samples:
            raise ConfigError("MetricTracker.compute() before any update()")
        out = {f"top{k}": self.correct[k] / self.samples for k in self.ks}
        out["mistake_severity"] = self.severity_total / self.mistakes if self.mistakes else math.nan
        out[f"hdist@{self.k}"] = self.distance_total / self.distance_count
        return out


def _check(logits: Tensor, idx: Tensor) -> None:
    if logits.dim() != 2 or idx.dim() != 1 or logits.shape[0] != idx.shape[0] or not logits.shape[0]:
        raise ConfigError(f"need logits [B, C] and indices [B] with B > 0, got {tuple(logits.shape)} "
                          f"and {tuple(idx.shape)}")


def _check_k(k: int, num_classes: int) -> None:
    if not (isinstance(k, int) and 1 <= k <= num_classes):
        raise ConfigError(f"k must be an int in [1, {num_classes}], got {k!r}")


def _topk_correct(logits: Tensor, idx: Tensor, ks: Sequence[int]) -> tuple[dict[int, int], int]:
    _check(logits, idx)
    if not ks:
        raise ConfigError("ks must name at least one k")
    for k in ks:
        _check_k(k, logits.shape[1])
    top = logits.topk(max(ks), dim=1).indices
    hit = top == idx.view(-1, 1).to(top.device)
    return {k: int(hit[:, :k].any(1).sum()) for k in ks}, logits.shape[0]


def _severity_sums(logits: Tensor, idx: Tensor, targets: HierarchicalTargets) -> tuple[float, int]:
    _check(logits, idx)
    targets._check_logits(logits)
    pred = logits.argmax(1)
    wrong = pred != idx
    dist = targets.distance(pred[wrong], idx[wrong])
    return float(dist.sum()), int(wrong.sum())


def _distance_sums(logits: Tensor, idx: Tensor, targets: HierarchicalTargets, k: int) -> tuple[float, int]:
    _check(logits, idx)
    targets._check_logits(logits)
    _check_k(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    dist = targets.distance(top, idx.view(-1, 1))
    return float(dist.sum()), dist.numel()


def remap_logits(logits: Tensor, source: Hierarchy, target: Hierarchy, fill: float = -math.inf) -> Tensor:
    """``[B, len(source)]`` logits → ``[B, len(target)]``: the column of each target class, ``fill``
    where ``source`` lacks the class. E.g. evaluate an in21k model on in1k (teddy bear gets ``fill``)."""
    if logits.dim() != 2 or logits.shape[1] != len(source):
        raise ConfigError(f"logits must be [B, {len(source)}] for space {source.space.id!r}, "
                          f"got {tuple(logits.shape)}")
    columns = torch.from_numpy(target.class_map(source)).to(logits.device)
    out = logits.index_select(1, columns.clamp_min(0))
    return out.masked_fill(columns < 0, fill)

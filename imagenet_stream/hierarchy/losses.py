"""Hierarchy-aware losses over ``[B, C]`` logits and int class indices (torch; CPU or CUDA).

* :class:`SoftLabelLoss` — KL divergence to the soft labels of Bertinetto et al. 2020.
* :class:`HierarchicalCrossEntropy` — their HXE over the tree projection, with each class's own
  probability mass as a leaf under its node.
* :class:`SemanticSoftmaxLoss` — Ridnik et al. 2021's per-level cross-entropy (ImageNet-21K-P).

All reduce to a mean over the batch. Definitions: docs/HIERARCHY.md, "Hierarchy-aware targets".
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imagenet_stream.errors import ConfigError
from imagenet_stream.hierarchy.targets import HierarchicalTargets


class SoftLabelLoss(nn.Module):
    """``KL(soft_labels(idx, beta) || softmax(logits))`` summed over classes, mean over the batch.

    Same gradients as cross-entropy with the soft labels as targets (they differ by the targets'
    entropy, a constant), but 0 at the optimum.
    """

    def __init__(self, targets: HierarchicalTargets, beta: float = 10.0) -> None:
        super().__init__()
        if not (isinstance(beta, (int, float)) and beta >= 0):
            raise ConfigError(f"SoftLabelLoss beta must be a number >= 0, got {beta!r}")
        self.targets = targets
        self.beta = float(beta)

    def forward(self, logits: Tensor, idx: Tensor) -> Tensor:
        self.targets._check_logits(logits)
        soft = self.targets.soft_labels(idx, self.beta)
        return F.kl_div(F.log_softmax(logits.float(), dim=1), soft, reduction="batchmean")


class HierarchicalCrossEntropy(nn.Module):
    """HXE: ``sum_l lambda(C_l) * -log(p(C_l) / p(C_{l+1}))`` along the target's tree path.

    ``p`` comes from one flat softmax over the classes; ``p(node)`` sums the classes under the node,
    the node's own class included. The path is ``C_0 = self(t)``, ``C_1 = t``, ``C_2 = tree_parent(t)``,
    ..., entity, where ``self(t)`` is a virtual leaf under ``t`` holding only class ``t``'s own mass:
    for a leaf class its term is exactly 0, for a class with classes under it the term
    ``-log(p_t / p(subtree of t))`` keeps a prediction of a descendant from counting as correct.
    ``lambda(C) = exp(-alpha * depth(C))`` (tree depth, ``self(t)`` one below ``t``); with
    ``normalize`` (default) every weight is divided by the sum of ``lambda`` over all nodes of that tree,
    as in the reference code. ``alpha = 0, normalize = False`` is exactly the flat cross-entropy.
    """

    def __init__(self, targets: HierarchicalTargets, alpha: float = 0.1, normalize: bool = True) -> None:
        super().__init__()
        if not (isinstance(alpha, (int, float)) and math.isfinite(alpha)):
            raise ConfigError(f"HierarchicalCrossEntropy alpha must be a finite number, got {alpha!r}")
        self.targets = targets
        self.alpha = float(alpha)
        self.normalize = bool(normalize)
        nodes = np.concatenate([targets._node_depths, targets._internal_depths + 1])
        self.norm = float(np.exp(-self.alpha * nodes).sum()) if normalize else 1.0

    def forward(self, logits: Tensor, idx: Tensor) -> Tensor:
        t = self.targets
        t._check_logits(logits)
        idx = t._check_idx(idx)
        x = logits.float().index_select(1, t.order)  # pre-order columns
        depth = t.class_depth[idx].long()  # [B]
        # ring r = index l of the lowest path node C_l over each class: 0 = the target itself,
        # 1 = other classes under t, ..., depth + 1 = classes that meet t only at entity
        counts = t.lca_counts(idx, torch.int64)[:, :-1]
        ring = torch.sub(depth.unsqueeze(1) + 2, counts, out=counts)
        ring.scatter_(1, t.position[idx].unsqueeze(1), 0)
        width = t.paths.shape[1] + 1
        lse = _segment_logsumexp(x, ring, width)  # [B, width]; -inf for empty rings
        log_mass = torch.logcumsumexp(lse, dim=1)  # log p(C_l); finite since ring 0 holds the target
        terms = log_mass[:, 1:] - log_mass[:, :-1]  # -log(p(C_l) / p(C_{l+1})), 0 past the root
        steps = torch.arange(width - 1, device=idx.device)
        node_depth = (depth + 1).unsqueeze(1) - steps  # depth of C_l
        weight = torch.where(steps <= depth.unsqueeze(1), torch.exp(-self.alpha * node_depth.float()), 0.0)
        return (weight * terms).sum(1).mean() / self.norm

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, normalize={self.normalize}"


class SemanticSoftmaxLoss(nn.Module):
    """Per-level cross-entropy over the semantic levels (Ridnik et al. 2021, ImageNet-21K-P).

    ``logits`` [B, C] are sliced per level (``targets.level_logits``); level ``l`` gets a softmax over
    its classes and cross-entropy against ``targets.levels(idx)[:, l]`` with label smoothing; rows
    without a class at that level (-1) contribute 0. Level losses are averaged over the batch (masked
    rows included, as in the reference code) and summed with weights ``targets.level_weights``
    (``min(C / #classes at that level or deeper, 20)``).
    """

    def __init__(self, targets: HierarchicalTargets, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not (isinstance(label_smoothing, (int, float)) and 0 <= label_smoothing < 1):
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.targets = targets
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: Tensor, idx: Tensor) -> Tensor:
        t = self.targets
        levels = t.levels(idx)
        total = logits.new_zeros((), dtype=torch.float32)
        for level, level_logits in enumerate(t.level_logits(logits)):
            target = levels[:, level]
            per_row = F.cross_entropy(level_logits.float(), target, ignore_index=-1, reduction="none",
                                      label_smoothing=self.label_smoothing)
            total = total + t.level_weights[level] * per_row.sum() / target.shape[0]
        return total

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}"


def _segment_logsumexp(x: Tensor, segment: Tensor, width: int) -> Tensor:
    """``[B, width]``: logsumexp of ``x[b, p]`` over the ``p`` with ``segment[b, p] == s``; -inf if none.

    Each segment is shifted by its own max, so a segment far below the row's max keeps its precision.
    """
    rows = x.shape[0]
    neg_inf = torch.full((rows, width), -math.inf, device=x.device, dtype=x.dtype)
    peak = neg_inf.scatter_reduce(1, segment, x.detach(), reduce="amax")
    shifted = torch.exp(x - peak.gather(1, segment))
    total = torch.zeros((rows, width), device=x.device, dtype=x.dtype).scatter_add(1, segment, shifted)
    empty = total == 0  # a non-empty segment holds its max, which adds exp(0) = 1
    safe_total = torch.where(empty, torch.ones_like(total), total)
    return torch.where(empty, neg_inf, safe_total.log() + torch.where(empty, 0.0, peak))

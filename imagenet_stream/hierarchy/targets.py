"""``HierarchicalTargets``: hierarchy-aware targets expanded from int class indices, per batch, on device.

The stream yields int64 class indices; this module turns a batch of them into ``[B, C]`` multi-hot
or soft-label targets, or ``[B, L]`` semantic-softmax level targets, with torch ops only (CPU or CUDA,
no host sync). The per-class tables are built once (:class:`~.tree.SpaceTables`, a few MB for the
21,841 classes) and registered as buffers, so ``targets.to("cuda")`` moves them. No ``[C, C]`` table is
ever built: distances for ``[B, C]`` pairs come from pre-order ranges (see :meth:`lca_counts`).
Definitions and choices: docs/HIERARCHY.md, "Hierarchy-aware targets".
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from imagenet_stream.errors import ConfigError
from imagenet_stream.hierarchy.class_hierarchy import Hierarchy


class HierarchicalTargets(nn.Module):
    """Target expansion for the class space of ``hierarchy`` (a :class:`Hierarchy`).

    Buffers (int32 unless noted; C classes, L = deepest class's tree depth + 1, K = most in-space
    ancestors of a class + 1, NL = number of semantic levels): ``paths`` [C, L], ``class_depth`` [C],
    ``order``/``position`` [C] int64 (pre-order ↔ class index), ``path_lo``/``path_hi`` [C, L],
    ``ancestors`` [C, K], ``levels_table`` [C, NL] int64, ``class_level``/``level_position`` [C],
    ``level_weights`` [NL] float32, ``depth_hist`` [nodes, L] (classes under each graph node by depth).
    ``d_max`` (an int) normalizes soft-label distances.
    """

    def __init__(self, hierarchy: Hierarchy) -> None:
        super().__init__()
        if not isinstance(hierarchy, Hierarchy):
            raise ConfigError(f"HierarchicalTargets needs a Hierarchy, got {type(hierarchy).__name__}")
        self.hierarchy = hierarchy
        tables = hierarchy.tables
        self.num_classes = tables.num_classes
        self.d_max = tables.d_max
        self.level_sizes: tuple[int, ...] = tuple(len(c) for c in tables.level_classes)
        self._node_depths = tables.node_depths
        self._internal_depths = tables.internal_depths
        for name, array in (("paths", tables.paths), ("class_depth", tables.class_depth),
                            ("order", tables.order), ("position", tables.position),
                            ("path_lo", tables.path_lo), ("path_hi", tables.path_hi),
                            ("ancestors", tables.ancestors), ("levels_table", tables.levels),
                            ("class_level", tables.class_level), ("level_position", tables.level_position),
                            ("depth_hist", tables.depth_hist)):
            self.register_buffer(name, torch.from_numpy(array.copy()), persistent=False)
        self.register_buffer("level_weights", torch.from_numpy(tables.level_weights.astype("float32")),
                             persistent=False)
        flat = torch.cat([torch.from_numpy(c.copy()) for c in tables.level_classes])
        self.register_buffer("level_class_flat", flat, persistent=False)

    # ---- layout ------------------------------------------------------------------------------------
    @property
    def num_levels(self) -> int:
        return len(self.level_sizes)

    @property
    def level_classes(self) -> tuple[Tensor, ...]:
        """Class indices (ascending) per semantic level; level ``l`` is ``logits[:, level_classes[l]]``."""
        return tuple(torch.split(self.level_class_flat, list(self.level_sizes)))

    def level_logits(self, logits: Tensor) -> list[Tensor]:
        """``[B, C]`` logits → one ``[B, level_sizes[l]]`` slice per level (column j = level index j)."""
        self._check_logits(logits)
        return list(torch.split(logits.index_select(1, self.level_class_flat), list(self.level_sizes), dim=1))

    def table_bytes(self) -> int:
        """Total size of the registered tables in bytes."""
        return sum(b.numel() * b.element_size() for b in self.buffers())

    # ---- targets -----------------------------------------------------------------------------------
    def multi_hot(self, idx: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """``[B, C]``: 1 for the class and every in-space ancestor over all DAG paths, 0 elsewhere."""
        idx = self._check_idx(idx)
        out = torch.zeros(idx.shape[0], self.num_classes, dtype=dtype, device=idx.device)
        return out.scatter_(1, self.ancestors[idx].long(), 1)

    def soft_labels(self, idx: Tensor, beta: float = 10.0) -> Tensor:
        """``[B, C]`` float32: ``y[a | t] = softmax_a(-beta * D(a, t) / D_max)`` (Bertinetto et al. 2020).

        Rows sum to 1; ``D_max`` is the largest distance between two classes of the space (1 if 0).
        The softmax normalizer comes from per-node depth histograms (``[B, L, L]`` work), so the
        ``[B, C]`` passes are: fill, running sum, max, subtract, exp, permute.
        """
        if not beta >= 0:
            raise ConfigError(f"soft-label beta must be >= 0, got {beta!r}")
        idx = self._check_idx(idx)
        scale = beta / max(self.d_max, 1)
        marks, work = self._scaled_neg_distances(idx, scale, -self._log_normalizer(idx, scale))
        return self._to_class_order(work.exp_(), marks)

    def _log_normalizer(self, idx: Tensor, scale: float) -> Tensor:
        """``[B]``: ``log sum_a exp(-scale * D(a, t))`` from the depth histograms of the path nodes."""
        path = self.paths[idx].long()  # [B, L], -1 padded
        width = path.shape[1]
        hist = self.depth_hist[path.clamp_min(0)].to(torch.float64) * (path >= 0).unsqueeze(2)
        ring = hist - torch.cat([hist[:, 1:], torch.zeros_like(hist[:, :1])], dim=1)  # LCA at depth k
        steps = torch.arange(width, device=idx.device, dtype=torch.float64)
        target = self.class_depth[idx].to(torch.float64).view(-1, 1, 1)
        dist = torch.maximum(steps.view(1, 1, -1), target) - steps.view(1, -1, 1)  # [B, k, depth]
        return (ring * torch.exp(-scale * dist.clamp_min(0))).sum((1, 2)).log().to(torch.float32)

    def levels(self, idx: Tensor) -> Tensor:
        """``[B, NL]`` int64: per semantic level, the index within that level of the target's in-space
        ancestor (or the target itself) at that level; -1 for levels below the target (Ridnik et al. 2021)."""
        return self.levels_table[self._check_idx(idx)]

    # ---- distances ---------------------------------------------------------------------------------
    def lca_counts(self, idx: Tensor, dtype: torch.dtype = torch.int32) -> Tensor:
        """``[B, C + 1]`` **in pre-order** (column p = class ``order[p]``; the last column is scratch):
        ``depth(tree LCA(order[p], idx[b])) + 1``.

        Each node on target b's tree path owns the pre-order run ``[lo, hi)`` of the classes under it;
        adding +1 at ``lo`` and -1 at ``hi`` and taking a running sum counts, at each position, the path
        nodes above it. O(B·(C + L)) time and memory, no [C, C] table.
        """
        idx = self._check_idx(idx)
        lo, hi = self.path_lo[idx].long(), self.path_hi[idx].long()
        marks = torch.zeros(idx.shape[0], self.num_classes + 1, dtype=dtype, device=idx.device)
        ones = torch.ones(lo.shape, dtype=dtype, device=idx.device)
        marks.scatter_add_(1, lo, ones).scatter_add_(1, hi, ones.neg_())  # padding (0, 0) cancels out
        return marks.cumsum_(1)

    def distances(self, idx: Tensor) -> Tensor:
        """``[B, C]`` int32: ``D(a, idx[b])`` for every class ``a`` (class order)."""
        marks, work = self._scaled_neg_distances(self._check_idx(idx), 1.0)
        return self._to_class_order(work.neg_(), marks).round_().to(torch.int32)

    def _scaled_neg_distances(self, idx: Tensor, scale: float,
                              offset: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(marks, work)``: ``work`` [B, C] float32 holds ``offset - scale * D`` in pre-order;
        ``marks`` is scratch that :meth:`_to_class_order` reuses."""
        lo, hi = self.path_lo[idx].long(), self.path_hi[idx].long()
        marks = torch.zeros(idx.shape[0], self.num_classes + 1, device=idx.device)
        if offset is not None:
            marks[:, 0] = offset
        step = torch.full(lo.shape, scale, device=idx.device)
        marks.scatter_add_(1, lo, step).scatter_add_(1, hi, step.neg_()).cumsum_(1)  # scale * (lca + 1)
        depth_pre = (self.class_depth[self.order] + 1).to(torch.float32).mul_(scale)  # [C], tiny
        target = (self.class_depth[idx] + 1).to(torch.float32).mul_(scale).unsqueeze(1)
        work = torch.maximum(depth_pre.unsqueeze(0), target)  # scale * (max(d_a, d_t) + 1)
        return marks, torch.sub(marks[:, :-1], work, out=work)

    def _to_class_order(self, work: Tensor, marks: Tensor) -> Tensor:
        """Permute pre-order columns to class order, writing into the scratch buffer (no new [B, C])."""
        rows = work.shape[0]
        marks = marks if marks.dtype == work.dtype else torch.empty_like(work)
        out = marks.view(-1)[:rows * self.num_classes].view(rows, self.num_classes)
        return torch.index_select(work, 1, self.position, out=out)

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        """Elementwise ``D(a, b)`` for broadcastable int tensors of class indices (int64 result)."""
        a, b = self._check_idx(a, flat=False), self._check_idx(b, flat=False)
        a, b = torch.broadcast_tensors(a, b)
        pa, pb = self.paths[a], self.paths[b]
        shared = ((pa == pb) & (pa >= 0)).sum(-1)
        deeper = torch.maximum(self.class_depth[a], self.class_depth[b]).long()
        return deeper - shared + 1

    # ---- helpers ------------------------------------------------------------------------------------
    def _check_idx(self, idx: Tensor, flat: bool = True) -> Tensor:
        if not isinstance(idx, Tensor):
            idx = torch.as_tensor(idx, device=self.paths.device)
        if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
            raise ConfigError(f"class indices must be an integer tensor, got dtype {idx.dtype}")
        if flat and idx.dim() != 1:
            raise ConfigError(f"class indices must be a 1-D batch, got shape {tuple(idx.shape)}")
        if idx.device != self.paths.device:
            raise ConfigError(f"class indices are on {idx.device} but the tables are on {self.paths.device}; "
                              f"call .to(device) on the targets module")
        if not torch.compiler.is_compiling() and idx.device.type == "cpu" and idx.numel():
            low, high = int(idx.min()), int(idx.max())
            if low < 0 or high >= self.num_classes:
                bad = low if low < 0 else high
                raise ConfigError(f"class index {bad} is outside [0, {self.num_classes})")
        return idx.long()

    def _check_logits(self, logits: Tensor) -> None:
        if logits.dim() != 2 or logits.shape[1] != self.num_classes:
            raise ConfigError(f"logits must be [B, {self.num_classes}], got shape {tuple(logits.shape)}")

    def extra_repr(self) -> str:
        return (f"space={self.hierarchy.space.id!r}, classes={self.num_classes}, levels={self.num_levels}, "
                f"d_max={self.d_max}")

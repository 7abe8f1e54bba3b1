"""Pure-Python reference implementations (loops over the hierarchy) for the batched hierarchy tensors."""
from __future__ import annotations

import math

from imagenet_stream.hierarchy import Hierarchy


def ref_multi_hot(h: Hierarchy, c: int) -> set[int]:
    """The class and every in-space DAG ancestor."""
    wnid = h.classes[c]
    return {c} | {h.index(a) for a in h.ancestors(wnid) if a in h}


def ref_distance(h: Hierarchy, a: int, b: int) -> int:
    """D over root-anchored tree paths: max(depth a, depth b) - depth of the deepest shared node."""
    pa, pb = h.tree_path(h.classes[a])[::-1], h.tree_path(h.classes[b])[::-1]
    shared = 0
    for x, y in zip(pa, pb):
        if x != y:
            break
        shared += 1
    return max(len(pa), len(pb)) - shared


def ref_soft_labels(h: Hierarchy, t: int, beta: float, d_max: int) -> list[float]:
    scores = [math.exp(-beta * ref_distance(h, a, t) / max(d_max, 1)) for a in range(len(h))]
    total = sum(scores)
    return [s / total for s in scores]


def ref_chain(h: Hierarchy, c: int) -> list[int]:
    """In-space tree chain root-first: the in-space nodes of the class's tree path, ending at the class."""
    return [h.index(w) for w in reversed(h.tree_path(h.classes[c])) if w in h]


def ref_levels(h: Hierarchy) -> tuple[list[list[int]], list[list[int]]]:
    """(classes per level, level targets per class) of the tree projection restricted to the space."""
    chains = [ref_chain(h, c) for c in range(len(h))]
    num_levels = max(len(ch) for ch in chains)
    members = [[c for c in range(len(h)) if len(chains[c]) == lv + 1] for lv in range(num_levels)]
    rows = []
    for ch in chains:
        row = [members[lv].index(x) for lv, x in enumerate(ch)]
        rows.append(row + [-1] * (num_levels - len(row)))
    return members, rows


def ref_hxe(h: Hierarchy, logits: list[float], t: int, alpha: float) -> float:
    """Unnormalized HXE for one sample: class t's own mass as a leaf under t, then t's tree path."""
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = sum(exps)
    probs = [e / total for e in exps]
    paths = [set(h.tree_path(w)) for w in h.classes]
    path = h.tree_path(h.classes[t])
    masses = [probs[t]] + [sum(p for p, nodes in zip(probs, paths) if node in nodes) for node in path]
    depths = [h.max_depth(path[0]) + 1] + [h.max_depth(n) for n in path]
    return sum(math.exp(-alpha * depths[i]) * -math.log(masses[i] / masses[i + 1])
               for i in range(len(masses) - 1))

"""Time hierarchy-aware target expansion, losses and metrics for a batch over the 21,841 classes.

    python benchmarks/targets_bench.py                       # CPU, batch 256, torch's default threads
    python benchmarks/targets_bench.py --threads 1 --batch 256
    python benchmarks/targets_bench.py --device cuda

Prints the table memory, then per operation the min and median of ``--repeats`` timed calls (after a
warm-up call), measured in this run; the goal for each target type on CPU is < 50 ms at batch 256.
Not a test: numbers depend on the machine and on what else runs on it.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from imagenet_stream.hierarchy import HierarchicalTargets, Hierarchy, losses, metrics

GOAL_MS = 50.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, float]:
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1000)
    return min(times), statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default="in21k", choices=("in1k", "in21k", "in22k"))
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    started = time.perf_counter()
    hierarchy = Hierarchy.for_space(args.space)
    targets = HierarchicalTargets(hierarchy).to(device)
    build_s = time.perf_counter() - started
    num = targets.num_classes
    print(f"space {args.space}: {num} classes, {targets.num_levels} levels, d_max {targets.d_max}; "
          f"device {device}, torch threads {torch.get_num_threads()}, batch {args.batch}")
    print(f"tables: {targets.table_bytes() / 2**20:.2f} MiB in {len(list(targets.buffers()))} buffers "
          f"(a dense [C, C] int8 distance table would be {num * num / 2**20:.0f} MiB); "
          f"built in {build_s:.2f} s")
    for name, buf in targets.named_buffers():
        size = buf.numel() * buf.element_size() / 2**20
        print(f"  {name:<16} {str(tuple(buf.shape)):<16} {str(buf.dtype):<14} {size:7.2f} MiB")

    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, num, (args.batch,), generator=gen).to(device)
    logits = torch.randn(args.batch, num, generator=gen).to(device)
    out_mib = args.batch * num * 4 / 2**20
    print(f"\ntarget expansion (each [B, C] float32 output is {out_mib:.1f} MiB):")
    rows = [("multi_hot", lambda: targets.multi_hot(idx), True),
            ("soft_labels", lambda: targets.soft_labels(idx, beta=10.0), True),
            ("levels", lambda: targets.levels(idx), True),
            ("distances", lambda: targets.distances(idx), False)]
    for name, fn, goal in rows:
        best, median = timed(fn, device, args.repeats)
        verdict = ("meets" if best < GOAL_MS else "MISSES") + f" the {GOAL_MS:.0f} ms goal" if goal else ""
        print(f"  {name:<12} min {best:8.2f} ms   median {median:8.2f} ms   {verdict}")

    print("\nlosses (forward + backward) and metrics:")
    loss_fns = {"SoftLabelLoss": losses.SoftLabelLoss(targets, 10.0),
                "HierarchicalCrossEntropy": losses.HierarchicalCrossEntropy(targets, 0.1),
                "SemanticSoftmaxLoss": losses.SemanticSoftmaxLoss(targets),
                "cross_entropy (flat)": torch.nn.CrossEntropyLoss()}
    for name, fn in loss_fns.items():
        x = logits.clone().requires_grad_()
        best, median = timed(lambda: fn(x, idx).backward(), device, max(3, args.repeats // 4))
        print(f"  {name:<26} min {best:8.2f} ms   median {median:8.2f} ms")
    for name, fn in (("topk_accuracy", lambda: metrics.topk_accuracy(logits, idx)),
                     ("mistake_severity", lambda: metrics.mistake_severity(logits, idx, targets)),
                     ("hdist@5", lambda: metrics.hierarchical_distance_at_k(logits, idx, targets, 5))):
        best, median = timed(fn, device, args.repeats)
        print(f"  {name:<26} min {best:8.2f} ms   median {median:8.2f} ms")


if __name__ == "__main__":
    main()

"""Fine-tune a small CNN (or only its linear head) on shards streamed from a URL, with a hierarchical loss.

    imagenet-stream demo --out demo-data     # demo-data/shards: 21 fall11 classes in the in21k space
    # host demo-data/shards on a server with HTTP Range support (nginx, caddy, a bucket), then:
    python examples/finetune_hosted.py https://host/demo-shards --steps 50 --loss hxe
    python examples/finetune_hosted.py s3://bucket/in21k --loss semantic --size 128 --workers 4

The DataLoader ships uint8 images and int64 class indices only; the hierarchy-aware targets are
expanded per batch on the training device (``HierarchicalTargets``). At the end it evaluates
``--eval-batches`` batches (centre crops, no shuffle) and prints top-1/top-5 accuracy, mistake severity
and hierarchical distance@5. S3 credentials come from the usual AWS environment variables / config
files (s3fs), never from the command line; ``--endpoint-url`` selects an S3-compatible store.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader

from imagenet_stream.hierarchy import HierarchicalTargets, Hierarchy, losses, metrics
from imagenet_stream.streaming import ImageNetStream
from imagenet_stream.streaming.device import normalize

LOSSES = ("soft", "hxe", "semantic")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url", help="dataset root holding index.json: https://..., s3://..., or a local folder")
    p.add_argument("--loss", choices=LOSSES, default="soft",
                   help="soft: soft labels (beta); hxe: hierarchical cross-entropy (alpha); "
                        "semantic: semantic softmax (default soft)")
    p.add_argument("--beta", type=float, default=10.0, help="soft-label hardness (default 10)")
    p.add_argument("--alpha", type=float, default=0.1, help="HXE weight decay along the path (default 0.1)")
    p.add_argument("--endpoint-url", default=None,
                   help="S3-compatible endpoint for s3:// URLs (MinIO, R2, a local test server)")
    p.add_argument("--classes", default=None,
                   help="class subset passed to ImageNetStream: in1k, a wnid (its subtree) or a list file")
    p.add_argument("--steps", type=int, default=20, help="training steps (default 20)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--size", type=int, default=128, help="crop size (default 128)")
    p.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate (default 3e-3)")
    p.add_argument("--linear-head", action="store_true",
                   help="freeze the convolutional trunk, train only the head")
    p.add_argument("--width", type=int, default=32, help="channels of the first conv layer (default 32)")
    p.add_argument("--eval-batches", type=int, default=4, help="batches evaluated at the end (default 4)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    for name in ("steps", "batch_size", "size", "width", "eval_batches"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.workers < 0:
        p.error("--workers must be >= 0")
    return args


def small_cnn(num_classes: int, width: int) -> nn.Sequential:
    """Four stride-2 conv blocks, global average pooling and a linear head (``model[-1]``)."""
    layers: list[nn.Module] = []
    channels = 3
    for i in range(4):
        out = width * 2 ** i
        layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(out),
                   nn.ReLU(inplace=True)]
        channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)


def make_loss(name: str, targets: HierarchicalTargets, args: argparse.Namespace) -> nn.Module:
    if name == "soft":
        return losses.SoftLabelLoss(targets, beta=args.beta)
    if name == "hxe":
        # unnormalized weights keep the loss on the scale of cross-entropy (the normalized version
        # divides by a constant in the thousands for the 21,841-class tree)
        return losses.HierarchicalCrossEntropy(targets, alpha=args.alpha, normalize=False)
    return losses.SemanticSoftmaxLoss(targets)


def stream(args: argparse.Namespace, train: bool) -> ImageNetStream:
    options = {"client_kwargs": {"endpoint_url": args.endpoint_url}} if args.endpoint_url else None
    return ImageNetStream(args.url, shuffle=train, seed=args.seed, transform="train" if train else "eval",
                          size=args.size, batch_size=args.batch_size, classes=args.classes,
                          storage_options=options)


def train(model: nn.Module, loss_fn: nn.Module, args: argparse.Namespace) -> list[float]:
    """``args.steps`` optimizer steps over as many epochs as needed; returns the loss of every step."""
    device = torch.device(args.device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)
    data = stream(args, train=True)
    loader = DataLoader(data, batch_size=args.batch_size, num_workers=args.workers,
                        persistent_workers=args.workers > 0)
    history: list[float] = []
    epoch = 0
    model.train()
    if args.linear_head:
        model[:-1].eval()  # frozen trunk: keep its BatchNorm statistics fixed
    while len(history) < args.steps:
        data.set_epoch(epoch)
        started, seen = time.perf_counter(), 0
        for images, target in loader:
            images = normalize(images.to(device, non_blocking=True))
            target = target.to(device, non_blocking=True)
            loss = loss_fn(model(images), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            history.append(loss.item())
            seen += len(target)
            print(f"step {len(history):4d}/{args.steps}  epoch {epoch}  loss {history[-1]:.4f}", flush=True)
            if len(history) == args.steps:
                break
        if seen == 0:
            raise SystemExit(f"{args.url} yielded no samples")
        print(f"  epoch {epoch}: {seen / (time.perf_counter() - started):.1f} images/s", flush=True)
        epoch += 1
    return history


@torch.no_grad()
def evaluate(model: nn.Module, targets: HierarchicalTargets, args: argparse.Namespace) -> dict[str, float]:
    device = torch.device(args.device)
    model.eval()
    k = min(5, targets.num_classes)
    tracker = metrics.MetricTracker(targets, ks=(1, k), k=k)
    loader = DataLoader(stream(args, train=False), batch_size=args.batch_size, num_workers=args.workers)
    for batch, (images, target) in enumerate(loader):
        if batch == args.eval_batches:
            break
        tracker.update(model(normalize(images.to(device))), target.to(device))
    return tracker.compute()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    classes = stream(args, train=False).classes
    if classes is None:
        raise SystemExit(f"{args.url} has no manifest class list: hierarchical losses need class wnids")
    hierarchy = Hierarchy.for_classes(classes, name="dataset")
    targets = HierarchicalTargets(hierarchy).to(device)
    print(f"{args.url}: {len(hierarchy)} classes ({hierarchy.space.id}), "
          f"{targets.num_levels} semantic levels, "
          f"target tables {targets.table_bytes() / 1e6:.1f} MB on {device}")
    model = small_cnn(len(hierarchy), args.width).to(device)
    if args.linear_head:
        for p in model[:-1].parameters():
            p.requires_grad_(False)
    loss_fn = make_loss(args.loss, targets, args)
    history = train(model, loss_fn, args)
    if not all(math.isfinite(v) for v in history):
        print("loss is not finite", file=sys.stderr)
        return 1
    result = evaluate(model, targets, args)
    k = min(5, targets.num_classes)
    print(f"loss {args.loss}: first {history[0]:.4f}, last {history[-1]:.4f}")
    print(f"top-1 {result['top1']:.4f}  top-{k} {result[f'top{k}']:.4f}  "
          f"mistake severity {result['mistake_severity']:.3f}  "
          f"hierarchical distance@{k} {result[f'hdist@{k}']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train under ``torchrun`` elastic: checkpoint model, optimizer and the stream's position every
``--every`` steps; after a restart in any world (a node lost, a node back), resume from the latest
checkpoint and finish the epoch with every sample consumed once.

    TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 torchrun --nnodes=1:2 --nproc-per-node=2 \\
        --rdzv-backend=c10d --rdzv-endpoint=HOST:29400 --rdzv-id=job1 --max-restarts=3 \\
        examples/train_elastic.py demo-data/shards --ckpt-dir /shared/ckpt

What is saved (rank 0, atomically, after all ranks reached the same step):
``{"model", "optimizer", "data": loader.state_dict(), "epoch", "step"}``. ``loader`` is a
:class:`~imagenet_stream.streaming.loader.ResumableLoader`, which counts the samples that reached the
loop, so the data state is right in a resumed run of a resumed run. ``loader.load_state_dict`` takes it
in any world: the rest of the epoch is re-planned over the new ranks with equal counts. Steps after
the last checkpoint are redone on restart (their model update was lost with the process).

``--audit`` adds, per checkpoint, the keys every rank consumed since the previous one (gathered to
rank 0): the test uses it to prove exactly-once over the chain of checkpoints. It grows with the
epoch; leave it off in real runs.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from imagenet_stream.streaming import ImageNetStream
from imagenet_stream.streaming.device import normalize
from imagenet_stream.streaming.loader import ResumableLoader

CHECKPOINT = "latest.pt"
SUMMARY = "latest.json"  # a human- (and test-) readable line about the latest checkpoint


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url", help="dataset root holding index.json (a local folder, s3://..., https://...)")
    p.add_argument("--ckpt-dir", required=True, help="a folder every node can read and write")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--every", type=int, default=5, help="checkpoint every k steps (default 5)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--size", type=int, default=32, help="crop size (default 32)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers per rank (default 0)")
    p.add_argument("--step-delay", type=float, default=0.0, help="seconds of extra work per step (tests)")
    p.add_argument("--audit", action="store_true", help="record the keys each checkpoint covers (O(epoch))")
    args = p.parse_args(argv)
    for name in ("epochs", "every", "batch_size", "size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def tiny_model(num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, num_classes))


def load_checkpoint(ckpt_dir: Path) -> dict[str, Any] | None:
    path = ckpt_dir / CHECKPOINT
    # our own file, written by this script: plain tensors and dicts (weights_only refuses anything else)
    return torch.load(path, weights_only=True) if path.exists() else None


def save_checkpoint(ckpt_dir: Path, state: dict[str, Any]) -> None:
    """Write to a temporary name, then rename: a kill mid-write leaves the previous checkpoint."""
    tmp = ckpt_dir / f".{CHECKPOINT}.{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, ckpt_dir / CHECKPOINT)
    summary = {"epoch": state["epoch"], "step": state["step"], "world_size": dist.get_world_size(),
               "done": state["done"], "restart": int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0))}
    (ckpt_dir / f".{SUMMARY}.tmp").write_text(json.dumps(summary))
    os.replace(ckpt_dir / f".{SUMMARY}.tmp", ckpt_dir / SUMMARY)


def gather_audit(keys: list[str]) -> list[list[str]]:
    every: list[list[str]] = [[] for _ in range(dist.get_world_size())]
    dist.all_gather_object(every, keys)
    return every


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    ckpt_dir = Path(args.ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    data = ImageNetStream(args.url, batch_size=args.batch_size, size=args.size, return_keys=args.audit)
    loader = ResumableLoader(data, num_workers=args.workers)
    model = tiny_model(data.num_classes or 1000)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    state = load_checkpoint(ckpt_dir)
    epoch, step, audit = 0, 0, []
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        epoch, step, audit = state["epoch"], state["step"], state.get("audit", [])
        if state["done"]:
            epoch += 1
        else:
            loader.load_state_dict(state["data"])  # any world: the rest of the epoch, equal per rank
    ddp = DistributedDataParallel(model)
    if rank == 0:
        print(f"world {world}: epoch {epoch}, step {step}, {len(data)} samples left per rank", flush=True)

    while epoch < args.epochs:
        if state is None or state["done"] or state["epoch"] != epoch:
            loader.set_epoch(epoch)
        pending: list[str] = []
        for batch in loader:
            images, target = batch[0], batch[1]
            loss = nn.functional.cross_entropy(ddp(normalize(images).float()), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if args.audit:
                pending += list(batch[2])
            if args.step_delay:
                time.sleep(args.step_delay)
            if step % args.every == 0:
                checkpoint(ckpt_dir, ddp, optimizer, loader, epoch, step, audit, pending, done=False, args=args)
                pending = []
        checkpoint(ckpt_dir, ddp, optimizer, loader, epoch, step, audit, pending, done=True, args=args)
        state = None
        epoch += 1
    dist.destroy_process_group()


def checkpoint(ckpt_dir: Path, ddp: DistributedDataParallel, optimizer: torch.optim.Optimizer,
               loader: ResumableLoader, epoch: int, step: int, audit: list[dict[str, Any]], pending: list[str],
               *, done: bool, args: argparse.Namespace) -> None:
    """Every rank calls this at the same step (a collective when auditing); rank 0 writes."""
    if args.audit:
        keys = gather_audit(pending)
        audit.append({"epoch": epoch, "step": step, "world_size": dist.get_world_size(), "keys": keys})
    if dist.get_rank() == 0:
        save_checkpoint(ckpt_dir, {"model": ddp.module.state_dict(), "optimizer": optimizer.state_dict(),
                                   "data": loader.state_dict(), "epoch": epoch, "step": step, "done": done,
                                   "audit": audit})
    dist.barrier()  # nobody runs ahead of a checkpoint that is not yet on disk


if __name__ == "__main__":
    main()

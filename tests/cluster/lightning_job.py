"""A Lightning DDP job for tests/cluster/test_lightning.py (Lightning's ddp launcher re-runs this
script for the second device, so it is a script, not a test function).

    python lightning_job.py DATASET OUT [--max-steps N] [--ckpt-every K] [--resume CKPT]

Every rank appends the keys of each batch it trains on to ``OUT/keys-<run>-rank<r>.txt`` as
``global_step key...`` lines.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn

from imagenet_stream.integrations.lightning import StreamDataModule
from imagenet_stream.streaming import ImageNetStream
from imagenet_stream.streaming.device import normalize


class Tiny(pl.LightningModule):
    def __init__(self, num_classes: int, log_path: Path) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(4, num_classes))
        self.log_path = log_path

    def training_step(self, batch, batch_idx):
        images, target, keys = batch
        with open(self.log_path.with_name(f"{self.log_path.name}-rank{self.global_rank}.txt"), "a") as f:
            f.write(f"{self.global_step} {' '.join(keys)}\n")
        return nn.functional.cross_entropy(self.net(normalize(images).float()), target)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dataset")
    p.add_argument("out")
    p.add_argument("--run", required=True)
    p.add_argument("--max-steps", type=int, default=-1)
    p.add_argument("--ckpt-every", type=int, default=0)
    p.add_argument("--resume", default=None)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--batched", action="store_true", help="the stream yields whole batches")
    args = p.parse_args()
    out = Path(args.out)
    stream = ImageNetStream(args.dataset, batch_size=4, size=16, return_keys=True, batched=args.batched)
    data = StreamDataModule(stream, num_workers=args.workers)
    callbacks = [pl.callbacks.ModelCheckpoint(dirpath=out / "ckpt", every_n_train_steps=args.ckpt_every,
                                              save_top_k=-1, filename="{step}")] if args.ckpt_every else []
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, max_steps=args.max_steps,
                         callbacks=callbacks, enable_checkpointing=bool(callbacks), logger=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(Tiny(stream.num_classes, out / f"keys-{args.run}"), datamodule=data, ckpt_path=args.resume)
    if trainer.global_rank == 0:
        (out / f"done-{args.run}").write_text(str(trainer.global_step))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()

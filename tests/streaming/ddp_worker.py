"""One rank of the DDP tests, run as a separate process: ``python ddp_worker.py CONFIG_JSON``.

The config names the dataset URL, the output file, the DataLoader shape and what to do; the rank
and world size come from the environment (RANK/WORLD_SIZE, as torchrun sets them). With
``"gloo": "before"`` the process joins a real torch.distributed gloo group before streaming (rank and
world size then come from torch.distributed); with ``"after"`` it streams on the environment alone
and joins the group afterwards; with ``"tcp"`` it joins a group by ``init_method="tcp://..."`` with
the config's ``rank``/``world_size`` and no such environment (as ``mp.spawn`` launchers do); in every
case it all-gathers its first epoch's keys over gloo. ``"mp_context"`` picks the DataLoader workers'
start method (spawn, forkserver, fork). ``"save_after": k`` streams only the first ``k`` batches of the
first epoch and saves ``state_dict(samples_seen=k * batch_size)``; ``"resume_states"`` (every rank's
saved state) loads them and streams the rest of that epoch.
Results are written as JSON for the test to check.
"""
from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from imagenet_stream.streaming import ImageNetStream


def run_pass(ds: ImageNetStream, cfg: dict, limit: int | None = None) -> list[list[list]]:
    """``[[key, target], ...]`` per batch; checks image dtype and shape."""
    context = cfg.get("mp_context") if cfg["num_workers"] else None
    batched = cfg.get("options", {}).get("batched", False)  # the stream yields whole batches
    loader = DataLoader(ds, batch_size=None if batched else cfg["batch_size"], num_workers=cfg["num_workers"],
                        multiprocessing_context=context)
    batches = []
    for i, (images, targets, keys) in enumerate(loader):
        if limit is not None and i == limit:
            break
        if images.dtype != torch.uint8 or tuple(images.shape[1:]) != (3, cfg["size"], cfg["size"]):
            raise SystemExit(f"bad images: {images.dtype} {tuple(images.shape)}")
        if targets.dtype != torch.int64:
            raise SystemExit(f"bad targets: {targets.dtype}")
        batches.append([[k, int(t)] for k, t in zip(keys, targets.tolist())])
    return batches


def main() -> None:
    cfg = json.loads(sys.argv[1])
    if cfg.get("gloo") == "before":
        dist.init_process_group("gloo", init_method="env://")
    elif cfg.get("gloo") == "tcp":
        dist.init_process_group("gloo", init_method=cfg["init_method"], rank=cfg["rank"],
                                world_size=cfg["world_size"])
    opts = {"size": cfg["size"], "batch_size": cfg["batch_size"], "return_keys": True, "seed": cfg["seed"],
            **cfg.get("options", {})}
    ds = ImageNetStream(cfg["url"], **opts)
    out: dict = {"len": len(ds), "epochs": {}}
    if cfg.get("save_after"):  # an interrupted job: k batches, then its checkpoint
        ds.set_epoch(cfg["epochs"][0])
        out["head"] = run_pass(ds, cfg, limit=cfg["save_after"])
        out["state"] = ds.state_dict(samples_seen=cfg["save_after"] * cfg["batch_size"])
    elif cfg.get("resume_states"):  # the job restarted in another world
        ds.load_state_dict(cfg["resume_states"])
        ds.set_epoch(cfg["epochs"][0])
        out["len"] = len(ds)
        out["epochs"][str(cfg["epochs"][0])] = run_pass(ds, cfg)
        out["stats"] = ds.stats()
    else:
        for epoch in cfg["epochs"]:
            ds.set_epoch(epoch)
            out["epochs"][str(epoch)] = run_pass(ds, cfg)
            out.setdefault("stats_by_epoch", {})[str(epoch)] = ds.stats()
    if cfg.get("resume_after"):
        k = cfg["resume_after"]
        interrupted = ImageNetStream(cfg["url"], **opts)
        head = run_pass(interrupted, cfg, limit=k)
        state = json.loads(json.dumps(interrupted.state_dict(samples_seen=k * cfg["batch_size"])))
        fresh = ImageNetStream(cfg["url"], **opts)
        fresh.load_state_dict(state)
        out["resume"] = {"head": head, "tail": run_pass(fresh, cfg), "state": state,
                         "decoded": fresh.stats()["samples_yielded"]}
    if cfg.get("gloo") == "after":
        dist.init_process_group("gloo", init_method="env://")
    if cfg.get("gloo"):
        out["len_under_dist"] = len(ds)
        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, [k for b in out["epochs"][str(cfg["epochs"][0])] for k, _ in b])
        out["gathered"] = gathered
        out["dist_rank"] = dist.get_rank()
        dist.barrier()
        dist.destroy_process_group()
    with open(cfg["out"], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()

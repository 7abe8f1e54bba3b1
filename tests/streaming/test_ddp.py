"""Real multi-process DDP: ranks are separate processes (RANK/WORLD_SIZE set as torchrun does), with and
without a torch.distributed gloo group, each with a DataLoader of 2 workers."""
from __future__ import annotations

import collections
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from torch.utils.data import DataLoader

from imagenet_stream.format import SideIndex
from imagenet_stream.storage import Store
from imagenet_stream.streaming import ImageNetStream

WORKER = str(Path(__file__).resolve().parent / "ddp_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(world_size: int, cfg: dict, tmp_path: Path, *, gloo: str | None) -> list[dict]:
    """Run ``world_size`` rank processes of ddp_worker.py; return their JSON results by rank.

    ``gloo="tcp"``: no RANK/WORLD_SIZE in the environment; each process joins the group by
    ``tcp://`` with an explicit rank, as ``mp.spawn``-style launchers do.
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    port = free_port()
    procs = []
    for rank in range(world_size):
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        env["OMP_NUM_THREADS"] = "1"
        if gloo != "tcp":
            env.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
                        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
        rank_cfg = {**cfg, "out": str(tmp_path / f"rank{rank}-of-{world_size}.json"), "gloo": gloo,
                    "rank": rank, "world_size": world_size, "init_method": f"tcp://127.0.0.1:{port}"}
        procs.append(subprocess.Popen([sys.executable, WORKER, json.dumps(rank_cfg)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for rank, proc in enumerate(procs):
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"rank {rank} failed:\n{output.decode(errors='replace')[-4000:]}"
    return [json.loads((tmp_path / f"rank{r}-of-{world_size}.json").read_text()) for r in range(world_size)]


def flat_keys(batches: list) -> list[str]:
    return [key for batch in batches for key, _ in batch]


def test_three_gloo_ranks_with_two_workers_each_see_every_sample_once(small_ds, tmp_path) -> None:
    """(Two gloo ranks: see the acceptance test, which joins a gloo group after streaming.)"""
    world_size = 3
    cfg = {"url": small_ds.url, "size": 32, "batch_size": 4, "num_workers": 2, "seed": 1, "epochs": [0]}
    results = launch(world_size, cfg, tmp_path, gloo="before")
    per_rank = [flat_keys(r["epochs"]["0"]) for r in results]
    share = 60 // world_size
    assert [len(keys) for keys in per_rank] == [share] * world_size
    assert [r["len"] for r in results] == [r["len_under_dist"] for r in results] == [share] * world_size
    assert len({len(r["epochs"]["0"]) for r in results}) == 1  # equal batch counts
    assert sorted(sum(per_rank, [])) == sorted(small_ds.all_keys)
    assert [r["dist_rank"] for r in results] == list(range(world_size))
    assert all(r["gathered"] == per_rank for r in results)  # all_gather over gloo agrees
    for r in results:
        assert all(target == small_ds.labels[key] for batch in r["epochs"]["0"] for key, target in batch)


@pytest.mark.parametrize("context", ["spawn", "forkserver", "fork"])
def test_workers_of_every_start_method_see_the_rank_of_a_tcp_initialised_group(small_ds, tmp_path, context) -> None:
    """init_process_group(init_method="tcp://", rank=r) without RANK/WORLD_SIZE: spawned and forkserver
    workers do not inherit the process group, so the rank is captured when the dataset is pickled."""
    cfg = {"url": small_ds.url, "size": 32, "batch_size": 5, "num_workers": 2, "seed": 3, "epochs": [0],
           "mp_context": context}
    results = launch(2, cfg, tmp_path, gloo="tcp")
    per_rank = [flat_keys(r["epochs"]["0"]) for r in results]
    assert [len(keys) for keys in per_rank] == [30, 30]
    assert [r["len"] for r in results] == [30, 30]
    assert sorted(sum(per_rank, [])) == sorted(small_ds.all_keys)  # each sample once across the ranks
    assert [r["dist_rank"] for r in results] == [0, 1]


@pytest.fixture(scope="module")
def ds1000(dsutil, tmp_path_factory):
    return dsutil.build_dataset(str(tmp_path_factory.mktemp("acceptance") / "ds"), 1000, 100)


def rank_keys(url: str, rank: int, monkeypatch, **options) -> list[str]:
    """Keys of one rank's epoch 0, computed in this process (size 32: the order does not depend on it)."""
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", "2")
    ds = ImageNetStream(url, size=32, batch_size=16, return_keys=True, seed=0, **options)
    return [k for _, _, keys in DataLoader(ds, batch_size=16, num_workers=2) for k in keys]


@pytest.mark.slow
def test_acceptance_1000_jpegs_two_ranks_two_workers(ds1000, tmp_path, monkeypatch, s3_bucket, s3_options) -> None:
    cfg = {"url": ds1000.url, "size": 224, "batch_size": 16, "num_workers": 2, "seed": 0, "epochs": [0, 1],
           "resume_after": 10}
    # streams with RANK/WORLD_SIZE only, then joins a gloo group and all-gathers its keys
    results = launch(2, cfg, tmp_path, gloo="after")
    assert all(r["gathered"] == [flat_keys(q["epochs"]["0"]) for q in results] for r in results)
    assert [r["len_under_dist"] for r in results] == [500, 500]

    for epoch in ("0", "1"):
        per_rank = [flat_keys(r["epochs"][epoch]) for r in results]
        counts = collections.Counter(sum(per_rank, []))
        assert set(counts) <= set(ds1000.all_keys) and max(counts.values()) == 1
        assert len(ds1000.all_keys) - len(counts) <= 1
        assert len(per_rank[0]) == len(per_rank[1]) == 500
        assert len(results[0]["epochs"][epoch]) == len(results[1]["epochs"][epoch]) == 32
        for r in results:
            assert all(target == ds1000.labels[key] for batch in r["epochs"][epoch] for key, target in batch)
    assert [r["len"] for r in results] == [500, 500]
    for r in results:
        assert flat_keys(r["epochs"]["0"]) != flat_keys(r["epochs"]["1"])

        resume = r["resume"]  # state_dict(samples_seen=160) after 10 batches, loaded in a fresh dataset
        assert resume["state"]["consumed"] == 2 * 160  # the world's progress: the same on both ranks
        assert resume["head"] == r["epochs"]["0"][:10]
        assert resume["tail"] == r["epochs"]["0"][10:]
        assert resume["decoded"] == 500 - 160

    # the same (seed, epoch) gives the same order in another process (this one) ...
    local = [rank_keys(ds1000.url, rank, monkeypatch) for rank in range(2)]
    assert local == [flat_keys(r["epochs"]["0"]) for r in results]
    # ... and from an s3:// copy of the folder
    remote = Store(f"s3://{s3_bucket}/in-1000", s3_options)
    for path in sorted(Path(ds1000.url).iterdir()):
        remote.write_atomic(path.name, path.read_bytes())
    assert [rank_keys(remote.url, rank, monkeypatch, storage_options=s3_options) for rank in range(2)] == local


@pytest.mark.slow
def test_elastic_resume_2x2_into_3x1_and_1x0_yields_the_rest_once(ds1000, tmp_path) -> None:
    """Acceptance: 10 batches on 2 ranks x 2 workers, then the job restarts on 3 ranks x 1 worker (or
    1 rank in-process) from the ranks' checkpoints: the rest of the epoch exactly once, equal counts."""
    base = {"url": ds1000.url, "size": 32, "batch_size": 16, "seed": 4, "epochs": [2]}
    saved = launch(2, {**base, "num_workers": 2, "save_after": 10}, tmp_path / "a", gloo=None)
    states = [r["state"] for r in saved]
    assert states[0]["consumed"] == states[1]["consumed"] == 10 * 2 * 16
    head = collections.Counter(k for r in saved for k in flat_keys(r["head"]))
    assert len(head) == sum(head.values()) == 320

    for world_size, workers in ((3, 1), (1, 0)):
        out = tmp_path / f"b{world_size}"
        results = launch(world_size, {**base, "num_workers": workers, "resume_states": states}, out, gloo=None)
        per_rank = [flat_keys(r["epochs"]["2"]) for r in results]
        share = (1000 - 320) // world_size  # drop: fewer than world_size positions of the rest left out
        assert [len(k) for k in per_rank] == [r["len"] for r in results] == [share] * world_size
        tail = collections.Counter(sum(per_rank, []))
        assert max(tail.values()) == 1 and not set(tail) & set(head)  # exactly once, none seen before
        assert len(set(ds1000.all_keys) - set(tail) - set(head)) == (1000 - 320) - share * world_size
        assert all(r["stats"]["substituted_samples"] == 0 for r in results)


@pytest.mark.slow
def test_corrupt_images_and_a_truncated_shard_under_two_gloo_ranks_keep_counts_equal(dsutil, tmp_path) -> None:
    """Acceptance: 3 corrupt images planted in one shard (and another shard truncated): both ranks yield
    exactly len(ds) samples in the same number of batches, so the DDP job finishes."""
    built = dsutil.build_dataset(str(tmp_path / "ds"), 1000, 100, corrupt=[101, 150, 177])
    index = SideIndex.from_bytes(Store(built.url).read("train-000005.idx"))
    dsutil.truncate_object(built.url, "train-000005.tar", int(index.offsets[60]) + 10)  # 40 samples lost
    cfg = {"url": built.url, "size": 32, "batch_size": 16, "num_workers": 2, "seed": 0, "epochs": [0]}
    results = launch(2, cfg, tmp_path / "run", gloo="before")
    per_rank = [r["epochs"]["0"] for r in results]
    assert [len(flat_keys(b)) for b in per_rank] == [r["len"] for r in results] == [500, 500]
    assert len(per_rank[0]) == len(per_rank[1])
    assert all(r["gathered"] == [flat_keys(b) for b in per_rank] for r in results)  # the collective ran
    stats = [r["stats_by_epoch"]["0"] for r in results]
    assert sum(s["corrupt_images"] for s in stats) == 3 and sum(s["truncated_samples"] for s in stats) == 40
    assert sum(s["substituted_samples"] for s in stats) == 43
    lost = {built.keys[1][1], built.keys[1][50], built.keys[1][77]} | set(built.keys[5][60:])
    seen = set(sum((flat_keys(b) for b in per_rank), []))
    assert not seen & lost and seen == set(built.all_keys) - lost


@pytest.mark.parametrize("options", [{"decode_threads": 2}, {"decode_threads": 2, "batched": True}],
                         ids=["threads", "threads-batched"])
def test_decode_threads_under_two_gloo_ranks_give_the_same_batches_and_substitutions(dsutil, tmp_path,
                                                                                      options) -> None:
    """decode_threads=2 in each of 2 ranks' 2 workers, yielding samples or whole batches: the very
    batches (keys, targets, in order) and the very substitutions of the serial path."""
    built = dsutil.build_dataset(str(tmp_path / "ds"), 400, 50, corrupt=[3, 77, 78, 79, 201])
    cfg = {"url": built.url, "size": 32, "batch_size": 8, "num_workers": 2, "seed": 4, "epochs": [0]}
    serial = launch(2, cfg, tmp_path / "serial", gloo="before")
    threaded = launch(2, {**cfg, "options": options}, tmp_path / "threads", gloo="before")
    assert [r["epochs"]["0"] for r in threaded] == [r["epochs"]["0"] for r in serial]
    assert [r["len"] for r in threaded] == [r["len"] // (8 if options.get("batched") else 1) for r in serial]
    for name in ("corrupt_images", "substituted_samples", "samples_yielded"):
        assert ([r["stats_by_epoch"]["0"][name] for r in threaded]
                == [r["stats_by_epoch"]["0"][name] for r in serial]), name
    assert sum(r["stats_by_epoch"]["0"]["substituted_samples"] for r in threaded) == 5

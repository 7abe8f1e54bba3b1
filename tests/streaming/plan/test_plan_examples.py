"""plan_epoch on small hand-computed examples, argument validation, cross-process determinism."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from imagenet_stream.errors import PlanError
from imagenet_stream.streaming.plan import World, plan_epoch, resume_world

COUNTS = [3, 5, 2]  # shard 0: ids 0-2, shard 1: ids 3-7, shard 2: ids 8-9


def plans(counts, world_size, num_workers, **kwargs):
    return {(r, w): plan_epoch(counts, World(r, world_size, w, num_workers), **kwargs)
            for r in range(world_size) for w in range(num_workers)}


def test_two_ranks_two_workers_batch_two_in_manifest_order() -> None:
    # N=10, m=5 per rank, rank batches of sizes 2, 2, 1: worker 0 has batches 0 and 2 (3 samples),
    # worker 1 has batch 1 (2 samples); pieces are contiguous, worker 0's first.
    got = plans(COUNTS, 2, 2, seed=0, epoch=0, batch_size=2, shuffle=False)
    assert {key: p.samples.tolist() for key, p in got.items()} == {
        (0, 0): [0, 1, 2], (0, 1): [3, 4], (1, 0): [5, 6, 7], (1, 1): [8, 9]}
    for p in got.values():
        assert (p.rank_samples, p.rank_batches, p.batch_size) == (5, 3, 2)
    assert [got[0, w].worker_batches for w in (0, 1)] == [2, 1]
    # DataLoader order on rank 0: worker 0 batch 0, worker 1 batch 0, worker 0 batch 1.
    # Resume after 1 rank batch ([0, 1]): worker 0 skips 2, worker 1 skips 0; after 2: 2 and 2.
    assert [got[0, 0].resume_offset(n) for n in (0, 2, 4, 5)] == [0, 2, 2, 3]
    assert [got[0, 1].resume_offset(n) for n in (0, 2, 4, 5)] == [0, 0, 2, 2]
    assert [got[0, 0].batches_before(k) for k in range(4)] == [0, 1, 1, 2]
    assert got[1, 0].window_bounds.tolist() == [0, 3]  # ids 5-7 all lie in shard 1


def test_drop_and_pad_with_three_ranks() -> None:
    drop = plans(COUNTS, 3, 1, seed=0, epoch=0, shuffle=False, partial="drop")
    assert [drop[r, 0].samples.tolist() for r in range(3)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]  # 9 dropped
    pad = plans(COUNTS, 3, 1, seed=0, epoch=0, shuffle=False, partial="pad", shuffle_window=1)
    assert [pad[r, 0].samples.tolist() for r in range(3)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1]]
    # Rank 2's piece wraps: runs (shard 2: 8-9), (shard 0: 0-1) -> two windows of one run each.
    assert pad[2, 0].window_bounds.tolist() == [0, 2, 4]
    assert [g.tolist() for g in pad[2, 0].windows()] == [[8, 9], [0, 1]]
    assert [g.tolist() for g in pad[2, 0].windows(1)] == [[9], [0, 1]]


def test_fewer_samples_than_ranks() -> None:
    drop = plans([1, 0, 1], 4, 2, seed=3, epoch=1)
    assert all(p.samples.size == 0 and p.rank_batches == 0 for p in drop.values())
    pad = plans([1, 0, 1], 4, 2, seed=3, epoch=1, partial="pad")
    assert sorted(pad[r, 0].samples.tolist()[0] for r in range(4)) == [0, 0, 1, 1]
    assert all(pad[r, 1].samples.size == 0 for r in range(4))
    assert plan_epoch([], World(), seed=0, epoch=0).samples.size == 0


def test_windows_group_shards_in_piece_order() -> None:
    plan = plan_epoch(COUNTS, World(), seed=0, epoch=0, shuffle=False, shuffle_window=1)
    assert plan.window_bounds.tolist() == [0, 3, 8, 10]
    plan = plan_epoch(COUNTS, World(), seed=0, epoch=0, shuffle=False, shuffle_window=2)
    assert plan.window_bounds.tolist() == [0, 8, 10]


def test_shuffle_uses_the_documented_seeds() -> None:
    plan = plan_epoch(COUNTS, World(), seed=7, epoch=2, shuffle_window=8)
    order = np.random.default_rng([7, 2, 0]).permutation(3)
    starts = [0, 3, 8]
    sequence = np.concatenate([np.arange(starts[s], starts[s] + COUNTS[s]) for s in order])
    window = np.random.default_rng([7, 2, 1, 0, 0, 0]).permutation(10)
    assert plan.samples.tolist() == sequence[window].tolist()


def test_resume_world_rotates_worker_ids() -> None:
    world = World(rank=1, world_size=2, worker=1, num_workers=3)
    assert resume_world(world, 0) == world
    assert resume_world(world, 4) == World(1, 2, 2, 3)
    assert resume_world(world, 5) == World(1, 2, 0, 3)
    with pytest.raises(PlanError, match="-1"):
        resume_world(world, -1)


def test_resume_offset_rejects_positions_between_batches() -> None:
    plan = plan_epoch(COUNTS, World(0, 2, 0, 2), seed=0, epoch=0, batch_size=2)
    with pytest.raises(PlanError, match="multiple of batch_size=2.*got 3"):
        plan.resume_offset(3)
    with pytest.raises(PlanError, match="got 6"):
        plan.resume_offset(6)
    with pytest.raises(PlanError, match="got -2"):
        plan.resume_offset(-2)
    with pytest.raises(PlanError, match="got 4"):
        plan.batches_before(4)
    with pytest.raises(PlanError, match="got 4"):
        plan.windows(4)


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"partial": "keep"}, "'keep'"),
    ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
    ({"shuffle_window": 0}, "shuffle_window must be >= 1, got 0"),
    ({"seed": -1}, "seed must be >= 0, got -1"),
    ({"epoch": 1.5}, "1.5"),
    ({"shuffle": "yes"}, "'yes'"),
    ({"counts": [4, -1]}, "sample_counts[1] must be >= 0, got -1"),
    ({"world": (0, 1)}, "(0, 1)"),
])
def test_invalid_arguments_raise_plan_error(kwargs: dict, needle: str) -> None:
    args = {"counts": COUNTS, "world": World(), "seed": 0, "epoch": 0} | kwargs
    counts, world = args.pop("counts"), args.pop("world")
    with pytest.raises(PlanError) as info:
        plan_epoch(counts, world, **args)
    assert needle in str(info.value)


_HASH_SCRIPT = """
import hashlib
from imagenet_stream.streaming.plan import World, plan_epoch
h = hashlib.sha256()
for r in range(3):
    for w in range(2):
        p = plan_epoch([7, 0, 130, 41, 9], World(r, 3, w, 2), seed=12345, epoch=4, batch_size=5,
                       shuffle_window=2, partial="pad")
        h.update(p.samples.tobytes()); h.update(p.window_bounds.tobytes())
print(h.hexdigest())
"""


def test_plans_are_identical_in_a_fresh_process() -> None:
    digest = hashlib.sha256()
    for r in range(3):
        for w in range(2):
            p = plan_epoch([7, 0, 130, 41, 9], World(r, 3, w, 2), seed=12345, epoch=4, batch_size=5,
                           shuffle_window=2, partial="pad")
            digest.update(p.samples.tobytes())
            digest.update(p.window_bounds.tobytes())
    env = dict(os.environ, PYTHONHASHSEED="1234")
    out = subprocess.run([sys.executable, "-c", _HASH_SCRIPT], capture_output=True, text=True,
                         env=env, check=True, timeout=120)
    assert out.stdout.strip() == digest.hexdigest()

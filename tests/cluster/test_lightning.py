"""A Lightning ``Trainer(accelerator="cpu", devices=2, strategy="ddp")`` with
:class:`~imagenet_stream.integrations.lightning.StreamDataModule`: a checkpoint taken mid-epoch by
``ModelCheckpoint(every_n_train_steps=k)`` holds the stream's position, and ``trainer.fit(ckpt_path=...)``
trains on exactly the rest of the epoch (nothing again, nothing skipped), with DataLoader workers too."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lightning", reason="Lightning is an optional extra: pip install 'imagenet-stream[lightning]'")

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

ROOT = Path(__file__).resolve().parents[2]
JOB = Path(__file__).with_name("lightning_job.py")
SAMPLES = 120  # 2 ranks x batch 4: 15 steps per epoch


def run(ds: str, out: Path, name: str, *extra: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(JOB), ds, str(out), "--run", name, *extra], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]


def steps(out: Path, name: str) -> dict[int, list[str]]:
    """global step -> the keys both ranks trained on at it."""
    found: dict[int, list[str]] = {}
    for rank in (0, 1):
        for line in (out / f"keys-{name}-rank{rank}.txt").read_text().splitlines():
            step, *keys = line.split()
            found.setdefault(int(step), []).extend(keys)
    return found


@pytest.mark.parametrize("workers,batched", [(0, False), (2, False), (2, True)],
                         ids=["0-workers", "2-workers", "2-workers-batched"])
def test_fit_from_a_mid_epoch_checkpoint_trains_on_exactly_the_rest(tmp_path: Path, dsutil, workers: int,
                                                                     batched: bool) -> None:
    built = dsutil.build_dataset(str(tmp_path / "ds"), SAMPLES, 20)
    every = {k for shard in built.keys for k in shard}
    out = tmp_path / "out"
    out.mkdir()
    shape = ["--workers", str(workers), *(["--batched"] if batched else [])]
    # the first run stops at step 9 (as if preempted) after checkpoints at steps 4 and 8
    run(str(tmp_path / "ds"), out, "first", "--max-steps", "9", "--ckpt-every", "4", *shape)
    assert (out / "ckpt" / "step=8.ckpt").exists(), sorted(p.name for p in (out / "ckpt").iterdir())
    run(str(tmp_path / "ds"), out, "resumed", "--resume", str(out / "ckpt" / "step=8.ckpt"), *shape)
    first, resumed = steps(out, "first"), steps(out, "resumed")
    assert sorted(first) == list(range(9))
    assert sorted(resumed) == list(range(8, 15)), "the resumed run did not continue at step 8"
    before = [k for step in range(8) for k in first[step]]
    after = [k for keys in resumed.values() for k in keys]
    assert all(len(keys) == 8 for keys in first.values()), "unequal or partial batches before the checkpoint"
    assert len(before) + len(after) == len(every) and set(before) | set(after) == every, \
        "the resumed run skipped a sample or trained on one twice"
    assert set(first[8]) == set(resumed[8]), "the step after the checkpoint was not redone with the same samples"

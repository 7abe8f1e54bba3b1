"""The ``imagenet-stream bench`` command, end to end on a small local dataset."""
from __future__ import annotations

import re

from imagenet_stream.cli import main


def test_bench_prints_images_per_second(small_ds, capsys) -> None:
    assert main(["bench", small_ds.url, "--workers", "2", "--batch-size", "8", "--size", "32"]) == 0
    out = capsys.readouterr()
    match = re.search(r"^60 images in [0-9.]+ s: ([0-9.]+) img/s \(2 workers, 0 decode threads, batch 8,", out.out,
                      re.M)
    assert match and float(match.group(1)) > 0, out.out  # one epoch: 7 batches of 8 and one of 4
    assert "samples_yielded=60" in out.out
    assert re.search(r"^stages \(summed over the 2 workers\): wait for bytes \d+% .* decode \d+% .* collate and "
                     r"consumer \d+%", out.out, re.M), out.out
    assert "bench" in out.err and "stages" in out.err  # the progress bar, with the live shares


def test_bench_stops_after_k_batches_and_reports_bad_urls(small_ds, tmp_path, capsys) -> None:
    assert main(["bench", small_ds.url, "--workers", "0", "--batch-size", "4", "--batches", "3", "--size", "32",
                 "--transform", "none", "--no-progress"]) == 0
    assert "12 images in" in capsys.readouterr().out
    assert main(["bench", str(tmp_path / "missing"), "--no-progress"]) == 2
    assert "index.json" in capsys.readouterr().err


def test_bench_runs_threads_and_whole_batches(small_ds, capsys) -> None:
    assert main(["bench", small_ds.url, "--workers", "1", "--threads", "2", "--batched", "--batch-size", "8",
                 "--size", "32", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^60 images in .* \(1 workers, 2 decode threads, batch 8 \(batched\)", out, re.M), out
    assert "samples_yielded=60" in out
    assert main(["bench", small_ds.url, "--batched", "--transform", "none", "--no-progress"]) == 2
    assert "--batched needs images of one size" in capsys.readouterr().err

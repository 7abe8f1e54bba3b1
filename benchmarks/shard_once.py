"""Run the sharder once in this process and print what it measured as JSON (used by sharder_scale.py).

    python benchmarks/shard_once.py SOURCE OUT --workers N --shard-size S --tmp-dir DIR

Phases: ``listed`` (the listing and the plan), ``sharded`` (the shard tasks: from starting the workers
to the last done-marker), ``steady`` (images of the shards done after the first one, over the time
from the first to the last: the rate of a long run, without the workers' start and the tail),
``total`` (the whole call, finalize included).
"""
from __future__ import annotations

import argparse
import json
import time

from imagenet_stream.sharding.coordinator import ShardOptions, shard


class _Clock:
    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self.done: list[tuple[float, int]] = []  # (time, images) per finished shard

    def __call__(self, what: str, total, initial: int):  # the ProgressFactory protocol
        clock = self

        class Bar:
            def update(self, n: int = 1) -> None:
                if what == "shard":
                    clock.done.append((time.perf_counter(), n))

            def set_postfix_str(self, s: str) -> None: ...

            def close(self) -> None:
                clock.marks[f"{what}_end"] = time.perf_counter()

        self.marks[f"{what}_start"] = time.perf_counter()
        return Bar()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("source")
    p.add_argument("out")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--shard-size", type=int, default=1000)
    p.add_argument("--tmp-dir")
    args = p.parse_args()
    clock = _Clock()
    start = time.perf_counter()
    result = shard([args.source], ShardOptions(out=args.out, workers=args.workers, shard_size=args.shard_size,
                                               tmp_dir=args.tmp_dir, overwrite=True, mtime=0), progress=clock)
    end = time.perf_counter()
    m = clock.marks
    done = clock.done
    steady = (sum(n for _, n in done[1:]) / (done[-1][0] - done[0][0])) if len(done) > 2 else None
    print(json.dumps({"kept": result.manifest.num_available, "seen": result.report["seen"], "total_s": end - start,
                      "listed_s": m.get("shard_start", end) - start,
                      "sharded_s": m.get("shard_end", end) - m.get("shard_start", start), "steady_per_s": steady}))


if __name__ == "__main__":
    main()

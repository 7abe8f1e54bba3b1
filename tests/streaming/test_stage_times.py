"""Where a stream's time goes: the stage clocks add up to the loop's wall time, storage latency shows
as waiting for bytes, and StreamMonitor reports the shares from rank 0 (to a TensorBoard-like writer)."""
from __future__ import annotations

import logging
import time

from support.httpserver import serve
from torch.utils.data import DataLoader

from imagenet_stream.streaming import ImageNetStream
from imagenet_stream.streaming.monitor import StreamMonitor
from imagenet_stream.streaming.stage_times import breakdown, format_breakdown


def stream(url: str, **kw) -> ImageNetStream:
    return ImageNetStream(url, **{"size": 32, "seed": 1, "batch_size": 6, **kw})


def test_the_stages_add_up_to_the_wall_time(small_ds) -> None:
    ds = stream(small_ds.url)
    started = time.perf_counter()
    for _ in DataLoader(ds, batch_size=6):
        time.sleep(0.01)  # the "model"
    wall = time.perf_counter() - started
    stats = ds.stats()
    measured = (stats["iterate_ns"] + stats["outside_ns"]) / 1e9
    assert 0.9 * wall <= measured <= wall, (measured, wall)
    parts = breakdown(stats, wall)
    assert parts["collate_and_consumer"] >= 10 * 0.01 * 0.95  # ten batches of sleeping consumer
    assert parts["decode"] > 0 and parts["transform"] > 0 and parts["samples_per_second"] > 0
    assert abs(sum(v for k, v in parts.items() if k != "samples_per_second") - measured) < 1e-6
    assert "collate and consumer" in format_breakdown(stats, wall)


def test_slow_storage_shows_as_waiting_for_bytes(small_ds) -> None:
    with serve(small_ds.url, latency=0.05) as (base, _):
        ds = stream(base)
        list(DataLoader(ds, batch_size=6))
    parts = breakdown(ds.stats())
    assert parts["wait_for_bytes"] > parts["decode"] + parts["transform"], parts


def test_workers_report_their_stages_too(small_ds) -> None:
    ds = stream(small_ds.url)
    list(DataLoader(ds, batch_size=6, num_workers=2))
    stats = ds.stats()
    assert stats["samples_yielded"] == 60 and stats["decode_ns"] > 0 and stats["iterate_ns"] > stats["decode_ns"]


class Recorder:
    def __init__(self) -> None:
        self.scalars: list[tuple[str, float, int]] = []

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))


def test_the_monitor_logs_and_writes_from_rank_zero(small_ds, caplog, monkeypatch) -> None:
    ds = stream(small_ds.url)
    writer = Recorder()
    monitor = StreamMonitor(ds, every=0, writer=writer)
    with caplog.at_level(logging.INFO, logger="imagenet_stream.monitor"):
        batches = list(monitor(DataLoader(ds, batch_size=6)))
    assert len(batches) == 10 and monitor.step == 10
    lines = [r.getMessage() for r in caplog.records if r.name == "imagenet_stream.monitor"]
    assert len(lines) == 10 and all(line.startswith("stream: ") and "decode" in line for line in lines)
    tags = {tag for tag, _, _ in writer.scalars}
    assert "imagenet_stream/samples_per_second" in tags and "imagenet_stream/share_decode" in tags
    last = {tag: value for tag, value, step in writer.scalars if step == 10}
    assert abs(sum(v for t, v in last.items() if "/share_" in t) - 1.0) < 1e-6
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert monitor.report() is None  # other ranks stay quiet


def test_the_monitor_writes_tensorboard_scalars(small_ds, tmp_path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ds = stream(small_ds.url)
    monitor = StreamMonitor(ds, every=0, log_dir=str(tmp_path / "runs"))
    for _ in monitor(DataLoader(ds, batch_size=6)):
        pass
    monitor.writer.flush()
    events = EventAccumulator(str(tmp_path / "runs"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"imagenet_stream/samples_per_second", "imagenet_stream/share_decode",
            "imagenet_stream/share_wait_for_bytes"} <= set(tags)
    rates = events.Scalars("imagenet_stream/samples_per_second")
    assert [e.step for e in rates] == list(range(1, 11)) and all(e.value > 0 for e in rates)

"""Format the benchmark's results: the loader table, the ratios against the targets, RESULTS.md.

``RESULTS.md`` keeps everything outside the markers ``<!-- run:begin -->`` / ``<!-- run:end -->``
(the optimisation log is written by hand); a run replaces what is between them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

BEGIN, END = "<!-- run:begin -->", "<!-- run:end -->"


@dataclass
class Entry:
    """One contender configuration and what measuring it gave (or why it was skipped)."""

    name: str
    kind: str
    workers: int
    result: dict[str, Any] | None = None
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    transform: str = ""  # the peers: "ours" (our TrainTransform, row (b)) or "stock" (PIL + torchvision, (a))


def cores_used(workers: int, cores: int) -> int:
    """Cores decoding: the main process at ``workers == 0``, else the workers (at most ``cores``)."""
    return 1 if workers == 0 else min(workers, cores)


def mb(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def rss_drift(worker_rss: Sequence[Sequence[int]]) -> float | None:
    """Largest deviation of any worker's RSS at an epoch's end from that worker's median over the
    epochs, relative to the median: "flat within ±x" means every epoch lies within ±x of it."""
    if len(worker_rss) < 2 or not worker_rss[0]:
        return None
    drifts = []
    for w in range(len(worker_rss[0])):
        values = [epoch[w] for epoch in worker_rss if w < len(epoch) and epoch[w]]
        if len(values) >= 2:
            mid = float(np.median(values))
            drifts.append(max(abs(x - mid) for x in values) / mid)
    return max(drifts) if drifts else None


def _worker_cell(result: dict[str, Any]) -> str:
    per_epoch = result["worker_rss"]
    if not per_epoch or not per_epoch[0]:
        return "-"
    first, last = per_epoch[0], per_epoch[-1]
    return " / ".join(f"{mb(a)}→{mb(b)}" for a, b in zip(first, last))


def row_limit(result: dict[str, Any], limit_per_core: float) -> float:
    """The bare limit per core measured beside this contender, else the run's."""
    return result.get("bare") or limit_per_core


def _ttfb(result: dict[str, Any]) -> str:
    """Time to first batch, and the import of the contender's libraries (timed apart) where it matters."""
    cell = f"{result['first_batch_s']:.2f}"
    imported = result.get("import_s") or 0.0
    return cell + (f" (+{imported:.1f})" if imported >= 0.1 else "")


def _busy(result: dict[str, Any]) -> str:
    """CPU seconds per wall second of the whole tree (and of the main process alone)."""
    wall = result["wall_s"] or float("nan")
    return f"{result['cpu_s'] / wall:.2f} ({result['cpu_main_s'] / wall:.2f})"


def loader_table(entries: Sequence[Entry], limit_per_core: float, cores: int) -> list[str]:
    """Markdown table: throughput, share of the decode limit, CPU efficiency, first batch, memory."""
    lines = [
        "| contender | workers | img/s | × limit | img/s with restarts | img per CPU-s | cores busy (main) "
        "| TTFB s | peak tree RSS MB | worker RSS MB (epoch 1→last) | RSS drift |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---|---:|",
    ]
    for e in entries:
        if e.result is None:
            lines.append(f"| {e.name} | {e.workers} | skipped: {e.skipped} | | | | | | | | |")
            continue
        r = e.result
        limit = row_limit(r, limit_per_core) * cores_used(e.workers, cores)
        drift = rss_drift(r["worker_rss"])
        lines.append(
            f"| {e.name} | {e.workers} | {r['img_s']:,.0f} | {r['img_s'] / limit:.2f} "
            f"| {r['img_s_overall']:,.0f} | {r['img_per_cpu_s']:,.0f} | {_busy(r)} "
            f"| {_ttfb(r)} | {mb(r['peak_tree_rss'])} | {_worker_cell(r)} "
            f"| {'-' if drift is None else f'{drift * 100:.1f}%'} |")
    return lines


def find(entries: Sequence[Entry], kind: str, workers: int, name_part: str = "",
         transform: str = "") -> Entry | None:
    for e in entries:
        if (e.kind == kind and e.workers == workers and name_part in e.name and e.result is not None
                and (not transform or e.transform == transform)):
            return e
    return None


PEER_KINDS = ("litdata", "mosaic")
CONTROL = "ours-peers-venv"  # ImageNetStream local run in the peers' venv (their torch, their RSS baseline)


def _faster_peer(entries: Sequence[Entry], workers: int, transform: str) -> tuple[Entry | None, str]:
    """The peer with the most img/s at ``workers`` with ``transform``, and every peer's figure."""
    found = [e for e in (find(entries, k, workers, transform=transform) for k in PEER_KINDS) if e is not None]
    listed = ", ".join(f"{e.name} {e.result['img_s']:,.0f}" for e in found if e.result is not None)
    best = max(found, key=lambda e: e.result["img_s"] if e.result else 0.0, default=None)
    return best, listed


def _check(value: float, target: float, higher: bool = True) -> str:
    ok = value >= target if higher else value < target
    return "met" if ok else "NOT met"


def ratio_lines(entries: Sequence[Entry], limit_per_core: float, cores: int,
                workers: Sequence[int]) -> list[str]:
    """The issue's targets, each with its measured value, for every worker count measured."""
    out = []
    for w in workers:
        ours = find(entries, "ours", w, "local")
        if ours is None or ours.result is None:
            continue
        r = ours.result
        per_core = row_limit(r, limit_per_core)
        limit = per_core * cores_used(w, cores)
        x_limit = r["img_s"] / limit
        out.append(f"- workers={w}: ImageNetStream local = {x_limit:.2f}× the bare limit "
                   f"({r['img_s']:,.0f} / {limit:,.0f} img/s; target ≥ 0.9×: {_check(x_limit, 0.9)}); "
                   f"CPU efficiency {r['img_per_cpu_s'] / per_core:.2f}× the bare per-core rate")
        wds = find(entries, "webdataset", w)
        if wds is not None and wds.result is not None:
            x = r["img_s"] / wds.result["img_s"]
            out.append(f"  - vs webdataset stock: {x:.2f}× (target ≥ 1.8×: {_check(x, 1.8)})")
        folder = find(entries, "folder", w)
        if folder is not None and folder.result is not None:
            out.append(f"  - vs ImageFolder-style: {r['img_s'] / folder.result['img_s']:.2f}×")
        best, listed = _faster_peer(entries, w, "ours")
        if best is not None and best.result is not None:
            x = r["img_s"] / best.result["img_s"]
            out.append(f"  - vs the faster peer on the same TrainTransform, rows (b) ({listed} img/s): "
                       f"{x:.2f}× (target ≥ 1.3×: {_check(x, 1.3)})")
            control = find(entries, CONTROL, w)
            if control is not None and control.result is not None:
                out.append(f"    - the same in one venv (ImageNetStream run in the peers' venv, "
                           f"{control.result['img_s']:,.0f} img/s): "
                           f"{control.result['img_s'] / best.result['img_s']:.2f}×")
            headroom = row_limit(best.result, limit_per_core) * cores_used(w, cores) / best.result["img_s"]
            if headroom >= 1.0:  # (below 1 the epochs were too short to time: --quick)
                out.append(f"    - the faster (b) peer runs at {1 / headroom:.2f}× the bare limit, so a "
                           f"loader with the same transform can be at most {headroom:.2f}× faster")
        best, listed = _faster_peer(entries, w, "stock")
        if best is not None and best.result is not None:
            out.append(f"  - vs the faster peer on its users' stock PIL + torchvision path, rows (a) "
                       f"({listed} img/s): {r['img_s'] / best.result['img_s']:.2f}× (for reference)")
        s3 = find(entries, "ours", w, "S3")
        if s3 is not None and s3.result is not None:
            x = s3.result["img_s"] / r["img_s"]
            out.append(f"  - S3 / local: {x:.2f}× (target ≥ 0.95×: {_check(x, 0.95)})")
        out.append(f"  - time to first batch (local): {r['first_batch_s']:.2f} s "
                   f"(target < 2 s: {_check(r['first_batch_s'], 2.0, higher=False)})")
        drift = rss_drift(r["worker_rss"])
        if drift is not None:
            out.append(f"  - worker RSS drift over {r['epochs']} epochs: {drift * 100:.1f}% "
                       f"(target within ±5%: {_check(drift, 0.05, higher=False)})")
    return out


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


_CONVERTERS = {
    "litdata": "LitData `optimize(fn, inputs, chunk_bytes=64 MiB, num_workers={workers})`",
    "mosaic": "MosaicML `MDSWriter(columns=..., size_limit=64 MiB)`, one process",
}
_READING = (
    "- reading: LitData `StreamingDataset(input_dir, cache_dir=<fresh>, shuffle=True, transform=...)` + "
    "its `StreamingDataLoader` (it mmaps local chunks in place); MosaicML `StreamingDataset(local=<fresh "
    "folder of hard links to the shards>, remote=None, batch_size=..., shuffle=True)` with the sample "
    "transform in `get_item`, + a torch `DataLoader`; persistent workers as for every contender; a fresh "
    "cache/local folder per run, removed after; `clean_stale_shared_memory()` before each MosaicML run")
_PEER_NOTE = (
    "CPU ms per image = CPU seconds of the whole process tree per image (1,000 / img per CPU-s); main RSS "
    "after imports = the loader process before it builds anything (torch and the libraries: forked workers "
    "start from it, so in the peers' venv, with its CUDA torch build and what `import streaming` brings, "
    "every process starts larger); import s = importing the contender's libraries before its clock starts "
    "(`import streaming` imports transformers and torchvision).")


def peer_lines(entries: Sequence[Entry], info: dict[str, Any], skipped: dict[str, str],
               conversions: dict[str, Any], verified: dict[str, Any], shard_rate: float, images: int,
               cores: int) -> list[str]:
    """The *Peers* section: versions, the conversions, the exactly-once check and a compact table."""
    lines = ["### Peers: LitData and MosaicML streaming", ""]
    if not conversions:
        reasons = "; ".join(f"{k}: {why}" for k, why in skipped.items()) or "not requested"
        return lines + [f"Not run ({reasons}).", ""]
    lines.append(
        f"- versions, in their own venv (`make bench-peers` makes `.venv-peers`): litdata "
        f"{info.get('litdata')}, mosaicml-streaming {info.get('mosaicml-streaming')}; torch "
        f"{info.get('torch')}, torchvision {info.get('torchvision')}, Pillow {info.get('pillow')}, numpy "
        f"{info.get('numpy')} (the other contenders: torch {_version('torch')}, Pillow "
        f"{_version('pillow')}, numpy {_version('numpy')}); each row's × limit divides by the bare limit "
        "measured in its own process, so in their venv for theirs")
    parts = [f"{_CONVERTERS[kind].format(workers=c['workers'])}: {images / c['seconds']:,.0f} img/s "
             f"({c['seconds']:.2f} s, {c['files']} files, {c['bytes'] / 1e6:,.0f} MB)"
             for kind, c in conversions.items()]
    lines.append(f"- conversions of the same JPEG files (each file's bytes stored as they are, its class "
                 f"index and position): {'; '.join(parts)}; our sharder {shard_rate:,.0f} img/s with "
                 f"{cores} workers (it also verifies, hashes and checks every image)")
    checks = []
    for kind, v in verified.items():
        order = "the same order every epoch" if v["same_order_each_epoch"] else "a new order each epoch"
        state = "ok" if v["ok"] else "**FAILED**: " + "; ".join(v["problems"])
        checks.append(f"{kind}: {v['samples']:,} samples × {v['epochs']} epochs at {v['workers']} workers, "
                      f"each exactly once with its label and its file's bytes (crc32), "
                      f"{'shuffled' if v['shuffled'] else 'NOT shuffled'}, {order}: {state}")
    lines += ["- exactly-once check (no decode): " + "; ".join(checks), _READING, "",
              "| contender | workers | img/s | CPU ms per image | peak tree RSS MB "
              "| main RSS after imports MB | TTFB s | import s |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for e in entries:
        listed = e.kind in (*PEER_KINDS, CONTROL) or (e.kind == "ours" and "local" in e.name)
        if e.result is None or not listed:
            continue
        r = e.result
        per_image = 1e3 / r["img_per_cpu_s"] if r["img_per_cpu_s"] else float("nan")
        lines.append(f"| {e.name} | {e.workers} | {r['img_s']:,.0f} | {per_image:.2f} "
                     f"| {mb(r['peak_tree_rss'])} | {mb(r['rss_before'])} | {r['first_batch_s']:.2f} "
                     f"| {r.get('import_s', 0.0):.2f} |")
    return lines + ["", _PEER_NOTE, ""]


def replace_section(path: str | Path, begin: str, end: str, body: str, heading: str) -> None:
    """Put ``body`` between the markers ``begin``/``end`` of ``path``, keeping the rest; a file
    without them gets ``heading`` and the section appended."""
    section = f"{begin}\n{body.rstrip()}\n{end}"
    file = Path(path)
    text = file.read_text() if file.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + section + tail
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + heading + section + "\n"
    file.write_text(text)


def write_results(path: str, body: str) -> None:
    """Replace the run section of ``path`` (between the markers) with ``body``; keep the rest."""
    exists = Path(path).exists() and Path(path).read_text().strip()
    heading = "" if exists else ("# Benchmark results\n\nGenerated by `python benchmarks/run.py` between the "
                                 "markers; the rest is written by hand.\n\n")
    replace_section(path, BEGIN, END, body, heading)
